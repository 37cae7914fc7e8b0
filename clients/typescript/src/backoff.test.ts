import { describe, expect, it } from '@jest/globals';
import { backoffDelayMs, heartbeatIntervalMs } from './backoff.js';
import { retryAfterMsOf } from '../../../common/client.js';

describe('backoffDelayMs', () => {
  it.each([
    // attempt, random, retryAfterMs, expected (base 100, max 1000)
    [0, 0, undefined, 50],
    [0, 1, undefined, 100],
    [1, 0, undefined, 100],
    [3, 0.5, undefined, 600],
    [4, 1, undefined, 1000], // capped at max
    [40, 0, undefined, 500], // huge attempts stay capped (no Infinity)
    [0, 0, 2000, 2000], // Retry-After is a floor
    [0, 0, 10_000_000, 4000], // …itself bounded (4 × max)
  ])('attempt %i random %f retryAfter %p -> %i ms', (attempt, random, retryAfter, expected) => {
    expect(backoffDelayMs(attempt, { baseMs: 100, maxMs: 1000 }, () => random, retryAfter)).toBe(
      expected,
    );
  });
});

describe('heartbeatIntervalMs', () => {
  it.each([
    [30, 10_000],
    [3, 1000],
    [1, 333],
    [0.1, 100], // never under 100 ms
  ])('a lease of %f s is renewed every %i ms', (ttl, expected) => {
    expect(heartbeatIntervalMs(ttl)).toBe(expected);
  });
});

describe('retryAfterMsOf', () => {
  const now = Date.parse('2026-12-06T10:00:00Z');
  it.each([
    [null, undefined],
    ['', undefined],
    ['5', 5000],
    ['0', 0],
    ['-1', undefined],
    ['Sun, 06 Dec 2026 10:00:07 GMT', 7000],
    ['Sun, 06 Dec 2026 09:00:00 GMT', 0],
    ['soon', undefined],
  ])('Retry-After %p -> %p ms', (header, expected) => {
    expect(retryAfterMsOf(header, now)).toBe(expected);
  });
});
