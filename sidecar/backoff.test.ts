import { describe, expect, it } from '@jest/globals';
import { backoffDelay, ReconnectBackoff } from './backoff.js';

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

describe('ReconnectBackoff', () => {
  type Step = 'open' | 'sync' | 'close' | `wait ${number}`;
  /** Runs the steps on a manual clock; returns the delay each close asked for. */
  const run = (steps: Step[]): number[] => {
    let now = 0;
    const b = new ReconnectBackoff({
      baseMs: 100,
      maxMs: 10_000,
      stableMs: 60_000,
      random: () => 1,
      now: () => now,
    });
    const delays: number[] = [];
    for (const step of steps) {
      if (step === 'open') b.opened();
      else if (step === 'sync') b.synced();
      else if (step === 'close') delays.push(b.next());
      else now += Number(step.slice('wait '.length));
    }
    return delays;
  };

  it.each<[string, Step[], number[]]>([
    ['connections that never open back off', ['close', 'close', 'close'], [100, 200, 400]],
    [
      // The finding: each attempt opened, then failed on the snapshot; the delay kept resetting.
      'an open without a sync does not reset it',
      ['open', 'close', 'open', 'wait 50', 'close', 'open', 'wait 50', 'close'],
      [100, 200, 400],
    ],
    [
      'a complete snapshot (resync_end) resets it',
      ['close', 'close', 'open', 'sync', 'close'],
      [100, 200, 100],
    ],
    [
      'a connection that lived stableMs resets it (a resumed stream brings no snapshot)',
      ['close', 'close', 'open', 'wait 60000', 'close'],
      [100, 200, 100],
    ],
    [
      'one that lived less does not',
      ['close', 'close', 'open', 'wait 59999', 'close'],
      [100, 200, 400],
    ],
    [
      'it is capped',
      Array.from({ length: 10 }, (): Step => 'close'),
      [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000],
    ],
  ])('%s', (_name, steps, expected) => {
    expect(run(steps)).toEqual(expected);
  });
});
