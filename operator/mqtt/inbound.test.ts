import { describe, expect, it } from '@jest/globals';
import { TokenBucket } from './inbound.js';

describe('TokenBucket', () => {
  it.each([
    ['a burst up to the rate', 3, [0, 0, 0, 0], [true, true, true, false]],
    ['refills at the rate', 2, [0, 0, 0, 500, 1000], [true, true, false, true, true]],
    ['never holds more than the rate', 1, [0, 10_000, 10_000], [true, true, false]],
  ])('%s', (_name, rate, times, expected) => {
    const b = new TokenBucket(rate, 0);
    expect(times.map((t) => b.take(t))).toEqual(expected);
  });
});
