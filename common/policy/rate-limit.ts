/**
 * Token buckets (pure; time is passed in): `burst` tokens at most, refilled at
 * `requestsPerSecond`; a request takes one token or is refused with the seconds until one is
 * there (for `Retry-After`). Keyed buckets (per identity, per service) live in a bounded map:
 * a bucket that has refilled completely carries no state and may be dropped, so the map
 * forgets idle keys first and never grows past `maxKeys`.
 */

export interface BucketLimits {
  requestsPerSecond: number;
  burst: number;
}

export type Take =
  { allowed: true; remaining: number } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxKeys = 100_000) {}

  /** Takes one token of `key`'s bucket at time `nowMs`. */
  take(key: string, limits: BucketLimits, nowMs: number): Take {
    const burst = Math.max(1, limits.burst);
    const rate = limits.requestsPerSecond;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: burst, at: nowMs };
      this.remember(key, bucket, nowMs, limits);
    } else {
      const elapsed = Math.max(0, nowMs - bucket.at) / 1000;
      bucket.tokens = Math.min(burst, bucket.tokens + elapsed * rate);
      bucket.at = nowMs;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens) };
    }
    const wait = rate > 0 ? (1 - bucket.tokens) / rate : Infinity;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(wait)) };
  }

  get size(): number {
    return this.buckets.size;
  }

  private remember(key: string, bucket: Bucket, nowMs: number, limits: BucketLimits): void {
    if (this.buckets.size >= this.maxKeys) {
      // Drop buckets that are full again (they hold no state), then the oldest ones.
      const fullAfterMs =
        (Math.max(1, limits.burst) / Math.max(limits.requestsPerSecond, 1e-9)) * 1000;
      for (const [k, b] of this.buckets) {
        if (nowMs - b.at >= fullAfterMs) this.buckets.delete(k);
      }
      while (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest === undefined) break;
        this.buckets.delete(oldest);
      }
    }
    this.buckets.set(key, bucket);
  }
}
