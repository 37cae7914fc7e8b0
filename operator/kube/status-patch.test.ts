import { describe, expect, it } from '@jest/globals';
import type { ResourceStatus } from '../../common/resources.js';
import { ManualClock } from '../registry/clock.js';
import {
  invalidStatus,
  stableJson,
  statusDiffers,
  withDeletions,
  withoutTimes,
} from './status-patch.js';

const clock = new ManualClock();
const NOW = new Date(clock.now()).toISOString();
const EARLIER = '2025-12-31T00:00:00.000Z';

describe('invalidStatus', () => {
  const readyTrue = {
    type: 'Ready',
    status: 'True' as const,
    reason: 'Applied',
    message: 'ok',
    observedGeneration: 1,
    lastTransitionTime: EARLIER,
  };
  const cases: {
    name: string;
    inForce: ResourceStatus | undefined;
    want: ResourceStatus;
  }[] = [
    {
      name: 'no valid version in force: Ready False and Invalid True, stamped by the clock',
      inForce: undefined,
      want: {
        observedGeneration: 2,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'Invalid',
            message: 'Not applied: the spec is invalid',
            observedGeneration: 2,
            lastTransitionTime: NOW,
          },
          {
            type: 'Invalid',
            status: 'True',
            reason: 'SpecInvalid',
            message: 'spec.port: too big',
            observedGeneration: 2,
            lastTransitionTime: NOW,
          },
        ],
      },
    },
    {
      name: 'an earlier valid version in force: Ready kept with its time, Invalid added',
      inForce: { observedGeneration: 1, conditions: [readyTrue] },
      want: {
        observedGeneration: 2,
        conditions: [
          readyTrue,
          {
            type: 'Invalid',
            status: 'True',
            reason: 'SpecInvalid',
            message: 'spec.port: too big',
            observedGeneration: 2,
            lastTransitionTime: NOW,
          },
        ],
      },
    },
    {
      name: 'already Invalid: its transition time is kept',
      inForce: {
        observedGeneration: 1,
        conditions: [
          readyTrue,
          {
            type: 'Invalid',
            status: 'True',
            reason: 'SpecInvalid',
            message: 'older',
            observedGeneration: 1,
            lastTransitionTime: EARLIER,
          },
        ],
      },
      want: {
        observedGeneration: 2,
        conditions: [
          readyTrue,
          {
            type: 'Invalid',
            status: 'True',
            reason: 'SpecInvalid',
            message: 'spec.port: too big',
            observedGeneration: 2,
            lastTransitionTime: EARLIER,
          },
        ],
      },
    },
  ];
  it.each(cases)('$name', ({ inForce, want }) => {
    expect(invalidStatus(inForce, 2, 'spec.port: too big', clock.now())).toEqual(want);
  });
});

describe('withDeletions', () => {
  it.each([
    { name: 'scalar desired as is', current: { a: 1 }, desired: 5, want: 5 },
    {
      name: 'absent current: desired as is',
      current: undefined,
      desired: { a: 1 },
      want: { a: 1 },
    },
    {
      name: 'missing key sent as null',
      current: { a: 1, b: 2 },
      desired: { a: 3 },
      want: { a: 3, b: null },
    },
    {
      name: 'nested missing key sent as null',
      current: { mesh: { x: 1, y: 2 } },
      desired: { mesh: { x: 1 } },
      want: { mesh: { x: 1, y: null } },
    },
    {
      name: 'arrays replaced whole',
      current: { c: [1, 2] },
      desired: { c: [3] },
      want: { c: [3] },
    },
    { name: 'null desired kept', current: { a: 1 }, desired: { a: null }, want: { a: null } },
  ])('$name', ({ current, desired, want }) => {
    expect(withDeletions(current, desired)).toEqual(want);
  });
});

describe('stableJson', () => {
  it.each([
    { name: 'keys sorted', value: { b: 1, a: 2 }, want: '{"a":2,"b":1}' },
    { name: 'nested keys sorted', value: { z: { y: 1, x: 2 } }, want: '{"z":{"x":2,"y":1}}' },
    { name: 'array order kept', value: [{ b: 1, a: 2 }, 3], want: '[{"a":2,"b":1},3]' },
    { name: 'scalar', value: 'x', want: '"x"' },
  ])('$name', ({ value, want }) => {
    expect(stableJson(value)).toBe(want);
  });
});

describe('withoutTimes and statusDiffers', () => {
  const cond = (t: string, status = 'True'): Record<string, unknown> => ({
    type: 'Ready',
    status,
    lastTransitionTime: t,
  });
  it.each([
    { name: 'null', status: null, want: null },
    {
      name: 'no conditions',
      status: { observedGeneration: 1 },
      want: { observedGeneration: 1, conditions: undefined },
    },
    {
      name: 'times dropped',
      status: { conditions: [cond(NOW)] },
      want: { conditions: [{ type: 'Ready', status: 'True' }] },
    },
  ])('withoutTimes: $name', ({ status, want }) => {
    expect(withoutTimes(status)).toEqual(want);
  });
  it.each([
    {
      name: 'only times differ',
      a: { conditions: [cond(EARLIER)] },
      b: { conditions: [cond(NOW)] },
      want: false,
    },
    { name: 'key order differs', a: { x: 1, y: 2 }, b: { y: 2, x: 1 }, want: false },
    {
      name: 'status differs',
      a: { conditions: [cond(NOW)] },
      b: { conditions: [cond(NOW, 'False')] },
      want: true,
    },
    { name: 'absent vs present', a: undefined, b: { observedGeneration: 1 }, want: true },
  ])('statusDiffers: $name', ({ a, b, want }) => {
    expect(statusDiffers(a, b)).toBe(want);
  });
});
