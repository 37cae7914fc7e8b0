import { describe, expect, it } from '@jest/globals';
import { splitDiscoverQuery } from '../common/discovery.js';
import { codeOf } from '../test/helpers/errors.js';
import { discoverQuerySchema } from '../common/wire.js';
import type { Instance, RegistryEvent, SnapshotService } from '../common/wire.js';
import { MirrorState } from './mirror-state.js';

const svc = { namespace: 'shop', name: 'web' };
const inst = (
  id: string,
  status: 'passing' | 'warning' | 'critical' = 'passing',
  host = '10.0.0.1',
): Instance => ({
  id,
  service: svc,
  host,
  port: 80,
  weight: 1,
  metadata: {},
  health: { status },
  source: 'registration',
  registeredAt: '2026-01-01T00:00:00.000Z',
});
let seq = 0;
/** An event of `type` with the fields given (each test states only what the state reads). */
const ev = (type: RegistryEvent['type'], extra: Record<string, unknown> = {}): RegistryEvent =>
  ({
    seq: ++seq,
    type,
    time: '2026-01-01T00:00:00.000Z',
    service: svc,
    ...extra,
  }) as RegistryEvent;
const all = (m: MirrorState) =>
  (
    JSON.parse(
      m
        .discoverParsed('shop/web', splitDiscoverQuery(discoverQuerySchema.parse({ all: 'true' })))
        .toString(),
    ) as {
      instances: { id: string }[];
    }
  ).instances.map((i) => i.id);

/** Feeds `m` a whole chunked snapshot: begin, one chunk per entry of `chunks`, end. */
function snapshot(m: MirrorState, at: number, chunks: SnapshotService[][]): boolean {
  m.applyResync({ seq: at, type: 'resync_begin', time: '', data: { services: 0 } });
  for (const services of chunks)
    m.applyResync({ seq: at, type: 'resync_chunk', time: '', data: { services } });
  return m.applyResync({
    seq: at,
    type: 'resync_end',
    time: '',
    data: { services: 0, chunks: chunks.length, instances: 0 },
  });
}

describe('MirrorState', () => {
  it('starts from a snapshot and follows deltas', () => {
    const m = new MirrorState();
    snapshot(m, 10, [
      [{ ...svc, spec: { selector: {} }, items: [inst('b'), inst('a'), inst('c', 'critical')] }],
    ]);
    expect(m.lastSeq).toBe(10);
    expect(all(m)).toEqual(['a', 'b']);
    m.apply(ev('service_registered', { instance: inst('d') }));
    m.apply(ev('service_unhealthy', { instance: inst('a', 'critical') }));
    m.apply(ev('service_healthy', { instance: inst('c') }));
    m.apply(ev('service_deregistered', { instance: inst('b') }));
    expect(all(m)).toEqual(['c', 'd']);
    // A warning instance is still handed out, as by the operator.
    m.apply(ev('service_unhealthy', { instance: inst('d', 'warning') }));
    expect(all(m)).toEqual(['c', 'd']);
  });

  it('follows spec changes, blocking and deletion', () => {
    const m = new MirrorState();
    m.apply(ev('service_updated', { data: { declared: true, spec: { config: { a: '1' } } } }));
    m.apply(ev('service_registered', { instance: inst('a') }));
    expect(m.spec('shop', 'web')?.config).toEqual({ a: '1' });
    m.apply(
      ev('service_updated', {
        data: { declared: true, spec: { blocked: { discovery: true, reason: 'maintenance' } } },
      }),
    );
    expect(codeOf(() => all(m))).toBe('SERVICE_BLOCKED');
    m.apply(ev('service_deleted'));
    expect(codeOf(() => all(m))).toBe('SERVICE_NOT_FOUND');
  });

  it('route: the healthy set discovery hands out, a new object only when it changes', () => {
    const m = new MirrorState();
    expect(m.route('shop', 'web')).toBeUndefined();
    snapshot(m, 5, [
      [{ ...svc, spec: { selector: {} }, items: [inst('b'), inst('a'), inst('c', 'critical')] }],
    ]);
    const first = m.route('shop', 'web');
    expect(first?.instances.map((i) => i.id)).toEqual(['a', 'b']);
    expect(first?.spec).toEqual({ selector: {} });
    // A heartbeat-only renewal keeps the route (and the balancers the proxy caches on it).
    m.apply(ev('service_registered', { instance: inst('a') }));
    expect(m.route('shop', 'web')).toBe(first);
    m.apply(ev('service_unhealthy', { instance: inst('a', 'critical') }));
    const second = m.route('shop', 'web');
    expect(second).not.toBe(first);
    expect(second?.instances.map((i) => i.id)).toEqual(['b']);
    m.apply(ev('service_updated', { data: { declared: true, spec: { config: { k: 'v' } } } }));
    expect(m.route('shop', 'web')?.spec).toEqual({ config: { k: 'v' } });
    m.apply(ev('service_deregistered', { instance: inst('b') }));
    expect(m.route('shop', 'web')?.instances).toEqual([]);
    m.apply(ev('service_deleted'));
    expect(m.route('shop', 'web')).toBeUndefined();
  });

  it('a resync replaces everything it knew', () => {
    const m = new MirrorState();
    m.apply(ev('service_registered', { instance: inst('old') }));
    snapshot(m, 99, []);
    expect(codeOf(() => all(m))).toBe('SERVICE_NOT_FOUND');
    expect(m.size).toBe(0);
  });

  it('says which service changed its spec, and nothing for instance events', () => {
    const m = new MirrorState();
    expect(m.apply(ev('service_updated', { data: { declared: false } }))).toEqual(svc);
    expect(m.apply(ev('service_registered', { instance: inst('a') }))).toBeUndefined();
    expect(m.spec('shop', 'web')).toBeUndefined();
  });

  describe('a chunked snapshot is applied atomically at resync_end', () => {
    const base = (): MirrorState => {
      const m = new MirrorState();
      m.apply(ev('service_registered', { instance: inst('old') }));
      return m;
    };
    const other = { namespace: 'shop', name: 'orders' };
    const chunks: SnapshotService[][] = [
      [{ ...svc, declared: true, spec: { config: { a: '1' } }, items: [inst('n1'), inst('n2')] }],
      // The same service continues in the next chunk: its items are added.
      [
        { ...svc, items: [inst('n3', 'critical'), inst('n4')] },
        { ...other, items: [] },
      ],
      [],
    ];

    it.each([
      ['after begin', 0],
      ['after the first chunk', 1],
      ['after every chunk', 3],
    ])('%s, discovery still answers from the old copy and lastSeq stays', (_name, upTo) => {
      const m = base();
      const before = m.lastSeq;
      m.applyResync({ seq: 500, type: 'resync_begin', time: '', data: { services: 2 } });
      for (const services of chunks.slice(0, upTo))
        expect(
          m.applyResync({ seq: 500, type: 'resync_chunk', time: '', data: { services } }),
        ).toBe(false);
      expect(m.receiving).toBe(true);
      expect(all(m)).toEqual(['old']);
      expect(m.lastSeq).toBe(before);
      expect(m.size).toBe(1);
    });

    it('at resync_end the new copy replaces the old one whole, continuations merged', () => {
      const m = base();
      expect(snapshot(m, 500, chunks)).toBe(true);
      expect(m.receiving).toBe(false);
      expect(m.lastSeq).toBe(500);
      expect(all(m)).toEqual(['n1', 'n2', 'n4']);
      expect(m.instances('shop', 'web').map((i) => i.id)).toEqual(['n1', 'n2', 'n3', 'n4']);
      expect(m.spec('shop', 'web')?.config).toEqual({ a: '1' });
      expect(m.size).toBe(2);
    });

    it('a snapshot cut off (connection lost) leaves the old copy and its seq', () => {
      const m = base();
      const before = m.lastSeq;
      m.applyResync({ seq: 500, type: 'resync_begin', time: '', data: { services: 2 } });
      m.applyResync({ seq: 500, type: 'resync_chunk', time: '', data: { services: chunks[0]! } });
      m.abortResync();
      expect(all(m)).toEqual(['old']);
      expect(m.lastSeq).toBe(before);
      // A chunk or end without its begin is a protocol error, not a silent merge.
      expect(() =>
        m.applyResync({ seq: 500, type: 'resync_chunk', time: '', data: { services: [] } }),
      ).toThrow(/without its resync_begin/);
      expect(() =>
        m.applyResync({
          seq: 500,
          type: 'resync_end',
          time: '',
          data: { services: 0, chunks: 0, instances: 0 },
        }),
      ).toThrow(/without its resync_begin/);
      expect(all(m)).toEqual(['old']);
    });

    it('a delta in the middle of a snapshot is refused', () => {
      const m = base();
      m.applyResync({ seq: 500, type: 'resync_begin', time: '', data: { services: 1 } });
      expect(() => m.apply(ev('service_registered', { instance: inst('x') }))).toThrow(
        /middle of a snapshot/,
      );
    });
  });
});

describe('MirrorState intentions', () => {
  const spec = (action: 'allow' | 'deny') => ({
    destination: { name: 'web' },
    sources: [{ name: 'caller', action }],
  });
  const held = (m: MirrorState) => [...m.intentions()].map((i) => `${i.namespace}/${i.name}`);
  const changed = (data: Record<string, unknown>) =>
    ev('intention_changed', { data: { intention: { namespace: 'shop', name: 'i' }, ...data } });

  /** A snapshot carrying intentions and a default, built aside until its end. */
  function policySnapshot(m: MirrorState, at: number, names: string[], end = true): void {
    m.applyResync({
      seq: at,
      type: 'resync_begin',
      time: '',
      data: { services: 0, intentionDefault: 'deny' },
    });
    m.applyResync({
      seq: at,
      type: 'resync_chunk',
      time: '',
      data: {
        services: [],
        intentions: names.map((name) => ({ namespace: 'shop', name, spec: spec('allow') })),
      },
    });
    if (end)
      m.applyResync({
        seq: at,
        type: 'resync_end',
        time: '',
        data: { services: 0, chunks: 1, instances: 0 },
      });
  }

  it("swaps a snapshot's intentions and default in at resync_end only", () => {
    const m = new MirrorState();
    expect(m.intentionDefault).toBeUndefined();
    policySnapshot(m, 5, ['a', 'b']);
    expect(held(m)).toEqual(['shop/a', 'shop/b']);
    expect(m.intentionDefault).toBe('deny');
    const version = m.policyVersion;
    policySnapshot(m, 9, ['c'], false);
    // Mid-snapshot the old copy stands; an abandoned snapshot leaves it untouched.
    expect(held(m)).toEqual(['shop/a', 'shop/b']);
    m.abortResync();
    expect(held(m)).toEqual(['shop/a', 'shop/b']);
    expect(m.policyVersion).toBe(version);
    policySnapshot(m, 12, ['c']);
    expect(held(m)).toEqual(['shop/c']);
    expect(m.policyVersion).toBeGreaterThan(version);
  });

  it('a snapshot from an operator that sends no intentions leaves the default unknown', () => {
    const m = new MirrorState();
    policySnapshot(m, 5, ['a']);
    snapshot(m, 6, [[]]);
    expect(m.intentionDefault).toBeUndefined();
    expect(held(m)).toEqual([]);
  });

  it.each([
    [
      'applied in force: kept',
      { change: 'applied', inForce: true, spec: spec('deny') },
      ['shop/i'],
      true,
    ],
    ['applied, confined out: dropped', { change: 'applied', inForce: false }, [], true],
    ['applied without spec (older operator): dropped', { change: 'applied' }, [], true],
    ['deleted: dropped', { change: 'deleted' }, [], true],
  ])('intention_changed %s', (_name, data, expected, moves) => {
    const m = new MirrorState();
    m.apply(changed({ change: 'applied', inForce: true, spec: spec('allow') }));
    const version = m.policyVersion;
    m.apply(changed(data));
    expect(held(m)).toEqual(expected);
    expect(m.policyVersion > version).toBe(moves);
    if (expected.length > 0) expect(m.intention('shop', 'i')?.spec).toEqual(spec('deny'));
  });

  it('deleting an intention it never held changes nothing', () => {
    const m = new MirrorState();
    m.apply(changed({ change: 'deleted' }));
    expect(m.policyVersion).toBe(0);
  });
});
