import { describe, expect, it } from '@jest/globals';
import type { Condition } from '../common/resources.js';
import { STATUS_WRITE_FAILED, statusWriteFailedConditions } from './status.js';

const at = (iso: string): number => Date.parse(iso);
const ready: Condition = {
  type: 'Ready',
  status: 'True',
  reason: 'Applied',
  message: 'ok',
  lastTransitionTime: '2026-12-01T00:00:00.000Z',
  observedGeneration: 3,
};
const refused = (time: string, problem = '422 Invalid: status.ready: Too long'): Condition => ({
  type: STATUS_WRITE_FAILED,
  status: 'True',
  reason: 'WriteRefused',
  message: `The API server refused the status write, so this status is out of date; tried again when the object changes or is resynced: ${problem}`,
  lastTransitionTime: time,
  observedGeneration: 4,
});
const filler = (i: number): Condition => ({ ...ready, type: `Other${i}` });

describe('statusWriteFailedConditions', () => {
  it.each<[string, Condition[], string | undefined, Condition[]]>([
    [
      'added beside the stored ones',
      [ready],
      undefined,
      [ready, refused('2026-12-06T05:00:00.000Z')],
    ],
    ['no stored conditions', [], undefined, [refused('2026-12-06T05:00:00.000Z')]],
    [
      'said again: keeps its transition time, takes the new problem',
      [ready, refused('2026-12-05T00:00:00.000Z')],
      '403 Forbidden: cannot patch',
      [ready, refused('2026-12-05T00:00:00.000Z', '403 Forbidden: cannot patch')],
    ],
    [
      'sixteen stored: the oldest goes, so the CRD bound holds',
      Array.from({ length: 16 }, (_, i) => filler(i)),
      undefined,
      [...Array.from({ length: 15 }, (_, i) => filler(i + 1)), refused('2026-12-06T05:00:00.000Z')],
    ],
  ])('%s', (_what, stored, problem, expected) => {
    const out = statusWriteFailedConditions(
      stored,
      problem ?? '422 Invalid: status.ready: Too long',
      4,
      at('2026-12-06T05:00:00.000Z'),
    );
    expect(out).toEqual(expected);
  });
});
