/**
 * A bounded map of entries that expire (`until`, ms): answers about tokens, keyed by the
 * token's SHA-256. When full, the oldest insertion goes first; a key set again moves to the
 * back.
 */
export class ExpiringCache<V extends { until: number }> {
  private readonly entries = new Map<string, V>();

  constructor(private readonly maxEntries: number) {}

  /** The entry of `key` while it has not expired at `now`. */
  get(key: string, now: number): V | undefined {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.until > now ? entry : undefined;
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
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, entry);
  }
}
