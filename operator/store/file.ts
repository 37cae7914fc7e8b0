/**
 * The `file` store: a snapshot (`snapshot.jsonl`) plus an append-only log
 * (`log.<generation>.jsonl`) of the records in codec.ts, in one folder. What is written when
 * (group commit, coalesced renewals, failures) is the WriteQueue's (write-queue.ts); this
 * module is the files.
 *
 * fsync policy: `always` fdatasyncs each batch before the changes it holds are answered (a
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
import type { Logger } from '../../common/logger.js';
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
import type { ConfigHistory } from '../registry/config-history.js';
import { ConfigFile } from './config-file.js';
import { EventFile } from './event-file.js';
import { syncPath } from './fsync.js';
import type { RegistryStore, StoredState } from './store.js';
import { WriteQueue } from './write-queue.js';
import type { BatchWriter } from './write-queue.js';

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
  /** Keep the event log too (`events.jsonl`, event-file.ts), so `since=` survives a restart. */
  keepEvents?: boolean;
  /** Keep the config versions and history too (`config-history.jsonl`, config-file.ts). */
  keepConfig?: boolean;
}

const SNAPSHOT = 'snapshot.jsonl';
/** How long after a failed compaction the next is tried. */
const COMPACT_RETRY_MS = 30_000;
const LOG_RE = /^log\.(\d+)\.jsonl$/;
const logName = (generation: number): string => `log.${generation}.jsonl`;

type Source = Pick<Registry, 'persisted' | 'persistedAll'>;

export class FileStore implements RegistryStore, BatchWriter {
  readonly kind = 'file';
  private handle: FileHandle | undefined;
  private generation = 0;
  private logBytes = 0;
  private snapshotBytes = 0;
  private source: Source | undefined;
  private events: EventLog | undefined;
  private unsubscribe: (() => void) | undefined;
  private unsynced = false;
  private compactRetryAt = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  private eventsTimer: NodeJS.Timeout | undefined;
  private readonly queue: WriteQueue;
  private readonly eventFile: EventFile | undefined;
  private readonly configFile: ConfigFile | undefined;
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
        const { changes, renewals } = store.queue.queued;
        this.set({ kind: 'change' }, changes);
        this.set({ kind: 'renewal' }, renewals);
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
        if (store.eventFile !== undefined) this.set({ file: 'events' }, store.eventFile.bytes);
        if (store.configFile !== undefined) this.set({ file: 'config' }, store.configFile.bytes);
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
    if (opts.keepEvents === true) {
      this.eventFile = new EventFile({
        dir: opts.dir,
        logger: opts.logger,
        errors: this.metrics.errors,
        compactions: new Counter({
          name: 'maxine_store_event_compactions_total',
          help: 'Rewrites of the kept event log to its bounds',
          registers,
        }),
      });
    }
    if (opts.keepConfig === true)
      this.configFile = new ConfigFile({
        dir: opts.dir,
        logger: opts.logger,
        errors: this.metrics.errors,
        fsync: opts.fsync,
        fsyncIntervalMs: opts.fsyncIntervalMs,
      });
    this.queue = new WriteQueue(this, {
      renewIntervalMs: opts.renewIntervalMs,
      retryMs: opts.retryMs ?? 1000,
      logger: opts.logger,
      errors: this.metrics.errors,
      where: { dir: opts.dir },
    });
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
    const events = await this.eventFile?.load();
    const configs = await this.configFile?.load();
    return {
      instances: [...state.values()],
      seq,
      ...(events && { events }),
      ...(configs && { configs }),
    };
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
    this.unsubscribe = events.subscribe((event) => this.queue.observe(event));
    if (this.opts.fsync === 'interval') {
      this.syncTimer = setInterval(() => void this.syncInterval(), this.opts.fsyncIntervalMs);
      this.syncTimer.unref();
    }
    if (this.eventFile !== undefined) {
      this.eventFile.attach(events);
      // Events are written before they are sent (a kill loses none); made durable against
      // power loss on this interval, or with each batch under `always`.
      this.eventsTimer = setInterval(() => void this.syncEvents(), this.opts.fsyncIntervalMs);
      this.eventsTimer.unref();
    }
    // Starting runs one pass: a log already past its bound is compacted at once.
    this.queue.start();
  }

  keepConfigs(history: ConfigHistory): void {
    this.configFile?.attach(history);
  }

  forget(ids: readonly string[]): void {
    if (ids.length > 0) this.queue.mark(ids);
  }

  get committed(): () => Promise<void> {
    return this.queue.committed;
  }

  available(): boolean {
    return this.queue.available();
  }

  /** One batch: the current state of each instance (a delete when it is gone), appended. */
  async write(ids: readonly string[]): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) throw new Error('the store log is not open');
    if (this.source === undefined) return;
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
    if (this.opts.fsync === 'always') await Promise.all([this.sync(handle), this.syncEvents()]);
    else this.unsynced = true;
  }

  /** The kept event log made durable; a failure is logged and counted, never thrown. */
  private async syncEvents(): Promise<void> {
    try {
      await this.eventFile?.sync();
    } catch (err) {
      this.metrics.errors.inc({ op: 'events-fsync' });
      this.opts.logger.error({ err, dir: this.opts.dir }, 'event log fsync failed');
    }
  }

  private async sync(handle: FileHandle): Promise<void> {
    const end = this.metrics.fsync.startTimer();
    await handle.datasync();
    end();
  }

  private async syncInterval(): Promise<void> {
    const handle = this.handle;
    if (!this.unsynced || handle === undefined || this.queue.busy) return;
    this.unsynced = false;
    try {
      await this.sync(handle);
    } catch (err) {
      this.unsynced = true;
      this.queue.failed('fsync', err as Error);
    }
  }

  /**
   * Compacts when the log is past its bound. A failure leaves the log whole and writes going
   * on; compaction is tried again a while later (not on every write: a full disk would spin).
   */
  async afterBatch(): Promise<void> {
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
    await syncPath(dir);
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

  /**
   * After a failed write: a fresh handle on the log, cut back to its last whole record (a
   * write that failed half-way must not leave a torn record in the middle of the log).
   */
  async recover(): Promise<void> {
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

  async close(): Promise<void> {
    if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
    if (this.eventsTimer !== undefined) clearInterval(this.eventsTimer);
    this.unsubscribe?.();
    await this.queue.close();
    await this.eventFile?.close();
    await this.configFile?.close();
    const handle = this.handle;
    this.handle = undefined;
    if (handle !== undefined) {
      if (this.unsynced) await handle.datasync().catch(() => undefined);
      await handle.close();
    }
  }
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
