import { describe, expect, it } from '@jest/globals';
import { CALL_LATENCY_BUCKETS_MS } from '../../common/wire.js';
import type { ServiceRef } from '../../common/policy/acl.js';
import { buildGraph, dotId, findCycles, quantileMs, renderDot } from './graph.js';
import type { GraphInput } from './graph.js';
import type { ObservedEdge } from './observed.js';

const ref = (id: string): ServiceRef => {
  const [namespace = '', name = ''] = id.split('/');
  return { namespace, name };
};
const e = (source: string, destination: string) => ({ source, destination });

/** A histogram with `n` calls in the bucket whose upper bound is `ms` (Infinity: overflow). */
function hist(entries: [ms: number, n: number][]): number[] {
  const h = new Array<number>(CALL_LATENCY_BUCKETS_MS.length + 1).fill(0);
  for (const [ms, n] of entries) {
    const i = (CALL_LATENCY_BUCKETS_MS as readonly number[]).indexOf(ms);
    const at = i === -1 ? h.length - 1 : i;
    h[at] = (h[at] ?? 0) + n;
  }
  return h;
}

function observed(source: string, destination: string, calls: number, errors = 0): ObservedEdge {
  return {
    source: ref(source),
    destination: ref(destination),
    calls,
    errors,
    latency: hist([[10, calls]]),
  };
}

function input(over: Partial<GraphInput>): GraphInput {
  return {
    services: [],
    declared: [],
    observed: [],
    allowed: () => ({ allowed: true, decidedBy: 'default' }),
    visible: () => true,
    windowSeconds: 100,
    ...over,
  };
}

describe('findCycles (Tarjan; self-loops count)', () => {
  it.each([
    ['no edges', [], []],
    ['a chain', [e('a/x', 'a/y'), e('a/y', 'a/z')], []],
    ['a self-loop', [e('a/x', 'a/x')], [['a/x']]],
    ['a two-cycle', [e('a/x', 'a/y'), e('a/y', 'a/x')], [['a/x', 'a/y']]],
    [
      'a three-cycle with a tail',
      [e('a/t', 'a/x'), e('a/x', 'a/y'), e('a/y', 'a/z'), e('a/z', 'a/x')],
      [['a/x', 'a/y', 'a/z']],
    ],
    [
      'two separate cycles and a self-loop inside one',
      [e('a/x', 'a/y'), e('a/y', 'a/x'), e('a/y', 'a/y'), e('b/p', 'b/q'), e('b/q', 'b/p')],
      [
        ['a/x', 'a/y'],
        ['b/p', 'b/q'],
      ],
    ],
    [
      'a diamond (no cycle)',
      [e('a/s', 'a/l'), e('a/s', 'a/r'), e('a/l', 'a/t'), e('a/r', 'a/t')],
      [],
    ],
    ['across namespaces', [e('a/x', 'b/y'), e('b/y', 'a/x')], [['a/x', 'b/y']]],
  ])('%s', (_name, edges, cycles) => {
    expect(findCycles(edges)).toEqual(cycles);
  });

  it('handles a chain deeper than the call stack would allow recursion', () => {
    const n = 20_000;
    const edges = Array.from({ length: n }, (_, i) => e(`a/s${i}`, `a/s${(i + 1) % n}`));
    const cycles = findCycles(edges);
    expect(cycles).toHaveLength(1);
    expect(cycles[0]).toHaveLength(n);
  });
});

describe('quantileMs (interpolated inside the bucket)', () => {
  it.each([
    ['empty', hist([]), 0.5, null],
    ['all in the first bucket', hist([[1, 10]]), 0.5, 0.5],
    ['all in 5–10 ms', hist([[10, 4]]), 0.5, 7.5],
    [
      'p99 in the slow bucket',
      hist([
        [1, 98],
        [1000, 2],
      ]),
      0.99,
      750,
    ],
    ['overflow answers its lower bound', hist([[Infinity, 3]]), 0.99, 10_000],
  ])('%s', (_name, h, q, expected) => {
    expect(quantileMs(h, q)).toBe(expected);
  });
});

describe('buildGraph', () => {
  const declared = [
    { namespace: 'shop', name: 'web', dependencies: [{ name: 'orders' }, { name: 'cart' }] },
    { namespace: 'shop', name: 'orders', dependencies: [{ namespace: 'bank', name: 'pay' }] },
    { namespace: 'shop', name: 'cart' },
    { namespace: 'bank', name: 'pay' },
  ];
  const deny = new Set(['shop/web>shop/cart', 'shop/web>shop/admin']);
  const allowed = (s: ServiceRef, d: ServiceRef) =>
    deny.has(`${s.namespace}/${s.name}>${d.namespace}/${d.name}`)
      ? { allowed: false, decidedBy: 'shop/no-cart' }
      : { allowed: true, decidedBy: 'default' };

  it.each([
    [
      'declared only: not observed, no rates',
      { declared },
      'shop/web>shop/orders',
      { declared: true, observed: false, allowed: true, calls: 0, rps: 0, p50Ms: null },
    ],
    [
      'declared and observed: rates from the window',
      { declared, observed: [observed('shop/web', 'shop/orders', 200, 10)] },
      'shop/web>shop/orders',
      {
        declared: true,
        observed: true,
        calls: 200,
        errors: 10,
        rps: 2,
        errorRate: 0.05,
        p50Ms: 7.5,
        p99Ms: 9.95,
      },
    ],
    [
      'observed but not declared',
      { declared, observed: [observed('shop/cart', 'bank/pay', 5)] },
      'shop/cart>bank/pay',
      { declared: false, observed: true, allowed: true, decidedBy: 'default' },
    ],
    [
      'declared but denied by an intention',
      { declared, allowed },
      'shop/web>shop/cart',
      { declared: true, allowed: false, decidedBy: 'shop/no-cart' },
    ],
    [
      "a dependency's namespace defaults to the caller's",
      { declared },
      'shop/orders>bank/pay',
      { declared: true },
    ],
  ])('%s', (_name, over, key, expected) => {
    const graph = buildGraph(input(over));
    const edge = graph.edges.find((x) => `${x.source}>${x.destination}` === key);
    expect(edge).toMatchObject(expected);
  });

  it('calls out undeclared and denied edges, and finds cycles over declared ∪ observed', () => {
    const graph = buildGraph(
      input({
        declared,
        allowed,
        observed: [
          observed('shop/cart', 'shop/web', 3),
          observed('shop/web', 'shop/admin', 1),
          observed('bank/pay', 'bank/pay', 1),
        ],
      }),
    );
    expect(graph.undeclared).toEqual([
      e('bank/pay', 'bank/pay'),
      e('shop/cart', 'shop/web'),
      e('shop/web', 'shop/admin'),
    ]);
    expect(graph.denied).toEqual([e('shop/web', 'shop/admin'), e('shop/web', 'shop/cart')]);
    expect(graph.cycles).toEqual([['bank/pay'], ['shop/cart', 'shop/web']]);
    // An observed destination no MaxineService declares is still a node, marked undeclared.
    expect(graph.nodes.find((n) => n.id === 'shop/admin')).toEqual({
      id: 'shop/admin',
      namespace: 'shop',
      name: 'admin',
      declared: false,
    });
  });

  it('shows only what the caller may read: hidden services, their edges and cycles go', () => {
    const graph = buildGraph(
      input({
        declared,
        observed: [observed('bank/pay', 'shop/orders', 1)],
        visible: (s) => s.namespace === 'shop',
      }),
    );
    expect(graph.nodes.map((n) => n.id)).toEqual(['shop/cart', 'shop/orders', 'shop/web']);
    expect(graph.edges.map((x) => `${x.source}>${x.destination}`)).toEqual([
      'shop/web>shop/cart',
      'shop/web>shop/orders',
    ]);
    expect(graph.cycles).toEqual([]);
  });

  it('?namespace= keeps edges touching it, and cycles with a member in it', () => {
    const graph = buildGraph(
      input({
        declared,
        observed: [observed('bank/pay', 'shop/orders', 1)],
        namespace: 'bank',
      }),
    );
    expect(graph.edges.map((x) => `${x.source}>${x.destination}`)).toEqual([
      'bank/pay>shop/orders',
      'shop/orders>bank/pay',
    ]);
    expect(graph.nodes.map((n) => n.id)).toEqual(['bank/pay', 'shop/orders']);
    expect(graph.cycles).toEqual([['bank/pay', 'shop/orders']]);
  });
});

describe('DOT', () => {
  it.each([
    ['plain', 'shop/web', '"shop/web"'],
    ['a quote', 'a"b', '"a\\"b"'],
    ['a backslash', 'a\\b', '"a\\\\b"'],
    ['a backslash before a quote', 'a\\"', '"a\\\\\\""'],
    ['line breaks', 'a\nb\r\nc', '"a\\nb\\nc"'],
    ['graphviz keywords stay quoted', 'digraph', '"digraph"'],
  ])('dotId: %s', (_name, text, expected) => {
    expect(dotId(text)).toBe(expected);
  });

  it('styles undeclared, denied and declared-only edges, and marks cycle members', () => {
    const graph = buildGraph(
      input({
        declared: [
          { namespace: 'shop', name: 'web', dependencies: [{ name: 'orders' }, { name: 'cart' }] },
        ],
        observed: [
          observed('shop/orders', 'shop/web', 10),
          observed('shop/web', 'shop/orders', 10),
        ],
        allowed: (_s, d) =>
          d.name === 'cart'
            ? { allowed: false, decidedBy: 'shop/deny' }
            : { allowed: true, decidedBy: 'default' },
      }),
    );
    const dot = renderDot(graph);
    expect(dot.startsWith('digraph maxine {\n')).toBe(true);
    expect(dot.trimEnd().endsWith('}')).toBe(true);
    const line = (from: string, to: string) =>
      dot.split('\n').find((l) => l.trim().startsWith(`"${from}" -> "${to}"`)) ?? '';
    expect(line('shop/web', 'shop/cart')).toMatch(/color="red".*style=dashed.*denied/);
    expect(line('shop/orders', 'shop/web')).toMatch(/color="orange".*style=bold.*undeclared/);
    expect(line('shop/web', 'shop/orders')).toMatch(/style=solid, label="0.1 rps, p99 9.95 ms"/);
    expect(dot).toMatch(/"shop\/web" \[label="shop\/web", color="red"\];/);
    // Not declared by a MaxineService: a dashed node.
    expect(dot).toMatch(/"shop\/cart" \[label="shop\/cart", style=dashed\];/);
  });
});
