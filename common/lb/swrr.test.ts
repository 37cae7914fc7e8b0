import { describe, it, expect } from '@jest/globals';
import { MAX_CYCLE, SmoothWeighted } from './swrr.js';

/** The nginx algorithm written plainly, as the oracle. */
function* nginx<T>(items: readonly { item: T; weight: number }[]): Generator<T> {
  const live = items.filter((i) => i.weight > 0);
  const current = live.map(() => 0);
  const total = live.reduce((s, i) => s + i.weight, 0);
  for (;;) {
    let best = 0;
    live.forEach((item, i) => {
      current[i]! += item.weight;
      if (current[i]! > current[best]!) best = i;
    });
    current[best]! -= total;
    yield live[best]!.item;
  }
}

function take<T>(source: { next(): T | undefined }, n: number): (T | undefined)[] {
  return Array.from({ length: n }, () => source.next());
}

function counts<T>(values: readonly T[]): Map<T, number> {
  const map = new Map<T, number>();
  for (const v of values) map.set(v, (map.get(v) ?? 0) + 1);
  return map;
}

const items = (weights: Record<string, number>) =>
  Object.entries(weights).map(([item, weight]) => ({ item, weight }));

describe('SmoothWeighted', () => {
  it('gives the nginx sequence a a b a c a a for weights {a: 5, b: 1, c: 1}, cycle after cycle', () => {
    const swrr = new SmoothWeighted(items({ a: 5, b: 1, c: 1 }));
    const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
    expect(take(swrr, 21)).toEqual([...cycle, ...cycle, ...cycle]);
  });

  it.each([
    ['equal weights: plain rotation', { a: 1, b: 1, c: 1 }],
    ['{5, 1, 1}', { a: 5, b: 1, c: 1 }],
    ['{3, 2}', { a: 3, b: 2 }],
    ['common factor {50, 30, 20}', { a: 50, b: 30, c: 20 }],
    ['many unequal', { a: 7, b: 13, c: 1, d: 29, e: 4, f: 4 }],
    ['with weight 0', { a: 2, z: 0, b: 1 }],
  ])('is exactly proportional over 100 cycles: %s', (_name, weights) => {
    const total = Object.values(weights).reduce((s, w) => s + w, 0);
    const picks = take(new SmoothWeighted(items(weights)), total * 100);
    const seen = counts(picks);
    for (const [item, weight] of Object.entries(weights)) {
      expect(seen.get(item) ?? 0).toBe(weight * 100);
    }
  });

  it('interleaves: the heavy item of {1, 1, 1, 1, 4} comes in runs of ≤ 2, with gaps of ≤ 2', () => {
    // one cycle is e a e b c e d e; a blocky weighted round robin would give e e e e a b c d
    const picks = take(new SmoothWeighted(items({ a: 1, b: 1, c: 1, d: 1, e: 4 })), 800);
    const runs = (match: boolean) =>
      Math.max(
        ...picks
          .join('')
          .split(match ? /[^e]+/ : /e+/)
          .map((run) => run.length),
      );
    expect(runs(true)).toBeLessThanOrEqual(2);
    expect(runs(false)).toBeLessThanOrEqual(2);
  });

  it('never returns an item of weight 0', () => {
    const picks = take(new SmoothWeighted(items({ drained: 0, a: 1, b: 3, alsoDrained: 0 })), 400);
    expect(picks).not.toContain('drained');
    expect(picks).not.toContain('alsoDrained');
  });

  it.each([
    ['no items', {}],
    ['only weight 0', { a: 0, b: 0 }],
  ])('returns undefined with %s', (_name, weights) => {
    expect(take(new SmoothWeighted(items(weights)), 3)).toEqual([undefined, undefined, undefined]);
  });

  it('returns arbitrary item values, objects included', () => {
    const v1 = { name: 'v1' };
    const v2 = { name: 'v2' };
    const swrr = new SmoothWeighted([
      { item: v1, weight: 90 },
      { item: v2, weight: 10 },
    ]);
    const seen = counts(take(swrr, 1000));
    expect(seen.get(v1)).toBe(900);
    expect(seen.get(v2)).toBe(100);
  });

  it.each([
    ['fractional weights', { a: 2.5, b: 0.5, c: 0.5 }],
    ['a cycle longer than the precompute limit', { a: MAX_CYCLE, b: 1, c: 2 }],
    ['precomputed integer weights', { a: 5, b: 1, c: 1 }],
    ['precomputed with a common factor', { a: 10, b: 2, c: 2 }],
  ])('matches the plain nginx algorithm: %s', (_name, weights) => {
    const expected = nginx(items(weights));
    const oracle = { next: () => expected.next().value };
    expect(take(new SmoothWeighted(items(weights)), 5000)).toEqual(take(oracle, 5000));
  });

  it('fractional weights give the same sequence as the integer weights they scale', () => {
    const fractional = take(new SmoothWeighted(items({ a: 2.5, b: 0.5, c: 0.5 })), 70);
    const integer = take(new SmoothWeighted(items({ a: 5, b: 1, c: 1 })), 70);
    expect(fractional).toEqual(integer);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects weight %p', (weight) => {
    expect(() => new SmoothWeighted([{ item: 'a', weight }])).toThrow(RangeError);
  });
});
