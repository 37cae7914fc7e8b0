/**
 * A counting semaphore with a bounded wait queue (pure): at most `limit` holders at once, at
 * most `queueLimit` waiting in arrival order; past that `acquire` answers `undefined` at once
 * so the caller refuses instead of piling up work. Snapshot builds pass through one.
 */
export type Release = () => void;

export class Gate {
  private held = 0;
  private readonly waiting: ((release: Release) => void)[] = [];

  constructor(
    private readonly limit: number,
    private readonly queueLimit: number,
  ) {}

  get inFlight(): number {
    return this.held;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * A release function once a slot is free; `undefined` when the queue is full. `cancelled`
   * lets a waiter that gave up (its socket closed) leave the queue.
   */
  acquire(cancelled?: AbortSignal): Promise<Release | undefined> {
    if (this.held < this.limit) {
      this.held += 1;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.queueLimit) return Promise.resolve(undefined);
    if (cancelled?.aborted === true) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        const at = this.waiting.indexOf(waiter);
        if (at !== -1) {
          this.waiting.splice(at, 1);
          resolve(undefined);
        }
      };
      // A granted waiter stops listening: one stream acquires once per snapshot chunk, and
      // listeners left behind would pile up on its signal for as long as it stays open.
      const waiter = (release: Release): void => {
        cancelled?.removeEventListener('abort', onAbort);
        resolve(release);
      };
      this.waiting.push(waiter);
      cancelled?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next !== undefined) next(this.releaser());
      else this.held -= 1;
    };
  }
}

/**
 * Turns of the event loop shared by every snapshot: each `next()` resolves on a later turn,
 * one waiter per turn in arrival order, so however many snapshots are being built, one
 * chunk is serialized per turn and requests (discovery) wait behind at most one chunk.
 */
export class Turnstile {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.waiting.shift()?.();
      if (this.waiting.length > 0) this.schedule();
    });
  }
}
