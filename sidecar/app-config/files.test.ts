import { describe, expect, it } from '@jest/globals';
import { isSafeFileKey, timestampedName } from './files.js';

describe('isSafeFileKey', () => {
  it.each([
    ['app.properties', true],
    ['LOG_LEVEL', true],
    ['a-b.c_d', true],
    ['.hidden', true],
    ['.', false],
    ['..', false],
    ['..data', false],
    ['..2026', false],
    ['a/b', false],
    ['', false],
    ['x'.repeat(254), false],
  ])('%s → %s', (key, expected) => {
    expect(isSafeFileKey(key)).toBe(expected);
  });
});

describe('timestampedName', () => {
  it('is `..`-prefixed, sortable by time, and unique by serial', () => {
    const a = timestampedName(new Date('2026-12-06T10:50:00.123Z'), 1);
    expect(a).toBe('..2026_12_06_10_50_00.123_1');
    expect(timestampedName(new Date('2026-12-06T10:50:00.123Z'), 2)).not.toBe(a);
  });
});
