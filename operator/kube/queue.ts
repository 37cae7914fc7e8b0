/**
 * A per-key ordered work queue, as client-go's workqueue: at most one reconcile in flight per
 * key, a burst of changes to one key collapses into one pending run, and a failed reconcile
 * comes back after an exponential back-off that resets on success. A permanent failure (a
 * Kubernetes 400, 403, 422: the same call fails the same way until a person changes something)
 * is reported and not retried; the key runs again when it is next added (its object changed,
 * a resync). Time is injected so the semantics are tested without waiting. See
 * docs/decisions/0004-work-queue.md.
 */
import { isKubePermanent } from './errors.js';

export interface Scheduler {
  /** Runs `fn` after `ms`; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

export const timerScheduler: Scheduler = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

export interface QueueOptions {
  reconcile: (key: string) => Promise<void>;
  /** Parallel reconciles across different keys. */
  workers?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  scheduler?: Scheduler;
  /** A failure that is retried after `retryInMs`. */
  onError?: (key: string, err: unknown, attempt: number, retryInMs: number) => void;
  /** Whether retrying cannot help. Default: a permanent Kubernetes error (classifyKubeError). */
  isPermanent?: (err: unknown) => boolean;
  /** A failure that is not retried; `attempt` counts the key's failures since its last success. */
  onPermanentError?: (key: string, err: unknown, attempt: number) => void;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  /** Keys that changed while being reconciled: run again once the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly retries = new Map<string, () => void>();
  private readonly idleWaiters: (() => void)[] = [];
  private stopped = false;

  constructor(private readonly opts: QueueOptions) {}

  /** Asks for a reconcile of `key`; collapses with a pending one. */
  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.cancelRetry(key);
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.pump();
  }

  get depth(): number {
    return this.ready.length;
  }

  get inFlight(): number {
    return this.active.size;
  }

  /** Resolves when nothing is queued, running or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking work, cancels retries, and waits for the reconciles in flight. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const cancel of this.retries.values()) cancel();
    this.retries.clear();
    this.ready.length = 0;
    this.queued.clear();
    this.dirty.clear();
    if (this.active.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.ready.length === 0 && this.active.size === 0 && this.retries.size === 0;
  }

  private pump(): void {
    const workers = this.opts.workers ?? 2;
    while (!this.stopped && this.active.size < workers && this.ready.length > 0) {
      const key = this.ready.shift() as string;
      this.queued.delete(key);
      this.active.add(key);
      void this.run(key);
    }
    if (this.isIdle() || (this.stopped && this.active.size === 0)) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async run(key: string): Promise<void> {
    try {
      await this.opts.reconcile(key);
      this.failures.delete(key);
    } catch (err) {
      if ((this.opts.isPermanent ?? isKubePermanent)(err)) this.giveUp(key, err);
      else this.retryLater(key, err);
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }

  /** Retrying would fail the same way and back off forever: report it and wait for a change. */
  private giveUp(key: string, err: unknown): void {
    this.opts.onPermanentError?.(key, err, this.countFailure(key));
  }

  private retryLater(key: string, err: unknown): void {
    const attempt = this.countFailure(key);
    const base = this.opts.baseDelayMs ?? 100;
    const delay = Math.min(this.opts.maxDelayMs ?? 60_000, base * 2 ** (attempt - 1));
    this.opts.onError?.(key, err, attempt, delay);
    if (this.stopped) return;
    // A newer change supersedes the retry: it is queued at once instead.
    if (this.dirty.has(key)) return;
    const scheduler = this.opts.scheduler ?? timerScheduler;
    this.retries.set(
      key,
      scheduler.after(delay, () => {
        this.retries.delete(key);
        this.add(key);
      }),
    );
  }

  private countFailure(key: string): number {
    const attempt = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempt);
    return attempt;
  }

  private cancelRetry(key: string): void {
    const cancel = this.retries.get(key);
    if (cancel !== undefined) {
      cancel();
      this.retries.delete(key);
    }
  }
}
