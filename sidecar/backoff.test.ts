import { describe, expect, it } from '@jest/globals';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  it.each([
    [0, 0, 50],
    [0, 1, 100],
    [3, 0, 400],
    [3, 1, 800],
    [10, 0, 5000],
    [10, 1, 10_000],
    [1000, 1, 10_000],
  ])('attempt %i with random %d waits %i ms', (attempt, r, expected) => {
    expect(backoffDelay(attempt, { baseMs: 100, maxMs: 10_000, random: () => r })).toBe(expected);
  });

  it('spreads a fleet: 1,000 sidecars at attempt 5 do not retry in step', () => {
    const delays = Array.from({ length: 1000 }, () =>
      backoffDelay(5, { baseMs: 100, maxMs: 10_000 }),
    );
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(1600);
    expect(Math.max(...delays)).toBeLessThanOrEqual(3200);
    expect(new Set(delays).size).toBeGreaterThan(500);
  });
});
