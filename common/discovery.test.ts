import { describe, expect, test } from '@jest/globals';
import { splitDiscoverQuery } from './discovery.js';

const key = (q: Record<string, string>) => splitDiscoverQuery(q).filterKey;

describe('the discovery filter-cache key (shared by operator and sidecar)', () => {
  test.each([
    [
      'a forged separator in a metadata value',
      { 'meta.a': 'x\u0001b=y' },
      { 'meta.a': 'x', 'meta.b': 'y' },
    ],
    ['"=" in a key vs in a value', { 'meta.a=b': 'c' }, { 'meta.a': 'b=c' }],
    ['a NUL in the version', { version: 'v1\u0000z1' }, { version: 'v1', zone: 'z1' }],
    ['an empty version vs none', { version: '' }, {}],
  ])('%s: different filters, different keys', (_what, a, b) => {
    expect(key(a)).not.toBe(key(b));
  });

  test('the order of metadata filters does not matter', () => {
    expect(key({ 'meta.b': 'y', 'meta.a': 'x' })).toBe(key({ 'meta.a': 'x', 'meta.b': 'y' }));
  });
});
