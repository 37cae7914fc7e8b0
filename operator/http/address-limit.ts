/**
 * A token bucket per client address, taken before anything else looks at a request (before
 * authentication, so a flood of bad tokens costs a map lookup, not a TokenReview, a JWT
 * verification or an audit record each). The buckets live in a bounded map kept in
 * least-recently-seen order: a new address beyond the bound forgets the longest-idle one
 * (O(1)), so many addresses cost memory up to the bound and no more. IPv6 clients are keyed
 * by their /64, which one host usually holds whole.
 */
import type { IncomingMessage } from 'node:http';
import type { BucketLimits, Take } from '../../common/policy/rate-limit.js';

interface Bucket {
  tokens: number;
  at: number;
}

/** The caller's address as logs and limits see it (IPv4-mapped IPv6 written as IPv4). */
export function clientAddress(req: IncomingMessage): string {
  const raw = req.socket.remoteAddress ?? 'unknown';
  return raw.startsWith('::ffff:') && raw.includes('.') ? raw.slice(7) : raw;
}

/** The bucket key of an address: IPv4 whole, IPv6 by its /64 prefix. */
export function addressKey(address: string): string {
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.split('::', 2);
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (g === '' ? '0' : g.toLowerCase().replace(/^0+(?=.)/, '')))
    .join(':')}::/64`;
}

export class AddressLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: BucketLimits,
    private readonly maxAddresses: number,
  ) {}

  /** Takes one token of `address`'s bucket at `nowMs`. */
  take(address: string, nowMs: number): Take {
    const key = addressKey(address);
    const burst = Math.max(1, this.limits.burst);
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxAddresses) {
        const idlest = this.buckets.keys().next().value;
        if (idlest !== undefined) this.buckets.delete(idlest);
      }
      bucket = { tokens: burst, at: nowMs };
    } else {
      const elapsed = Math.max(0, nowMs - bucket.at) / 1000;
      bucket.tokens = Math.min(burst, bucket.tokens + elapsed * this.limits.requestsPerSecond);
      bucket.at = nowMs;
      this.buckets.delete(key); // re-inserted below: the map stays in least-recently-seen order
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens) };
    }
    const rate = this.limits.requestsPerSecond;
    const wait = rate > 0 ? (1 - bucket.tokens) / rate : Infinity;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(wait)) };
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.buckets.size;
  }
}
