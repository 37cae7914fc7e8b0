/**
 * The write side every store shares: which instances changed, one batch per turn of the event
 * loop (group commit), the callers waiting for their change to be durable, and what happens
 * when a write fails. What a batch is on disk (or elsewhere) is the writer's.
 *
 * The queue is a set of instance ids, not of operations: the writer reads each instance's
 * current state when it writes, so many changes of one instance become one record, and the
 * queue is bounded by the registry's own instance limit. Heartbeats only mark a renewal,
 * moved into the queue every `renewIntervalMs`.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { MaxineError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { MaxineEvent } from '../../common/wire.js';

export interface BatchWriter {
  /** Writes the current state of these instances, durably as the policy says; throws if not. */
  write(ids: readonly string[]): Promise<void>;
  /** After a failed write: makes the next one possible (a reopened file); throws if not. */
  recover(): Promise<void>;
  /** Housekeeping between batches (compaction); must not throw. */
  afterBatch(): Promise<void>;
  /** Whether the writer holds something to write beyond the queued ids (events to publish). */
  hasPending?(): boolean;
}

export interface WriteQueueOptions {
  renewIntervalMs: number;
  /** How long after a failed write the next is tried. */
  retryMs: number;
  logger: Logger;
  /** Failures, by operation (`write`, `recover`, and the writer's own). */
  errors: Counter;
  /** Log fields naming the store (its folder, its server). */
  where: Record<string, unknown>;
}

/** Events that change what is kept of an instance (heartbeats only renew). */
const CHANGES: ReadonlySet<string> = new Set([
  'service_registered',
  'service_deregistered',
  'service_healthy',
  'service_unhealthy',
]);

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class WriteQueue {
  private readonly dirty = new Set<string>();
  private readonly renewals = new Set<string>();
  /** The ids of the batch being written. */
  private writing: ReadonlySet<string> = new Set();
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private failure: Error | undefined;
  private closed = false;
  private ready = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly writer: BatchWriter,
    private readonly opts: WriteQueueOptions,
  ) {}

  /** Instances waiting to be written: changes, and renewals not yet due. */
  get queued(): { changes: number; renewals: number } {
    return { changes: this.dirty.size, renewals: this.renewals.size };
  }

  /** Starts writing (the writer is open) and moving renewals into the queue on the interval. */
  start(): void {
    this.ready = true;
    this.renewTimer = setInterval(() => {
      if (this.renewals.size === 0) return;
      for (const id of this.renewals) this.dirty.add(id);
      this.renewals.clear();
      this.schedule();
    }, this.opts.renewIntervalMs);
    this.renewTimer.unref();
    this.schedule();
  }

  /** An event of the registry's log: a change is queued at once, a heartbeat as a renewal. */
  observe(event: MaxineEvent): void {
    if (event.type === 'service_heartbeat') {
      this.renewals.add(event.data.id);
      return;
    }
    if (!CHANGES.has(event.type) || !('instance' in event) || event.instance === undefined) return;
    if (event.instance.source !== 'registration') return;
    this.renewals.delete(event.instance.id);
    this.mark([event.instance.id]);
  }

  /** Queues these instances to be written as they are now (or deleted, when gone). */
  mark(ids: Iterable<string>): void {
    for (const id of ids) this.dirty.add(id);
    this.schedule();
  }

  /**
   * Resolves once every change queued so far is written; rejects with STORE_UNAVAILABLE when
   * it cannot be (and at once while the store is failing).
   */
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

  /** Whether this instance's change waits to be written (or is being written now). */
  isQueued(id: string): boolean {
    return this.dirty.has(id) || this.writing.has(id);
  }

  /** Whether a batch is being written now. */
  get busy(): boolean {
    return this.flushing !== undefined;
  }

  /** Asks for a pass of the flush loop (the writer's housekeeping, too). */
  schedule(): void {
    if (this.scheduled || this.closed || !this.ready) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing ??= this.flushAll().finally(() => {
        this.flushing = undefined;
        // Changes that arrived during the last batch; after a failure the retry timer
        // schedules instead, so a failing disk is not hammered.
        const pending = this.dirty.size > 0 || this.waiters.length > 0 || this.writerPending();
        if (pending && this.failure === undefined) this.schedule();
      });
    });
  }

  /** Writes batches until nothing is queued; a failed batch stays queued for the retry. */
  private async flushAll(): Promise<void> {
    await this.writer.afterBatch();
    while ((this.dirty.size > 0 || this.waiters.length > 0 || this.writerPending()) && this.ready) {
      const ids = [...this.dirty];
      this.dirty.clear();
      this.writing = new Set(ids);
      const waiters = this.waiters;
      this.waiters = [];
      try {
        if (ids.length > 0 || this.writerPending()) await this.writer.write(ids);
        this.writing = new Set();
        this.recovered();
        for (const w of waiters) w.resolve();
      } catch (err) {
        this.writing = new Set();
        for (const id of ids) this.dirty.add(id);
        this.failed('write', err as Error);
        for (const w of waiters) w.reject(unavailable(err as Error));
        return;
      }
      await this.writer.afterBatch();
    }
  }

  private writerPending(): boolean {
    return this.writer.hasPending?.() ?? false;
  }

  /**
   * Marks the store failing (writes refused, readiness false) and retries after `retryMs`:
   * the writer recovers, then what is queued is written.
   */
  failed(op: string, err: Error): void {
    this.opts.errors.inc({ op });
    if (this.failure === undefined) {
      this.opts.logger.error(
        { err, ...this.opts.where, op },
        'store write failed: registrations are refused with STORE_UNAVAILABLE and readiness is false until it recovers',
      );
    }
    this.failure = err;
    if (this.retryTimer !== undefined || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.ready = false; // no batch while the writer recovers
      this.writer.recover().then(
        () => {
          this.ready = true;
          this.recovered();
          this.schedule();
        },
        (recoverErr: unknown) => {
          this.failure = undefined; // so that failed() logs it and schedules the next try
          this.failed('recover', recoverErr as Error);
        },
      );
    }, this.opts.retryMs);
    this.retryTimer.unref();
  }

  private recovered(): void {
    if (this.failure === undefined) return;
    this.failure = undefined;
    this.opts.logger.info(this.opts.where, 'store writes recovered');
  }

  /** Stops, and writes what is queued (pending renewals too) one last time. */
  async close(): Promise<void> {
    if (this.renewTimer !== undefined) clearInterval(this.renewTimer);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.closed = true;
    for (const id of this.renewals) this.dirty.add(id);
    this.renewals.clear();
    await this.flushing;
    if ((this.dirty.size === 0 && !this.writerPending()) || !this.ready) return;
    try {
      await this.writer.write([...this.dirty]);
      this.dirty.clear();
    } catch (err) {
      this.opts.errors.inc({ op: 'write' });
      this.opts.logger.error(
        { err, ...this.opts.where, pending: this.dirty.size },
        'store write failed at shutdown: the last changes are not kept',
      );
    }
  }
}

function unavailable(err: Error): MaxineError {
  return new MaxineError(
    'STORE_UNAVAILABLE',
    `The registry store cannot be written (${err.message}); the change is not durable, retry`,
  );
}

/**
 * A write queue with the metrics every store reports (`maxine_store_errors_total`,
 * `maxine_store_queued_writes`, `maxine_store_available`), registered in `prom`.
 */
export function meteredWriteQueue(
  writer: BatchWriter,
  opts: Omit<WriteQueueOptions, 'errors' | 'retryMs'> & { retryMs?: number; prom: PromRegistry },
): WriteQueue {
  const registers = [opts.prom];
  const errors = new Counter({
    name: 'maxine_store_errors_total',
    help: 'Store operations that failed, by operation',
    labelNames: ['op'],
    registers,
  });
  const queue = new WriteQueue(writer, {
    renewIntervalMs: opts.renewIntervalMs,
    retryMs: opts.retryMs ?? 1000,
    logger: opts.logger,
    errors,
    where: opts.where,
  });
  new Gauge({
    name: 'maxine_store_queued_writes',
    help: 'Instances whose change (or renewal) waits to be written to the store',
    labelNames: ['kind'],
    registers,
    collect() {
      this.set({ kind: 'change' }, queue.queued.changes);
      this.set({ kind: 'renewal' }, queue.queued.renewals);
    },
  });
  new Gauge({
    name: 'maxine_store_available',
    help: 'Whether the store can be written (1) or its last write failed (0)',
    registers,
    collect() {
      this.set(queue.available() ? 1 : 0);
    },
  });
  return queue;
}
