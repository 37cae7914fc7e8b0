/**
 * A bounded map of entries that expire (`until`, ms): answers about tokens, keyed by the
 * token's SHA-256 (or, for the recent-header cache, the header itself). When full, the oldest
 * insertion goes first (counted in `evictions`); a key set again moves to the back. An entry
 * found expired is dropped then.
 */
export class ExpiringCache<V extends { until: number }> {
  private readonly entries = new Map<string, V>();
  /** Entries pushed out at the bound since start. */
  evictions = 0;

  constructor(private readonly maxEntries: number) {}

  /** The entry of `key` while it has not expired at `now` (an expired one is dropped). */
  get(key: string, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.until > now) return entry;
    this.entries.delete(key);
    return undefined;
  }

  /** Entries held, expired ones included until pushed out. */
  get size(): number {
    return this.entries.size;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  set(key: string, entry: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) {
        this.entries.delete(oldest);
        this.evictions += 1;
      }
    }
    this.entries.set(key, entry);
  }
}
