import { describe, it, expect } from '@jest/globals';
import { HASH_STRATEGIES, STRATEGIES } from '../resources.js';
import { createBalancer, needsKey } from './index.js';
import type { Balancer, Endpoint, PickContext, StrategyName } from './index.js';
import { mulberry32 } from './prng.js';

interface TestEndpoint extends Endpoint {
  readonly label?: string;
}

/** Endpoints a, b, c, … with the given weights. */
function endpoints(...weights: number[]): TestEndpoint[] {
  return weights.map((weight, i) => ({ id: String.fromCharCode(97 + i), weight }));
}

function pickIds(balancer: Balancer<Endpoint>, n: number, ctx?: (i: number) => PickContext) {
  return Array.from({ length: n }, (_, i) => balancer.pick(ctx?.(i))?.id);
}

function counts(ids: readonly (string | undefined)[]): Record<string, number> {
  const result: Record<string, number> = {};
  for (const id of ids) result[String(id)] = (result[String(id)] ?? 0) + 1;
  return result;
}

/** Share (0..1) of each id among the picks. */
function shares(ids: readonly (string | undefined)[]): Record<string, number> {
  return Object.fromEntries(Object.entries(counts(ids)).map(([id, n]) => [id, n / ids.length]));
}

const PICKS = 100_000;
/** Tolerance of the sampled distributions: ±1 percentage point (≥ 6σ at 100,000 picks). */
const PP = 0.01;

function expectShares(actual: Record<string, number>, expected: Record<string, number>) {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [id, share] of Object.entries(expected)) {
    expect(Math.abs((actual[id] ?? 0) - share)).toBeLessThanOrEqual(PP);
  }
}

/** A context that works for every strategy: a varying key and a load of 0. */
const anyContext = (i: number): PickContext => ({ key: `key-${i}`, load: () => 0 });

describe('every strategy', () => {
  it.each(STRATEGIES)('%s: an empty endpoint list has size 0 and picks undefined', (strategy) => {
    const balancer = createBalancer(strategy, []);
    expect(balancer.size).toBe(0);
    expect(pickIds(balancer, 5, anyContext)).toEqual(Array(5).fill(undefined));
  });

  it.each(STRATEGIES)('%s: only drained endpoints: size 0, picks undefined', (strategy) => {
    const balancer = createBalancer(strategy, endpoints(0, 0, 0), { random: mulberry32(1) });
    expect(balancer.size).toBe(0);
    expect(pickIds(balancer, 5, anyContext)).toEqual(Array(5).fill(undefined));
  });

  it.each(STRATEGIES)('%s: never picks a drained (weight 0) endpoint', (strategy) => {
    const list: TestEndpoint[] = [
      { id: 'drained-1', weight: 0, zone: 'z1', datacenter: 'dc1' },
      { id: 'a', weight: 1, zone: 'z2', datacenter: 'dc1' },
      { id: 'drained-2', weight: 0, zone: 'z2', datacenter: 'dc1' },
      { id: 'b', weight: 3, zone: 'z3', datacenter: 'dc2' },
    ];
    const balancer = createBalancer(strategy, list, { random: mulberry32(2) });
    expect(balancer.size).toBe(2);
    // a drained endpoint would be the best choice by load, and the only one in zone z1
    const contexts = (i: number): PickContext => ({
      key: `user-${i}`,
      localZone: i % 2 === 0 ? 'z1' : 'z3',
      localDatacenter: i % 2 === 0 ? 'dc1' : 'dc2',
      load: (id) => (id.startsWith('drained') ? -1000 : 0),
    });
    const picked = new Set(pickIds(balancer, 10_000, contexts));
    expect([...picked].sort()).toEqual(['a', 'b']);
  });

  it.each(STRATEGIES)('%s: a single endpoint is always picked', (strategy) => {
    const balancer = createBalancer(strategy, endpoints(0, 7, 0), { random: mulberry32(3) });
    expect(new Set(pickIds(balancer, 100, anyContext))).toEqual(new Set(['b']));
  });

  it.each(STRATEGIES)('%s: needsKey agrees with HASH_STRATEGIES', (strategy) => {
    expect(needsKey(strategy)).toBe(HASH_STRATEGIES.has(strategy));
  });

  it.each(STRATEGIES)('%s: a pick without a key is undefined exactly when needsKey', (strategy) => {
    const balancer = createBalancer(strategy, endpoints(1, 2, 3), { random: mulberry32(4) });
    const expectNone = needsKey(strategy);
    for (const ctx of [undefined, {}, { localZone: 'z', load: () => 1 }]) {
      expect(balancer.pick(ctx) === undefined).toBe(expectNone);
    }
    expect(balancer.pick({ key: '' })).toBeDefined(); // the empty string is a key
  });

  it.each(STRATEGIES)('%s: rejects bad weights and repeated ids', (strategy) => {
    for (const weight of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createBalancer(strategy, [{ id: 'a', weight }])).toThrow(RangeError);
    }
    const repeated = [
      { id: 'a', weight: 1 },
      { id: 'a', weight: 0 },
    ];
    expect(() => createBalancer(strategy, repeated)).toThrow(/repeated/);
  });

  it('rejects an unknown strategy and bad virtualNodes', () => {
    expect(() => createBalancer('nope' as StrategyName, endpoints(1))).toThrow(RangeError);
    for (const virtualNodes of [0, -5, 1.5, Number.NaN]) {
      expect(() => createBalancer('consistent-hash', endpoints(1), { virtualNodes })).toThrow(
        RangeError,
      );
    }
  });

  it('returns the caller’s own endpoint objects', () => {
    const list: TestEndpoint[] = [{ id: 'x', weight: 1, label: 'mine' }];
    for (const strategy of STRATEGIES) {
      expect(createBalancer(strategy, list).pick({ key: 'k' })).toBe(list[0]);
    }
  });
});

describe('round-robin', () => {
  it.each([1, 2, 5, 17])(
    'over k·n picks gives each of %d endpoints exactly k times, in order',
    (n) => {
      const list = endpoints(...Array<number>(n).fill(1));
      const k = 7;
      const ids = pickIds(createBalancer('round-robin', list), k * n);
      const cycle = list.map((e) => e.id);
      expect(ids).toEqual(Array.from({ length: k }, () => cycle).flat());
    },
  );

  it('ignores weights other than 0, and skips drained endpoints', () => {
    const ids = pickIds(createBalancer('round-robin', endpoints(5, 0, 1)), 6);
    expect(ids).toEqual(['a', 'c', 'a', 'c', 'a', 'c']);
  });
});

describe('distributions over 100,000 picks (±1 percentage point; exact where deterministic)', () => {
  const weights = endpoints(1, 2, 3, 4);
  const byWeight = { a: 0.1, b: 0.2, c: 0.3, d: 0.4 };
  const uniform = { a: 0.25, b: 0.25, c: 0.25, d: 0.25 };
  const table: [string, StrategyName, Record<string, number>, PickContext | undefined][] = [
    ['weights {1,2,3,4}', 'weighted-random', byWeight, undefined],
    ['weights {1,2,3,4}', 'weighted-round-robin', byWeight, undefined],
    ['weights {1,2,3,4}, no caller locality', 'locality-aware', byWeight, undefined],
    ['weights ignored', 'random', uniform, undefined],
    ['no load function', 'power-of-two-choices', byWeight, undefined],
    ['equal loads of 0', 'power-of-two-choices', byWeight, { load: () => 0 }],
    ['no load function: round robin', 'least-connections', uniform, undefined],
  ];

  it.each(table)('%s: %s', (_name, strategy, expected, ctx) => {
    const balancer = createBalancer(strategy, weights, { random: mulberry32(42) });
    expectShares(shares(pickIds(balancer, PICKS, () => ctx ?? {})), expected);
  });

  it('power-of-two-choices with equal weights and equal non-zero loads is uniform', () => {
    const balancer = createBalancer('power-of-two-choices', endpoints(1, 1, 1, 1, 1), {
      random: mulberry32(7),
    });
    const ids = pickIds(balancer, PICKS, () => ({ load: () => 5 }));
    expectShares(shares(ids), { a: 0.2, b: 0.2, c: 0.2, d: 0.2, e: 0.2 });
  });

  it.each(['weighted-round-robin', 'locality-aware'] as const)(
    '%s is exact over whole cycles',
    (strategy) => {
      const ids = pickIds(createBalancer(strategy, weights), PICKS);
      expect(counts(ids)).toEqual({ a: 10_000, b: 20_000, c: 30_000, d: 40_000 });
    },
  );

  it('weighted-round-robin gives the nginx sequence a a b a c a a for weights {5,1,1}', () => {
    const ids = pickIds(createBalancer('weighted-round-robin', endpoints(5, 1, 1)), 14);
    expect(ids.join('')).toBe('aabacaa'.repeat(2));
  });
});

describe('least-connections', () => {
  const loads =
    (table: Record<string, number>) =>
    (id: string): number =>
      table[id] ?? 0;

  it('picks the endpoint with the lowest load', () => {
    const balancer = createBalancer('least-connections', endpoints(1, 1, 1));
    const ids = pickIds(balancer, 50, () => ({ load: loads({ a: 5, b: 1, c: 3 }) }));
    expect(new Set(ids)).toEqual(new Set(['b']));
  });

  it('spreads ties: equal lowest loads are taken in turn', () => {
    const balancer = createBalancer('least-connections', endpoints(1, 1, 1, 1));
    const ids = pickIds(balancer, 9, () => ({ load: loads({ a: 0, b: 9, c: 0, d: 0 }) }));
    expect(ids).toEqual(['a', 'c', 'd', 'a', 'c', 'd', 'a', 'c', 'd']);
  });

  it('all loads and weights equal: round robin in order', () => {
    const balancer = createBalancer('least-connections', endpoints(1, 1, 1));
    expect(pickIds(balancer, 6, () => ({ load: () => 4 }))).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('considers weight: compares load / weight', () => {
    const balancer = createBalancer('least-connections', endpoints(1, 2));
    // a: 4 / 1 = 4, b: 6 / 2 = 3
    expect(balancer.pick({ load: loads({ a: 4, b: 6 }) })?.id).toBe('b');
    // a: 2 / 1 = 2, b: 6 / 2 = 3
    expect(balancer.pick({ load: loads({ a: 2, b: 6 }) })?.id).toBe('a');
  });

  it('with connections that stay open, loads grow in proportion to weight (±1)', () => {
    const balancer = createBalancer('least-connections', endpoints(1, 2, 3, 4));
    const open: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const id = balancer.pick({ load: loads(open) })!.id;
      open[id] = (open[id] ?? 0) + 1;
    }
    for (const [id, expected] of Object.entries({ a: 100, b: 200, c: 300, d: 400 })) {
      expect(Math.abs(open[id]! - expected)).toBeLessThanOrEqual(1);
    }
  });
});

describe('power-of-two-choices', () => {
  it('of two endpoints with loads [0, 100] always picks the idle one', () => {
    const balancer = createBalancer('power-of-two-choices', endpoints(1, 1), {
      random: mulberry32(9),
    });
    const ids = pickIds(balancer, 10_000, () => ({ load: (id) => (id === 'a' ? 0 : 100) }));
    expect(new Set(ids)).toEqual(new Set(['a']));
  });

  it('compares load / weight', () => {
    const balancer = createBalancer('power-of-two-choices', endpoints(1, 3), {
      random: mulberry32(10),
    });
    // a: 10 / 1, b: 10 / 3
    expect(new Set(pickIds(balancer, 1000, () => ({ load: () => 10 })))).toEqual(new Set(['b']));
  });

  it('never picks the most loaded; shares follow 2(n-1-rank)/(n(n-1)) (±1 pp)', () => {
    // distinct loads a < b < c < d < e: the k-th least loaded wins when it is drawn with one
    // of the n-1-k more loaded ones; the most loaded never wins. The least loaded gets 40%,
    // twice its uniform share of 20%.
    const balancer = createBalancer('power-of-two-choices', endpoints(1, 1, 1, 1, 1), {
      random: mulberry32(11),
    });
    const load = (id: string) => 10 * (id.charCodeAt(0) - 96);
    const picked = shares(pickIds(balancer, PICKS, () => ({ load })));
    expect(picked.e).toBeUndefined();
    expectShares(picked, { a: 0.4, b: 0.3, c: 0.2, d: 0.1 });
  });

  it('draws two distinct endpoints even with very skewed weights', () => {
    // were the second draw allowed to repeat the first, the heavy busy endpoint would win often
    const balancer = createBalancer('power-of-two-choices', endpoints(1000, 1), {
      random: mulberry32(12),
    });
    const ids = pickIds(balancer, 10_000, () => ({ load: (id) => (id === 'a' ? 1e9 : 0) }));
    expect(new Set(ids)).toEqual(new Set(['b']));
  });
});

describe('locality-aware', () => {
  const list: TestEndpoint[] = [
    { id: 'a', weight: 1, zone: 'z1', datacenter: 'dc1' },
    { id: 'b', weight: 3, zone: 'z1', datacenter: 'dc1' },
    { id: 'c', weight: 1, zone: 'z2', datacenter: 'dc1' },
    { id: 'd', weight: 1, zone: 'z3', datacenter: 'dc2' },
    { id: 'e', weight: 1, zone: 'z1', datacenter: 'dc2' }, // same zone name, other datacenter
    { id: 'f', weight: 0, zone: 'z4', datacenter: 'dc2' }, // drained: z4 is empty
    { id: 'g', weight: 1 }, // no locality at all
  ];
  const picked = (ctx: PickContext) =>
    counts(pickIds(createBalancer('locality-aware', list), 1000, () => ctx));
  const everything = { a: 125, b: 375, c: 125, d: 125, e: 125, g: 125 };

  it.each<[string, PickContext, Record<string, number>]>([
    ['same zone and datacenter', { localZone: 'z1', localDatacenter: 'dc1' }, { a: 250, b: 750 }],
    ['same zone in the other datacenter', { localZone: 'z1', localDatacenter: 'dc2' }, { e: 1000 }],
    ['zone only: that zone in any datacenter', { localZone: 'z1' }, { a: 200, b: 600, e: 200 }],
    [
      'empty zone: fails over to the datacenter',
      { localZone: 'z9', localDatacenter: 'dc1' },
      { a: 200, b: 600, c: 200 },
    ],
    [
      'zone of drained endpoints: fails over to the datacenter',
      { localZone: 'z4', localDatacenter: 'dc2' },
      { d: 500, e: 500 },
    ],
    ['datacenter only', { localDatacenter: 'dc2' }, { d: 500, e: 500 }],
    [
      'unknown zone and datacenter: everything',
      { localZone: 'z9', localDatacenter: 'dc9' },
      everything,
    ],
    ['unknown zone, no datacenter: everything', { localZone: 'z9' }, everything],
    ['no caller locality: everything', {}, everything],
  ])('%s (exact counts over 1000 picks, by weight)', (_name, ctx, expected) => {
    expect(picked(ctx)).toEqual(expected);
  });

  it('keeps a separate smooth weighted round robin per tier', () => {
    const lb = createBalancer('locality-aware', list);
    const zone = { localZone: 'z1', localDatacenter: 'dc1' };
    const ids = [zone, {}, zone, zone, {}, zone].map((ctx) => lb.pick(ctx)?.id);
    // z1/dc1 alone: b a b b (nginx, weights 1 and 3 → b a b b); everything: b a …
    expect(ids).toEqual(['b', 'b', 'a', 'b', 'a', 'b']);
  });
});
