import { describe, expect, it } from '@jest/globals';
import { RateLimiter } from './rate-limit.js';

const limits = { requestsPerSecond: 2, burst: 3 };

/** Takes at the given times (ms) and says, for each, allowed or the Retry-After seconds. */
function run(times: number[], l = limits, limiter = new RateLimiter()): (string | number)[] {
  return times.map((t) => {
    const r = limiter.take('k', l, t);
    return r.allowed ? 'ok' : r.retryAfterSeconds;
  });
}

describe('RateLimiter: token buckets', () => {
  it.each([
    ['a burst up to the bucket size passes', [0, 0, 0], ['ok', 'ok', 'ok']],
    ['one past the burst is refused with Retry-After', [0, 0, 0, 0], ['ok', 'ok', 'ok', 1]],
    [
      'refill at the rate: one token after 500 ms',
      [0, 0, 0, 500, 500],
      ['ok', 'ok', 'ok', 'ok', 1],
    ],
    [
      'refill never exceeds the burst',
      [0, 10_000, 10_000, 10_000, 10_000],
      ['ok', 'ok', 'ok', 'ok', 1],
    ],
    [
      'steady traffic at the rate always passes',
      [0, 500, 1000, 1500, 2000, 2500],
      ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'],
    ],
    ['time going backwards refills nothing', [1000, 1000, 1000, 0, 0], ['ok', 'ok', 'ok', 1, 1]],
  ])('%s', (_what, times, expected) => {
    expect(run(times)).toEqual(expected);
  });

  it('Retry-After is the time until the next token, rounded up', () => {
    expect(run([0, 0], { requestsPerSecond: 0.1, burst: 1 })).toEqual(['ok', 10]);
    expect(run([0, 0], { requestsPerSecond: 0, burst: 1 })[1]).toBe(Infinity);
  });

  it('keys are independent', () => {
    const limiter = new RateLimiter();
    for (let i = 0; i < 3; i++) limiter.take('a', limits, 0);
    expect(limiter.take('a', limits, 0).allowed).toBe(false);
    expect(limiter.take('b', limits, 0).allowed).toBe(true);
  });

  it('stays bounded: full (idle) buckets are forgotten first, then the oldest', () => {
    const limiter = new RateLimiter(3);
    limiter.take('idle', limits, 0);
    limiter.take('busy1', limits, 5000);
    limiter.take('busy2', limits, 5000);
    // At 5 s 'idle' has refilled (3 tokens at 2/s take 1.5 s): it is dropped, the busy ones stay.
    limiter.take('new', limits, 5000);
    expect(limiter.size).toBe(3);
    for (let i = 0; i < 2; i++) limiter.take('busy1', limits, 5000);
    expect(limiter.take('busy1', limits, 5000).allowed).toBe(false);
  });
});
