/**
 * Capped exponential back-off with "equal jitter": half the delay is fixed, half random, so
 * a fleet of sidecars that lost the operator at the same moment does not come back in step,
 * yet none retries at once in a tight loop.
 */
export function backoffDelay(
  attempt: number,
  opts: { baseMs: number; maxMs: number; random?: () => number },
): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (opts.random ?? Math.random)() * (ceiling / 2));
}

export interface ReconnectOptions {
  baseMs: number;
  maxMs: number;
  /**
   * A connection that stayed open this long counts as healthy even without a snapshot (a
   * stream resumed with `since` brings none). Default 60 s, two of the operator's pings.
   */
  stableMs?: number;
  random?: () => number;
  now?: () => number;
}

/**
 * When to reconnect the event stream. The back-off resets only after a successful sync (a
 * complete snapshot) or a connection that lived `stableMs` — not when a connection opens:
 * a stream that opens and then fails (a snapshot too large, a refusal after the upgrade)
 * would otherwise retry in a tight loop, each attempt costing the operator a snapshot.
 */
export class ReconnectBackoff {
  private attempt = 0;
  private openedAt: number | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ReconnectOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Failed attempts since the last success. */
  get attempts(): number {
    return this.attempt;
  }

  /** A connection opened: noted, but nothing is forgiven yet. */
  opened(): void {
    this.openedAt = this.now();
  }

  /** A snapshot was received whole: the stream works. */
  synced(): void {
    this.attempt = 0;
  }

  /** The connection closed (or could not open): how long to wait before the next attempt. */
  next(): number {
    const lived = this.openedAt === undefined ? 0 : this.now() - this.openedAt;
    if (this.openedAt !== undefined && lived >= (this.opts.stableMs ?? 60_000)) this.attempt = 0;
    this.openedAt = undefined;
    const delay = backoffDelay(this.attempt, this.opts);
    this.attempt += 1;
    return delay;
  }
}
