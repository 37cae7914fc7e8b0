import { describe, expect, it } from '@jest/globals';
import type { HealthStatus } from '../../common/wire.js';
import { HealthState } from './state.js';

const short: Record<string, HealthStatus> = { p: 'passing', w: 'warning', c: 'critical' };
/** "p c c" → the statuses, one letter each. */
const statuses = (letters: string) => letters.split(' ').map((l) => short[l]!);

/** Feeds the results in order; returns the reported status after each one, as letters. */
function run(failureThreshold: number, successThreshold: number, results: string): string {
  const state = new HealthState({ failureThreshold, successThreshold });
  return statuses(results)
    .map((status, i) => state.observe({ status, output: `#${i}` }).status[0])
    .join(' ');
}

describe('HealthState', () => {
  it('is unknown before the first result', () => {
    expect(new HealthState({ failureThreshold: 3, successThreshold: 2 }).current()).toBeUndefined();
  });

  it.each([
    // [failureThreshold, successThreshold, results, reported after each]
    ['the first result sets a critical status at once', 3, 2, 'c', 'c'],
    ['the first result sets a passing status at once', 3, 2, 'p', 'p'],
    ['the first result sets a warning status at once', 3, 2, 'w', 'w'],
    ['critical after failureThreshold failures', 3, 2, 'p c c c c', 'p p p c c'],
    ['healthy again after successThreshold successes', 3, 2, 'c p p p', 'c c p p'],
    ['a full cycle', 3, 2, 'p c c c p p c', 'p p p c c p p'],
    ['passing and warning replace each other at once', 3, 2, 'p w p w w p', 'p w p w w p'],
    ['a warning during a failure streak is taken at once', 3, 2, 'p c c w', 'p p p w'],
    ['a warning resets the failure streak', 3, 2, 'p c c w c c c', 'p p p w w w c'],
    ['a passing result resets the failure streak', 3, 2, 'p c c p c c', 'p p p p p p'],
    ['a failure resets the success streak', 3, 2, 'c p c p p', 'c c c c p'],
    ['a warning counts toward recovery', 3, 2, 'c w p', 'c c p'],
    ['recovery lands on the latest status', 3, 2, 'c p w', 'c c w'],
    ['thresholds of 1 follow every result', 1, 1, 'p c p w c w', 'p c p w c w'],
    ['a successThreshold of 3', 1, 3, 'p c p p p', 'p c c c p'],
  ])('%s', (_name, failures, successes, results, expected) => {
    expect(run(failures, successes, results)).toBe(expected);
  });

  it('reports changed only when the status changes', () => {
    const state = new HealthState({ failureThreshold: 2, successThreshold: 1 });
    const changed = statuses('p p w w c c c p').map(
      (status) => state.observe({ status, output: '' }).changed,
    );
    expect(changed).toEqual([true, false, true, false, false, true, false, true]);
  });

  it('keeps the output of the latest result that agreed with the reported status', () => {
    const state = new HealthState({ failureThreshold: 2, successThreshold: 2 });
    expect(state.observe({ status: 'passing', output: 'ok 1' }).output).toBe('ok 1');
    expect(state.observe({ status: 'passing', output: 'ok 2' }).output).toBe('ok 2');
    // Held back by the threshold: the status is still passing, so is the output.
    expect(state.observe({ status: 'critical', output: 'down 1' })).toEqual({
      status: 'passing',
      output: 'ok 2',
      changed: false,
    });
    expect(state.observe({ status: 'critical', output: 'down 2' }).output).toBe('down 2');
    expect(state.observe({ status: 'critical', output: 'down 3' }).output).toBe('down 3');
    expect(state.observe({ status: 'warning', output: 'slow' }).output).toBe('down 3');
    expect(state.observe({ status: 'passing', output: 'ok 3' })).toEqual({
      status: 'passing',
      output: 'ok 3',
      changed: true,
    });
    expect(state.current()).toEqual({ status: 'passing', output: 'ok 3' });
  });

  it('carries an initial status over with fresh streaks', () => {
    const state = new HealthState(
      { failureThreshold: 2, successThreshold: 1 },
      { status: 'passing', output: 'before' },
    );
    expect(state.current()).toEqual({ status: 'passing', output: 'before' });
    expect(state.observe({ status: 'critical', output: 'x' }).status).toBe('passing');
    expect(state.observe({ status: 'critical', output: 'y' })).toEqual({
      status: 'critical',
      output: 'y',
      changed: true,
    });
  });

  it('does not let callers change its state through a returned object', () => {
    const state = new HealthState({ failureThreshold: 1, successThreshold: 1 });
    const seen = state.observe({ status: 'passing', output: 'ok' });
    seen.status = 'critical';
    state.current()!.output = 'changed';
    expect(state.current()).toEqual({ status: 'passing', output: 'ok' });
  });
});
