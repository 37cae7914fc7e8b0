import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import type { ServiceRef } from '../../common/wire.js';
import { DestinationRateLimiter } from './rate-limit.js';

const orders = { namespace: 'shop', name: 'orders' };
type Limit = { requestsPerSecond: number; burst: number } | undefined;

/** Takes at the given times (ms): 'ok' or the Retry-After seconds of the refusal. */
function run(
  limiter: DestinationRateLimiter,
  limit: Limit,
  times: number[],
  to: ServiceRef = orders,
) {
  return times.map((t) => {
    const d = limiter.take(to, limit, t);
    return d.ok ? 'ok' : d.retryAfterSeconds;
  });
}

describe('DestinationRateLimiter', () => {
  it.each<[string, Limit, number[], (string | number)[]]>([
    [
      'no rateLimit in the spec: never refused',
      undefined,
      [0, 0, 0, 0, 0],
      ['ok', 'ok', 'ok', 'ok', 'ok'],
    ],
    [
      'a burst up to the bucket passes, one more is refused',
      { requestsPerSecond: 2, burst: 3 },
      [0, 0, 0, 0],
      ['ok', 'ok', 'ok', 1],
    ],
    [
      'refills at the rate',
      { requestsPerSecond: 2, burst: 1 },
      [0, 0, 499, 500, 500],
      ['ok', 1, 1, 'ok', 1],
    ],
    [
      'refill stops at the burst',
      { requestsPerSecond: 10, burst: 2 },
      [0, 60_000, 60_000, 60_000],
      ['ok', 'ok', 'ok', 1],
    ],
    [
      'steady traffic at the rate passes',
      { requestsPerSecond: 4, burst: 1 },
      [0, 250, 500, 750, 1000],
      ['ok', 'ok', 'ok', 'ok', 'ok'],
    ],
    [
      'Retry-After is the whole seconds until a token',
      { requestsPerSecond: 0.25, burst: 1 },
      [0, 0, 1000, 3999],
      ['ok', 4, 3, 1],
    ],
    ['Retry-After is at least 1', { requestsPerSecond: 1000, burst: 1 }, [0, 0], ['ok', 1]],
  ])('%s', (_what, limit, times, expected) => {
    expect(run(new DestinationRateLimiter(), limit, times)).toEqual(expected);
  });

  it('a spec change resizes the bucket: a smaller burst caps it, a larger one refills to it', () => {
    const limiter = new DestinationRateLimiter();
    expect(run(limiter, { requestsPerSecond: 1, burst: 10 }, [0])).toEqual(['ok']); // 9 left
    expect(run(limiter, { requestsPerSecond: 1, burst: 2 }, [0, 0, 0])).toEqual(['ok', 'ok', 1]);
    expect(
      run(
        limiter,
        { requestsPerSecond: 1, burst: 5 },
        [10_000, 10_000, 10_000, 10_000, 10_000, 10_000],
      ),
    ).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 1]);
    // A faster rate applies from the next call on.
    expect(run(limiter, { requestsPerSecond: 100, burst: 5 }, [10_010, 10_010])).toEqual(['ok', 1]);
  });

  it('destinations have buckets of their own', () => {
    const limiter = new DestinationRateLimiter();
    const limit = { requestsPerSecond: 1, burst: 1 };
    expect(run(limiter, limit, [0, 0])).toEqual(['ok', 1]);
    expect(run(limiter, limit, [0], { namespace: 'shop', name: 'cart' })).toEqual(['ok']);
    expect(run(limiter, limit, [0], { namespace: 'other', name: 'orders' })).toEqual(['ok']);
  });

  it('counts refusals and holds at most maxDestinations buckets', async () => {
    const registry = new Registry();
    const limiter = new DestinationRateLimiter({ registry, maxDestinations: 2 });
    const limit = { requestsPerSecond: 1, burst: 1 };
    const ref = (name: string) => ({ namespace: 'shop', name });
    run(limiter, limit, [0, 0, 0], ref('a'));
    run(limiter, limit, [0], ref('b'));
    run(limiter, limit, [0], ref('c'));
    const limited = await registry.getSingleMetric('maxine_sidecar_rate_limited_total')!.get();
    expect(limited.values[0]!.value).toBe(2);
    const held = await registry.getSingleMetric('maxine_sidecar_rate_limit_buckets')!.get();
    expect(held.values[0]!.value).toBe(2);
  });
});
