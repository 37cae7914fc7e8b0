/**
 * A problem that repeats on every retry is said once, then at most once per interval with the
 * number of repeats in between (pure; the clock is injected). A different problem, or the
 * first after a success, is said at once.
 */
export class RepeatLimiter {
  private key: string | undefined;
  private lastSaid = 0;
  private repeats = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to log `key` now, and how many times it recurred unsaid since it was last said. */
  check(key: string): { log: boolean; repeats: number } {
    const now = this.now();
    if (key !== this.key || now - this.lastSaid >= this.intervalMs) {
      const repeats = key === this.key ? this.repeats : 0;
      this.key = key;
      this.lastSaid = now;
      this.repeats = 0;
      return { log: true, repeats };
    }
    this.repeats += 1;
    return { log: false, repeats: this.repeats };
  }

  /** The problem went away: the next one is said at once. */
  reset(): void {
    this.key = undefined;
    this.repeats = 0;
  }
}
