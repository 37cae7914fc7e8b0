import { describe, expect, it } from '@jest/globals';
import { configHash } from '../../common/config-version.js';
import { AppConfigState, WaitersFull } from './state.js';

type Step = [Record<string, string> | undefined, number | undefined];

const cases: [string, Step[], number[]][] = [
  ['takes the operator version', [[{ A: '1' }, 4]], [4]],
  [
    'same content keeps the version',
    [
      [{ A: '1' }, 4],
      [{ A: '1' }, 5],
    ],
    [4, 4],
  ],
  [
    'operator restarted (counts from 1): still moves on',
    [
      [{ A: '1' }, 4],
      [{ A: '2' }, 1],
    ],
    [4, 5],
  ],
  [
    'no operator version: +1',
    [
      [{ A: '1' }, undefined],
      [{ A: '2' }, undefined],
    ],
    [1, 2],
  ],
  [
    'config gone: +1',
    [
      [{ A: '1' }, 2],
      [undefined, undefined],
    ],
    [2, 3],
  ],
  [
    'no config at all stays 0',
    [
      [undefined, 3],
      [{}, 4],
    ],
    [0, 0],
  ],
];

describe('AppConfigState versions', () => {
  it.each(cases)('%s', (_name, steps, versions) => {
    const state = new AppConfigState({ namespace: 'ns', name: 'app' }, 1);
    const got = steps.map(([config, op]) => {
      state.update(config, op);
      expect(state.current.hash).toBe(configHash(config));
      return state.current.version;
    });
    expect(got).toEqual(versions);
  });
});

describe('AppConfigState waits', () => {
  it('answers at once on another version, wakes on change, times out, and is bounded', async () => {
    const counts: number[] = [];
    const state = new AppConfigState({ namespace: 'ns', name: 'app' }, 1, (n) => counts.push(n));
    state.update({ A: '1' }, 1);
    const never = new AbortController().signal;
    expect((await state.wait(0, 10_000, never))?.version).toBe(1);
    const waiting = state.wait(1, 10_000, never);
    expect(() => state.wait(1, 10_000, never)).toThrow(WaitersFull);
    state.update({ A: '2' }, 2);
    expect((await waiting)?.config).toEqual({ A: '2' });
    expect(await state.wait(2, 20, never)).toBeUndefined();
    const cancel = new AbortController();
    const cancelled = state.wait(2, 10_000, cancel.signal);
    cancel.abort();
    expect(await cancelled).toBeUndefined();
    expect(state.waiting).toBe(0);
    expect(counts).toEqual([1, 0, 1, 0, 1, 0]);
  });
});
