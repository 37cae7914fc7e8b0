/**
 * Consistent-hash and rendezvous-hash, measured over 100,000 keys: stability when the
 * endpoint set changes, determinism across rebuilds, and balance.
 */
import { describe, it, expect } from '@jest/globals';
import { createBalancer } from './index.js';
import type { Endpoint } from './index.js';
import { mulberry32 } from './prng.js';
import { DEFAULT_VIRTUAL_NODES, HashRing } from './ring.js';

type HashStrategy = 'consistent-hash' | 'rendezvous-hash';
const HASHING: HashStrategy[] = ['consistent-hash', 'rendezvous-hash'];

const KEYS = Array.from({ length: 100_000 }, (_, i) => `user-${i}`);

function pods(n: number, weight: (i: number) => number = () => 1): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ({ id: `pod-${i}`, weight: weight(i) }));
}

/** The id each key goes to. */
function assign(strategy: HashStrategy, endpoints: readonly Endpoint[]): string[] {
  const balancer = createBalancer(strategy, endpoints);
  return KEYS.map((key) => balancer.pick({ key })!.id);
}

function countById(ids: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** How many positions differ (cheaper than toEqual on 100,000 strings). */
function mismatches(a: readonly string[], b: readonly string[]): number {
  expect(a.length).toBe(b.length);
  return a.filter((id, i) => id !== b[i]).length;
}

/** Fisher–Yates with a seeded PRNG. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = mulberry32(seed);
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

const cases = HASHING.flatMap((strategy) => [10, 50].map((n) => [strategy, n] as const));

describe.each(cases)('%s with N = %d endpoints, 100,000 keys', (strategy, n) => {
  const before = assign(strategy, pods(n));

  it('adding one endpoint moves 1/(N+1) of the keys (±30% relative), all to the new one', () => {
    const after = assign(strategy, pods(n + 1));
    const newcomer = `pod-${n}`;
    const moved = before.filter((id, i) => after[i] !== id);
    const movedTo = new Set(after.filter((id, i) => before[i] !== id));
    // measured: consistent-hash 0.937 (N=10) and 1.035 (N=50) of 1/(N+1); rendezvous 0.993, 0.997
    expect(moved.length / KEYS.length / (1 / (n + 1))).toBeGreaterThan(0.7);
    expect(moved.length / KEYS.length / (1 / (n + 1))).toBeLessThan(1.3);
    expect(movedTo).toEqual(new Set([newcomer]));
  });

  it.each([
    ['removing', (list: Endpoint[]) => list.filter((e) => e.id !== 'pod-3')],
    [
      'draining (weight 0)',
      (list: Endpoint[]) => list.map((e) => (e.id === 'pod-3' ? { ...e, weight: 0 } : e)),
    ],
  ])('%s one endpoint moves exactly the keys it had', (_name, change) => {
    const after = assign(strategy, change(pods(n)));
    const movedOther = KEYS.filter((_, i) => after[i] !== before[i] && before[i] !== 'pod-3');
    const kept = KEYS.filter((_, i) => after[i] === 'pod-3');
    expect(movedOther).toEqual([]);
    expect(kept).toEqual([]);
    expect(before.filter((id) => id === 'pod-3').length).toBeGreaterThan(0);
  });

  it('is deterministic: same key, same endpoint across rebuilds and input orders', () => {
    expect(mismatches(assign(strategy, pods(n)), before)).toBe(0);
    expect(mismatches(assign(strategy, shuffled(pods(n), n)), before)).toBe(0);
  });

  it('is balanced: every endpoint within ±25% (consistent-hash) / ±10% (rendezvous) of the mean', () => {
    // measured: consistent-hash (160 virtual nodes) 0.881–1.128 of the mean at N=10 and
    // 0.827–1.179 at N=50; rendezvous 0.988–1.017 and 0.955–1.055
    const counts = countById(before);
    const mean = KEYS.length / n;
    const tolerance = strategy === 'consistent-hash' ? 0.25 : 0.1;
    expect(counts.size).toBe(n);
    for (const count of counts.values()) {
      expect(Math.abs(count / mean - 1)).toBeLessThanOrEqual(tolerance);
    }
  });
});

describe.each(HASHING)('%s with weights', (strategy) => {
  // 40 endpoints with weights 1, 2, 3, 4, 1, 2, …: each weight class should get weight / 10
  const list = pods(40, (i) => 1 + (i % 4));
  const counts = countById(assign(strategy, list));

  it('gives each weight class its share (±1 percentage point)', () => {
    // measured: consistent-hash 0.0975 0.2045 0.2993 0.3986; rendezvous 0.1003 0.1997 0.3005 0.3994
    const byClass = [0, 0, 0, 0];
    for (const e of list) byClass[e.weight - 1]! += counts.get(e.id) ?? 0;
    byClass.forEach((count, w) => {
      expect(Math.abs(count / KEYS.length - (w + 1) / 10)).toBeLessThanOrEqual(0.01);
    });
  });

  it('keeps each endpoint within ±30% (consistent-hash) / ±15% (rendezvous) of its share', () => {
    // measured worst: consistent-hash 0.240 (a weight-1 endpoint has only 64 ring points),
    // rendezvous 0.084
    const tolerance = strategy === 'consistent-hash' ? 0.3 : 0.15;
    for (const e of list) {
      const expected = (KEYS.length * e.weight) / 100;
      expect(Math.abs((counts.get(e.id) ?? 0) / expected - 1)).toBeLessThanOrEqual(tolerance);
    }
  });

  it('is deterministic across input orders with unequal weights', () => {
    expect(mismatches(assign(strategy, shuffled(list, 7)), assign(strategy, list))).toBe(0);
  });
});

describe('HashRing', () => {
  it.each([
    ['equal weights', [1, 1, 1], 160, [160, 160, 160]],
    ['weights 1, 1, 2 (mean 4/3)', [1, 1, 2], 160, [120, 120, 240]],
    ['scale does not matter', [50, 50, 100], 160, [120, 120, 240]],
    ['at least one point', [1, 1000], 10, [1, 20]],
    ['custom virtualNodes', [1, 1], 7, [7, 7]],
  ])('places round(V · weight / mean) points per endpoint: %s', (_name, weights, v, points) => {
    const ring = new HashRing(
      pods(weights.length, (i) => weights[i]!),
      v,
    );
    expect(ring.length).toBe(points.reduce((a, b) => a + b, 0));
  });

  it('defaults to 160 virtual nodes', () => {
    expect(DEFAULT_VIRTUAL_NODES).toBe(160);
  });

  it('virtualNodes changes the balance: 1 point per endpoint is far less even than 160', () => {
    const spread = (virtualNodes: number) => {
      const balancer = createBalancer('consistent-hash', pods(10), { virtualNodes });
      const counts = [...countById(KEYS.map((key) => balancer.pick({ key })!.id)).values()];
      return Math.max(...counts) / Math.min(...counts);
    };
    expect(spread(1)).toBeGreaterThan(spread(DEFAULT_VIRTUAL_NODES));
  });

  it('wraps around: a hash past the last point belongs to the first point', () => {
    const ring = new HashRing(pods(3), 4);
    expect(ring.lookup(0xffffffff)).toBe(ring.lookup(0));
  });

  it('is empty without endpoints', () => {
    expect(new HashRing([], 160).lookup(123)).toBeUndefined();
  });
});
