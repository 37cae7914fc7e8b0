import { describe, expect, it } from '@jest/globals';
import type { ConfigChanges, ConfigMap } from './config-version.js';
import { configChanges, configHash, noChanges } from './config-version.js';

const changeCases: [string, ConfigMap | undefined, ConfigMap | undefined, ConfigChanges][] = [
  ['nothing before', undefined, { a: '1' }, { added: ['a'], changed: [], removed: [] }],
  ['nothing after', { a: '1' }, undefined, { added: [], changed: [], removed: ['a'] }],
  ['same', { a: '1', b: '2' }, { b: '2', a: '1' }, { added: [], changed: [], removed: [] }],
  [
    'each kind, sorted',
    { z: '1', b: '2', keep: 'k', c: '3' },
    { keep: 'k', b: 'two', y: 'new', a: 'new' },
    { added: ['a', 'y'], changed: ['b'], removed: ['c', 'z'] },
  ],
  ['empty value counts', { a: '' }, { a: 'x' }, { added: [], changed: ['a'], removed: [] }],
  [
    'inherited names are keys too',
    {},
    { toString: 'x' },
    { added: ['toString'], changed: [], removed: [] },
  ],
];

describe('configChanges', () => {
  it.each(changeCases)('%s', (_name, before, after, expected) => {
    const got = configChanges(before, after);
    expect(got).toEqual(expected);
    expect(noChanges(got)).toBe(
      expected.added.length + expected.changed.length + expected.removed.length === 0,
    );
  });
});

const hashCases: [string, ConfigMap | undefined, ConfigMap | undefined, boolean][] = [
  ['key order does not matter', { a: '1', b: '2' }, { b: '2', a: '1' }, true],
  ['absent equals empty', undefined, {}, true],
  ['a value differs', { a: '1' }, { a: '2' }, false],
  ['a separator cannot shift a boundary', { 'a=b': 'c' }, { a: 'b=c' }, false],
  ['key and value swapped', { a: 'b' }, { b: 'a' }, false],
];

describe('configHash', () => {
  it.each(hashCases)('%s', (_name, x, y, same) => {
    expect(configHash(x) === configHash(y)).toBe(same);
    expect(configHash(x)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
