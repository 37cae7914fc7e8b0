/**
 * The `file` store: a snapshot (`snapshot.jsonl`) plus an append-only log
 * (`log.<generation>.jsonl`) of the records in codec.ts, in one folder.
 *
 * Writes: a change event marks its instance dirty; one flush per turn of the event loop writes
 * the current state of every dirty instance (group commit), so the write queue is a set of ids,
 * bounded by the registry's own instance limit. Heartbeats only mark the renewal dirty, and
 * renewals are written every `renewIntervalMs` (a restart may lose renewal times at most that
 * old, which only shortens a lease).
 *
 * fsync policy: `always` fdatasyncs each flush before the changes it holds are answered (a
 * registration's 201 survives kill -9 and power loss); `interval` answers once the bytes are
 * written to the kernel (they survive kill -9 of the process, not a power loss) and fdatasyncs
 * every `fsyncIntervalMs`.
 *
 * Compaction: past `compactBytes` of log, the registry's current registrations are written as
 * a snapshot naming the next generation (write temp, fsync, rename, fsync the folder), then the
 * old log is deleted. A crash anywhere in between leaves either the old snapshot and log, or
 * the new snapshot and its (empty or partial) log: both replay to the same state.
 */
import { open, mkdir, readFile, readdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { MaxineError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { MaxineEvent } from '../../common/wire.js';
import type { EventLog } from '../events/log.js';
import type { PersistedInstance, Registry } from '../registry/registry.js';
import {
  applyRecords,
  decodeLog,
  decodeSnapshot,
  encodeLine,
  encodeSnapshot,
  StoreCorruptError,
} from './codec.js';
import type { RegistryStore, StoredState } from './store.js';

export interface FileStoreOptions {
  dir: string;
  fsync: 'always' | 'interval';
  fsyncIntervalMs: number;
  renewIntervalMs: number;
  compactBytes: number;
  logger: Logger;
  prom: PromRegistry;
  /** How long after a failed write the next is tried. */
  retryMs?: number;
}

const SNAPSHOT = 'snapshot.jsonl';
/** How long after a failed compaction the next is tried. */
const COMPACT_RETRY_MS = 30_000;
const LOG_RE = /^log\.(\d+)\.jsonl$/;
const logName = (generation: number): string => `log.${generation}.jsonl`;

/** Events that change what is kept of an instance (heartbeats only renew). */
const CHANGES: ReadonlySet<string> = new Set([
  'service_registered',
  'service_deregistered',
  'service_healthy',
  'service_unhealthy',
]);

type Source = Pick<Registry, 'persisted' | 'persistedAll'>;

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class FileStore implements RegistryStore {
  readonly kind = 'file';
  private handle: FileHandle | undefined;
  private generation = 0;
  private logBytes = 0;
  private snapshotBytes = 0;
  private source: Source | undefined;
  private events: EventLog | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly dirty = new Set<string>();
  private readonly renewals = new Set<string>();
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private unsynced = false;
  private failure: Error | undefined;
  private closed = false;
  private compactRetryAt = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly metrics: {
    fsync: Histogram;
    compactions: Counter;
    errors: Counter;
    written: Counter;
  };

  constructor(private readonly opts: FileStoreOptions) {
    const registers = [opts.prom];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const store = this;
    new Gauge({
      name: 'maxine_store_queued_writes',
      help: 'Instances whose change (or renewal) waits to be written to the store',
      labelNames: ['kind'],
      registers,
      collect() {
        this.set({ kind: 'change' }, store.dirty.size);
        this.set({ kind: 'renewal' }, store.renewals.size);
      },
    });
    new Gauge({
      name: 'maxine_store_bytes',
      help: 'Size of the store files, by file',
      labelNames: ['file'],
      registers,
      collect() {
        this.set({ file: 'log' }, store.logBytes);
        this.set({ file: 'snapshot' }, store.snapshotBytes);
      },
    });
    new Gauge({
      name: 'maxine_store_available',
      help: 'Whether the store can be written (1) or its last write failed (0)',
      registers,
      collect() {
        this.set(store.available() ? 1 : 0);
      },
    });
    this.metrics = {
      fsync: new Histogram({
        name: 'maxine_store_fsync_seconds',
        help: 'Time an fdatasync of the store log took',
        buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers,
      }),
      compactions: new Counter({
        name: 'maxine_store_compactions_total',
        help: 'Snapshots written to compact the store log',
        registers,
      }),
      errors: new Counter({
        name: 'maxine_store_errors_total',
        help: 'Store operations that failed, by operation',
        labelNames: ['op'],
        registers,
      }),
      written: new Counter({
        name: 'maxine_store_written_bytes_total',
        help: 'Bytes appended to the store log',
        registers,
      }),
    };
  }

  get files(): { snapshot: string; log: string } {
    return {
      snapshot: join(this.opts.dir, SNAPSHOT),
      log: join(this.opts.dir, logName(this.generation)),
    };
  }

  async load(): Promise<StoredState> {
    const { dir, logger } = this.opts;
    await mkdir(dir, { recursive: true });
    const state = new Map<string, PersistedInstance>();
    let seq = 0;
    const snapshotBytes = await readIfExists(join(dir, SNAPSHOT));
    if (snapshotBytes !== undefined) {
      const snapshot = decodeSnapshot(join(dir, SNAPSHOT), snapshotBytes);
      this.generation = snapshot.header.generation;
      this.snapshotBytes = snapshotBytes.length;
      seq = snapshot.header.seq;
      for (const i of snapshot.instances) state.set(i.id, i);
    } else {
      // A log past generation 0 continues a snapshot: without it, the state is unknowable.
      const orphan = (await readdir(dir)).find((n) => Number(LOG_RE.exec(n)?.[1] ?? 0) > 0);
      if (orphan !== undefined)
        throw new StoreCorruptError(join(dir, SNAPSHOT), 0, `missing, and ${orphan} continues it`);
    }
    const logPath = join(dir, logName(this.generation));
    const logBytes = (await readIfExists(logPath)) ?? Buffer.alloc(0);
    const decoded = decodeLog(logPath, logBytes);
    if (decoded.dropped !== undefined) {
      logger.warn(
        {
          file: logPath,
          offset: decoded.dropped.offset,
          droppedBytes: decoded.dropped.bytes,
          reason: decoded.dropped.why,
          kept: decoded.records.length,
        },
        'store log ends with a torn record (the process stopped mid-write): kept every record before it, dropped the rest',
      );
      await truncate(logPath, decoded.validBytes);
    }
    seq = applyRecords(state, decoded.records, seq);
    await this.removeLeftovers();
    this.handle = await open(logPath, 'a');
    this.logBytes = decoded.validBytes;
    return { instances: [...state.values()], seq };
  }

  /** Logs of older generations and a half-written snapshot, left by a compaction cut short. */
  private async removeLeftovers(): Promise<void> {
    for (const name of await readdir(this.opts.dir)) {
      const gen = LOG_RE.exec(name)?.[1];
      const stale = (gen !== undefined && Number(gen) < this.generation) || name.endsWith('.tmp');
      if (stale) await rm(join(this.opts.dir, name), { force: true });
    }
  }

  attach(source: Source, events: EventLog): void {
    this.source = source;
    this.events = events;
    this.unsubscribe = events.subscribe((event) => this.observe(event));
    const renew = setInterval(() => {
      if (this.renewals.size === 0) return;
      for (const id of this.renewals) this.dirty.add(id);
      this.renewals.clear();
      this.schedule();
    }, this.opts.renewIntervalMs);
    renew.unref();
    this.timers.push(renew);
    if (this.opts.fsync === 'interval') {
      const sync = setInterval(() => void this.syncInterval(), this.opts.fsyncIntervalMs);
      sync.unref();
      this.timers.push(sync);
    }
    // A log already past the bound when the process started is compacted at once.
    if (this.logBytes > this.opts.compactBytes) this.schedule();
  }

  forget(ids: readonly string[]): void {
    for (const id of ids) this.dirty.add(id);
    if (ids.length > 0) this.schedule();
  }

  private observe(event: MaxineEvent): void {
    if (event.type === 'service_heartbeat') {
      this.renewals.add(event.data.id);
      return;
    }
    if (!CHANGES.has(event.type) || !('instance' in event) || event.instance === undefined) return;
    if (event.instance.source !== 'registration') return;
    this.renewals.delete(event.instance.id);
    this.dirty.add(event.instance.id);
    this.schedule();
  }

  readonly committed = (): Promise<void> => {
    if (this.failure !== undefined) return Promise.reject(unavailable(this.failure));
    if (this.dirty.size === 0 && this.flushing === undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  };

  available(): boolean {
    return this.failure === undefined && !this.closed;
  }

  private schedule(): void {
    if (this.scheduled || this.closed || this.handle === undefined) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing ??= this.flushAll().finally(() => {
        this.flushing = undefined;
        // Changes that arrived during the last write of the loop; after a failure, the retry
        // timer (failed()) schedules instead, so a failing disk is not hammered.
        const pending = this.dirty.size > 0 || this.waiters.length > 0;
        if (pending && this.failure === undefined) this.schedule();
      });
    });
  }

  /** Writes batches until nothing is dirty; a failed write keeps its ids dirty for the retry. */
  private async flushAll(): Promise<void> {
    await this.compactIfDue();
    while (this.dirty.size > 0 || this.waiters.length > 0) {
      // Reopening after a failure: what is dirty stays dirty, the reopen schedules the flush.
      if (this.handle === undefined) return;
      const ids = [...this.dirty];
      this.dirty.clear();
      const waiters = this.waiters;
      this.waiters = [];
      try {
        await this.writeBatch(ids);
        this.recovered();
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const id of ids) this.dirty.add(id);
        this.failed('write', err as Error);
        for (const w of waiters) w.reject(unavailable(err as Error));
        return;
      }
      await this.compactIfDue();
    }
  }

  /**
   * Compacts when the log is past its bound. A failure leaves the log whole and writes going
   * on; compaction is tried again a while later (not on every write: a full disk would spin).
   */
  private async compactIfDue(): Promise<void> {
    if (this.logBytes <= this.opts.compactBytes || Date.now() < this.compactRetryAt) return;
    try {
      await this.compact();
    } catch (err) {
      this.compactRetryAt = Date.now() + COMPACT_RETRY_MS;
      this.metrics.errors.inc({ op: 'compact' });
      this.opts.logger.error(
        { err, dir: this.opts.dir, logBytes: this.logBytes, retryInMs: COMPACT_RETRY_MS },
        'store compaction failed; the log keeps growing until it succeeds',
      );
    }
  }

  private async writeBatch(ids: readonly string[]): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) throw new Error('the store log is not open');
    if (this.source === undefined || ids.length === 0) return;
    const seq = this.events?.lastSeq ?? 0;
    let text = '';
    for (const id of ids) {
      const instance = this.source.persisted(id);
      text += encodeLine(
        instance === undefined ? { t: 'del', seq, id } : { t: 'put', seq, instance },
      );
    }
    const bytes = Buffer.from(text);
    await handle.write(bytes);
    this.logBytes += bytes.length;
    this.metrics.written.inc(bytes.length);
    if (this.opts.fsync === 'always') await this.sync(handle);
    else this.unsynced = true;
  }

  private async sync(handle: FileHandle): Promise<void> {
    const end = this.metrics.fsync.startTimer();
    await handle.datasync();
    end();
  }

  private async syncInterval(): Promise<void> {
    const handle = this.handle;
    if (!this.unsynced || handle === undefined) return;
    this.unsynced = false;
    try {
      await this.sync(handle);
    } catch (err) {
      this.unsynced = true;
      this.failed('fsync', err as Error);
    }
  }

  /** A new snapshot of every registration, and an empty log of the next generation. */
  private async compact(): Promise<void> {
    const source = this.source;
    if (source === undefined) return;
    const { dir } = this.opts;
    const next = this.generation + 1;
    const instances = [...source.persistedAll()];
    const text = encodeSnapshot(
      { seq: this.events?.lastSeq ?? 0, generation: next, writtenAt: new Date().toISOString() },
      instances,
    );
    const tmp = join(dir, `${SNAPSHOT}.tmp`);
    await writeFile(tmp, text);
    const tmpHandle = await open(tmp, 'r+');
    try {
      await tmpHandle.sync();
    } finally {
      await tmpHandle.close();
    }
    const nextHandle = await open(join(dir, logName(next)), 'a');
    await rename(tmp, join(dir, SNAPSHOT));
    await syncDir(dir);
    const old = this.handle;
    const oldLog = join(dir, logName(this.generation));
    this.handle = nextHandle;
    this.generation = next;
    this.logBytes = 0;
    this.snapshotBytes = Buffer.byteLength(text);
    this.unsynced = false;
    await old?.close();
    await rm(oldLog, { force: true });
    this.metrics.compactions.inc();
    this.opts.logger.info(
      { dir, instances: instances.length, generation: next, bytes: this.snapshotBytes },
      'store compacted: snapshot written, log restarted',
    );
  }

  private failed(op: string, err: Error): void {
    this.metrics.errors.inc({ op });
    if (this.failure === undefined) {
      this.opts.logger.error(
        { err, dir: this.opts.dir, op },
        'store write failed: registrations are refused with STORE_UNAVAILABLE and readiness is false until it recovers',
      );
    }
    this.failure = err;
    if (this.retryTimer === undefined && !this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.reopen().then(
          () => {
            this.failure = undefined;
            this.schedule();
          },
          (reopenErr: unknown) => {
            this.failure = undefined; // so that failed() logs and schedules the next try
            this.failed('reopen', reopenErr as Error);
          },
        );
      }, this.opts.retryMs ?? 1000);
      this.retryTimer.unref();
    }
  }

  /**
   * After a failed write: a fresh handle on the log, cut back to its last whole record (a
   * write that failed half-way must not leave a torn record in the middle of the log).
   */
  private async reopen(): Promise<void> {
    if (this.closed) return;
    const old = this.handle;
    this.handle = undefined;
    await old?.close().catch(() => undefined);
    const handle = await open(this.files.log, 'a');
    try {
      await handle.truncate(this.logBytes);
      await handle.datasync();
    } catch (err) {
      await handle.close();
      throw err;
    }
    this.handle = handle;
    this.unsynced = false;
  }

  private recovered(): void {
    if (this.failure === undefined) return;
    this.failure = undefined;
    this.opts.logger.info({ dir: this.opts.dir }, 'store writes recovered');
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.unsubscribe?.();
    // From here no flush is scheduled: the last one is awaited and what remains written here.
    this.closed = true;
    for (const id of this.renewals) this.dirty.add(id);
    this.renewals.clear();
    await this.flushing;
    if (this.dirty.size > 0 && this.handle !== undefined) {
      try {
        await this.writeBatch([...this.dirty]);
        this.dirty.clear();
      } catch (err) {
        this.metrics.errors.inc({ op: 'write' });
        this.opts.logger.error(
          { err, dir: this.opts.dir, pending: this.dirty.size },
          'store write failed at shutdown: the last changes are not kept',
        );
      }
    }
    const handle = this.handle;
    this.handle = undefined;
    if (handle !== undefined) {
      if (this.unsynced) await handle.datasync().catch(() => undefined);
      await handle.close();
    }
  }
}

function unavailable(err: Error): MaxineError {
  return new MaxineError(
    'STORE_UNAVAILABLE',
    `The registry store cannot be written (${err.message}); the change is not durable, retry`,
  );
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Makes a rename in `dir` durable. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
