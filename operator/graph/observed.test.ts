import { describe, expect, it } from '@jest/globals';
import { CALL_LATENCY_BUCKETS_MS } from '../../common/wire.js';
import type { ReportedEdge } from '../../common/wire.js';
import { ObservedEdges } from './observed.js';

const src = (name: string) => ({ namespace: 'shop', name });

function edge(destination: string, calls: number, errors = 0): ReportedEdge {
  const latencyMs = new Array<number>(CALL_LATENCY_BUCKETS_MS.length + 1).fill(0);
  latencyMs[0] = calls;
  return { destination: { namespace: 'shop', name: destination }, calls, errors, latencyMs };
}

const totals = (o: ObservedEdges, now: number) =>
  o
    .read(now)
    .map((x) => `${x.source.name}>${x.destination.name}:${x.calls}/${x.errors}`)
    .sort();

describe('ObservedEdges: the sliding window', () => {
  // A 100 s window in ten 10 s slots.
  it.each([
    [
      'reports add up inside the window',
      [
        [0, 5],
        [20_000, 7],
      ],
      30_000,
      ['web>orders:12/1'],
    ],
    [
      'a slot that left the window no longer counts',
      [
        [0, 5],
        [95_000, 7],
      ],
      105_000,
      ['web>orders:7/0'],
    ],
    ['an edge with nothing left in its window is gone', [[0, 5]], 100_000, []],
    [
      'reports in the same slot merge',
      [
        [1_000, 1],
        [2_000, 2],
      ],
      3_000,
      ['web>orders:3/1'],
    ],
  ] as [string, [number, number][], number, string[]][])('%s', (_name, reports, at, expected) => {
    const o = new ObservedEdges({ maxEdges: 10, maxEdgesPerSource: 10, windowMs: 100_000 });
    reports.forEach(([t, calls], i) =>
      o.record(src('web'), edge('orders', calls, i === 0 ? 1 : 0), t),
    );
    expect(totals(o, at)).toEqual(expected);
  });

  it('sums the latency histogram over the window', () => {
    const o = new ObservedEdges({ maxEdges: 10, maxEdgesPerSource: 10, windowMs: 100_000 });
    o.record(src('web'), edge('orders', 2), 0);
    o.record(src('web'), edge('orders', 3), 50_000);
    expect(o.read(60_000)[0]?.latency[0]).toBe(5);
  });

  it('sweep forgets edges whose window is empty', () => {
    const o = new ObservedEdges({ maxEdges: 10, maxEdgesPerSource: 1, windowMs: 100_000 });
    o.record(src('web'), edge('orders', 1), 0);
    o.record(src('cart'), edge('orders', 1), 60_000);
    expect(o.sweep(110_000)).toBe(1);
    // The swept caller has room for a new destination again.
    expect(o.record(src('web'), edge('cart', 1), 110_000)).toBe(true);
  });

  it('ignores a new edge with no calls', () => {
    const o = new ObservedEdges({ maxEdges: 10, maxEdgesPerSource: 10, windowMs: 100_000 });
    o.record(src('web'), edge('orders', 0), 0);
    expect(o.size).toBe(0);
  });
});

describe('ObservedEdges: bounds', () => {
  it('evicts the least recently reported edge past maxEdges, and counts it', () => {
    const o = new ObservedEdges({ maxEdges: 2, maxEdgesPerSource: 10, windowMs: 100_000 });
    o.record(src('a'), edge('x', 1), 0);
    o.record(src('b'), edge('x', 1), 1);
    o.record(src('a'), edge('x', 1), 2); // a>x is now the most recent
    o.record(src('c'), edge('x', 1), 3);
    expect(totals(o, 4)).toEqual(['a>x:2/0', 'c>x:1/0']);
    expect(o.evictions).toBe(1);
    expect(o.size).toBe(2);
  });

  it('refuses a caller its destinations past maxEdgesPerSource, without evicting others', () => {
    const o = new ObservedEdges({ maxEdges: 100, maxEdgesPerSource: 2, windowMs: 100_000 });
    o.record(src('other'), edge('x', 1), 0);
    expect(o.record(src('noisy'), edge('d1', 1), 0)).toBe(true);
    expect(o.record(src('noisy'), edge('d2', 1), 0)).toBe(true);
    expect(o.record(src('noisy'), edge('d3', 1), 0)).toBe(false);
    // Known edges of the same caller still count.
    expect(o.record(src('noisy'), edge('d1', 1), 0)).toBe(true);
    expect(o.refused).toBe(1);
    expect(totals(o, 1)).toEqual(['noisy>d1:2/0', 'noisy>d2:1/0', 'other>x:1/0']);
    // Once its edges leave the window, the caller has room again.
    o.read(200_000);
    expect(o.record(src('noisy'), edge('d3', 1), 200_000)).toBe(true);
  });
});
