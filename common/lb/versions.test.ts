import { describe, expect, it } from '@jest/globals';
import { createVersionedBalancer, VersionSplit } from './versions.js';
import type { StrategyName } from './types.js';

interface E {
  id: string;
  weight: number;
  version?: string;
}
const e = (id: string, version?: string, weight = 1): E => ({
  id,
  weight,
  ...(version !== undefined && { version }),
});
const versionOf = (x: E) => x.version;
const pool = [e('a1', 'v1'), e('a2', 'v1'), e('b1', 'v2'), e('c1')];

function shares(pick: () => E | undefined, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const v = pick()?.version ?? 'none';
    out[v] = (out[v] ?? 0) + 1;
  }
  return out;
}

describe('createVersionedBalancer', () => {
  it.each([
    [
      '90/10',
      [
        { name: 'v1', weight: 90 },
        { name: 'v2', weight: 10 },
      ],
      1000,
      { v1: 900, v2: 100 },
    ],
    [
      '50/50',
      [
        { name: 'v1', weight: 1 },
        { name: 'v2', weight: 1 },
      ],
      10,
      { v1: 5, v2: 5 },
    ],
    [
      'a version at weight 0 takes nothing',
      [
        { name: 'v1', weight: 0 },
        { name: 'v2', weight: 3 },
      ],
      9,
      { v2: 9 },
    ],
    [
      'a version without instances is left out',
      [
        { name: 'v1', weight: 1 },
        { name: 'v3', weight: 9 },
      ],
      10,
      { v1: 10 },
    ],
  ] as const)('%s: exact shares over a whole cycle', (_name, versions, n, expected) => {
    for (const strategy of ['round-robin', 'random', 'least-connections'] as StrategyName[]) {
      const b = createVersionedBalancer(strategy, pool, {}, { versions, versionOf });
      expect(shares(() => b.pick(), n)).toEqual(expected);
    }
  });

  it('no declared version able to take traffic: the whole pool, as discovery does', () => {
    const b = createVersionedBalancer(
      'round-robin',
      pool,
      {},
      { versions: [{ name: 'v9', weight: 1 }], versionOf },
    );
    expect(new Set(Array.from({ length: 8 }, () => b.pick()?.id))).toEqual(
      new Set(['a1', 'a2', 'b1', 'c1']),
    );
  });

  it('with a key the version sticks to the key, ~90/10 over many keys', () => {
    const b = createVersionedBalancer(
      'consistent-hash',
      pool,
      {},
      {
        versions: [
          { name: 'v1', weight: 90 },
          { name: 'v2', weight: 10 },
        ],
        versionOf,
      },
    );
    let v2 = 0;
    for (let i = 0; i < 2000; i++) {
      const key = `user-${i}`;
      const first = b.pick({ key });
      expect(b.pick({ key })).toBe(first);
      if (first?.version === 'v2') v2 += 1;
    }
    expect(v2 / 2000).toBeGreaterThan(0.07);
    expect(v2 / 2000).toBeLessThan(0.13);
  });
});

describe('VersionSplit.of', () => {
  it('is undefined without versions, so callers keep their plain balancer', () => {
    expect(VersionSplit.of(pool, undefined, versionOf, (m) => m)).toBeUndefined();
    expect(VersionSplit.of(pool, [], versionOf, (m) => m)).toBeUndefined();
  });
});
