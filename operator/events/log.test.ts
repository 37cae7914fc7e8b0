import { describe, expect, it, jest } from '@jest/globals';
import type { Instance, MaxineEvent, RegistryEventDraft } from '../../common/wire.js';
import { ManualClock } from '../registry/clock.js';
import { EventFilter, EventLog } from './log.js';

const svc = (namespace: string, name: string) => ({ namespace, name });
/** A draft of any type with any data: numbering, bounds and fan-out do not read the cases. */
const draft = (
  type: RegistryEventDraft['type'],
  service: { namespace: string; name: string },
  data?: Record<string, unknown>,
): RegistryEventDraft => ({ type, service, ...(data && { data }) }) as RegistryEventDraft;

describe('EventLog', () => {
  it('numbers events, replays after a sequence, and says when it no longer holds that far back', () => {
    const log = new EventLog(3, new ManualClock());
    for (let i = 0; i < 5; i++) log.append(draft('service_registered', svc('ns', `s${i}`)));
    expect(log.lastSeq).toBe(5);
    expect(log.firstSeq).toBe(3);
    expect(log.since(5)).toEqual([]);
    expect(log.since(2)?.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(log.since(4)?.map((e) => e.service?.name)).toEqual(['s4']);
    expect(log.since(1)).toBeUndefined();
  });

  it('accepts events numbered elsewhere: in order, duplicates ignored, a gap starts it afresh', () => {
    const log = new EventLog(10, new ManualClock(), 0);
    const seen: number[] = [];
    log.subscribe((e) => seen.push(e.seq));
    const numbered = (seq: number) =>
      ({ seq, time: 't', ...draft('service_registered', svc('ns', `s${seq}`)) }) as never;
    // The first event of a shared log: nothing before it is held.
    log.accept(numbered(500));
    log.accept(numbered(501));
    log.accept(numbered(501)); // read twice: ignored
    log.accept(numbered(499)); // older: ignored
    expect(seen).toEqual([500, 501]);
    expect(log.since(499)?.map((e) => e.seq)).toEqual([500, 501]);
    expect(log.since(498)).toBeUndefined();
    // Entries this log never saw (trimmed in the store): a since inside the gap resyncs.
    log.accept(numbered(600));
    expect(log.since(501)).toBeUndefined();
    expect(log.since(599)?.map((e) => e.seq)).toEqual([600]);
    expect(log.size).toBe(1);
    expect(log.bytes).toBe(JSON.stringify(numbered(600)).length);
    // Heartbeats stay local: they carry the last number and are not held.
    const beat = log.append(draft('service_heartbeat', svc('ns', 'a'), { id: 'x' }));
    expect(beat.seq).toBe(600);
    expect(log.since(599)?.map((e) => e.seq)).toEqual([600]);
  });

  it('refuses to resume from a sequence it never issued: older than its start, or ahead of it', () => {
    // A restarted operator starts numbering above its predecessor (start time in µs).
    const log = new EventLog(10, new ManualClock(), 1_000_000);
    log.append(draft('service_registered', svc('ns', 'a')));
    expect(log.since(1_000_000)?.map((e) => e.seq)).toEqual([1_000_001]);
    expect(log.since(1_000_001)).toEqual([]);
    expect(log.since(999_999)).toBeUndefined(); // from a previous incarnation
    expect(log.since(2_000_000)).toBeUndefined(); // ahead: not from this log
  });

  it('does not store heartbeats nor advance the sequence for them, but delivers them live', () => {
    const log = new EventLog(10, new ManualClock());
    const seen: MaxineEvent[] = [];
    log.subscribe((e) => seen.push(e));
    log.append(draft('service_registered', svc('ns', 'a')));
    log.append(draft('service_heartbeat', svc('ns', 'a')));
    expect(log.lastSeq).toBe(1);
    expect(log.since(0)?.map((e) => e.type)).toEqual(['service_registered']);
    expect(seen.map((e) => [e.type, e.seq])).toEqual([
      ['service_registered', 1],
      ['service_heartbeat', 1],
    ]);
  });

  it('wants heartbeats while a listener takes them (issue 17: else the registry builds none)', () => {
    const log = new EventLog(10, new ManualClock());
    expect(log.wantsHeartbeats).toBe(false);
    const offIgnoring = log.subscribe(() => undefined, { heartbeats: false });
    expect(log.wantsHeartbeats).toBe(false);
    expect(log.subscribers).toBe(1);
    const offTaking = log.subscribe(() => undefined, { heartbeats: true });
    const offDefault = log.subscribe(() => undefined); // a listener says nothing: it takes them
    expect(log.wantsHeartbeats).toBe(true);
    offTaking();
    expect(log.wantsHeartbeats).toBe(true);
    offDefault();
    expect(log.wantsHeartbeats).toBe(false);
    expect(log.subscribers).toBe(1);
    offIgnoring();
    expect(log.subscribers).toBe(0);
  });

  it('stamps RFC 3339 times from the clock and unsubscribes', () => {
    const log = new EventLog(10, new ManualClock(Date.parse('2026-03-04T05:06:07Z')));
    const seen: MaxineEvent[] = [];
    const off = log.subscribe((e) => seen.push(e));
    log.append(draft('acl_changed', svc('ns', '*')));
    off();
    log.append(draft('acl_changed', svc('ns', '*')));
    expect(seen).toHaveLength(1);
    expect(seen[0]?.time).toBe('2026-03-04T05:06:07.000Z');
  });
});

describe('EventLog byte bound', () => {
  /** An event whose JSON is `pad` characters longer than an empty one's. */
  const padded = (pad: number) =>
    draft('service_registered', svc('ns', 'a'), { pad: 'x'.repeat(pad) });
  it.each<[string, { events: number; bytes: number }, number[], number[], Record<string, number>]>([
    [
      'the newest events that fit are kept',
      { events: 100, bytes: 3500 },
      [1000, 1000, 1000, 1000, 1000],
      [3, 4, 5],
      { events: 0, bytes: 2 },
    ],
    [
      'the count bound still holds',
      { events: 2, bytes: 1e9 },
      [10, 10, 10],
      [2, 3],
      { events: 1, bytes: 0 },
    ],
    [
      'a large event pushes out several small ones',
      { events: 100, bytes: 3500 },
      [100, 100, 100, 100, 3000],
      [4, 5],
      { events: 0, bytes: 3 },
    ],
    [
      'an event larger than the whole budget is not held',
      { events: 100, bytes: 2000 },
      [100, 5000],
      [],
      { events: 0, bytes: 2 },
    ],
  ])('%s', (_name, bounds, pads, held, evictions) => {
    const log = new EventLog(bounds, new ManualClock());
    const sizes = new Map<number, number>();
    for (const pad of pads) {
      const event = log.append(padded(pad));
      sizes.set(event.seq, JSON.stringify(event).length);
    }
    expect(log.since(log.firstSeq - 1)?.map((e) => e.seq) ?? []).toEqual(held);
    expect(log.size).toBe(held.length);
    expect(log.bytes).toBe(held.reduce((sum, seq) => sum + (sizes.get(seq) ?? 0), 0));
    expect(log.bytes).toBeLessThanOrEqual(bounds.bytes);
    expect(log.evictions).toEqual(evictions);
    expect(log.firstSeq).toBe(held[0] ?? log.lastSeq + 1);
    // A client that last saw an evicted event is told to resync; one that saw the newest is not.
    expect(log.since(log.firstSeq - 2)).toBeUndefined();
    expect(log.since(log.lastSeq)).toEqual([]);
  });

  it('fans out one JSON text per event, the one the stream sends and the size counts', () => {
    const log = new EventLog({ events: 10, bytes: 1e6 }, new ManualClock());
    const texts: string[] = [];
    log.subscribe((e) => texts.push(log.serialized(e)));
    log.subscribe((e) => texts.push(log.serialized(e)));
    const stringify = jest.spyOn(JSON, 'stringify');
    let event: MaxineEvent;
    try {
      event = log.append(padded(10));
      expect(stringify).toHaveBeenCalledTimes(1); // not once per subscriber
    } finally {
      stringify.mockRestore();
    }
    expect(texts).toEqual([JSON.stringify(event), JSON.stringify(event)]);
    expect(log.bytes).toBe(texts[0]?.length);
    // An event not being fanned out (a replay, a snapshot) is serialized on demand.
    const other = {
      seq: 0,
      type: 'resync_end' as const,
      time: '',
      data: { services: 0, chunks: 0, instances: 0 },
    };
    expect(log.serialized(other)).toBe(JSON.stringify(other));
  });

  it('hands every subscriber the same Buffer of the event (its UTF-8 JSON), built once per event', () => {
    const log = new EventLog({ events: 10, bytes: 1e6 }, new ManualClock());
    const buffers: Buffer[] = [];
    for (let i = 0; i < 3; i++) log.subscribe((e) => buffers.push(log.encoded(e)));
    const from = jest.spyOn(Buffer, 'from');
    let event: MaxineEvent;
    try {
      event = log.append(draft('service_deleted', svc('ns', 'zürich'), {}));
      expect(from).toHaveBeenCalledTimes(1); // not once per subscriber
    } finally {
      from.mockRestore();
    }
    expect(buffers).toHaveLength(3);
    expect(buffers[1]).toBe(buffers[0]);
    expect(buffers[2]).toBe(buffers[0]);
    expect(buffers[0]?.toString('utf8')).toBe(JSON.stringify(event));
    expect(buffers[0]?.equals(Buffer.from(log.serialized(event), 'utf8'))).toBe(true);
    // The next event gets its own bytes; one not being fanned out (a replay) is encoded on demand.
    const next = log.append(draft('service_deleted', svc('ns', 'b'), {}));
    expect(buffers[3]?.toString('utf8')).toBe(JSON.stringify(next));
    expect(log.encoded(event).toString('utf8')).toBe(JSON.stringify(event));
  });

  it('does not serialize a heartbeat nobody listens to', () => {
    const log = new EventLog({ events: 10, bytes: 1e6 }, new ManualClock());
    const stringify = jest.spyOn(JSON, 'stringify');
    try {
      log.append(draft('service_heartbeat', svc('ns', 'a'), { id: 'a-1' }));
      expect(stringify).not.toHaveBeenCalled();
    } finally {
      stringify.mockRestore();
    }
    expect(log.bytes).toBe(0);
  });
});

describe('EventFilter', () => {
  const ev = (type: RegistryEventDraft['type'], namespace: string, name: string): MaxineEvent => ({
    seq: 1,
    time: '',
    ...draft(type, svc(namespace, name)),
  });
  it.each([
    [
      'everything but heartbeats by default',
      undefined,
      undefined,
      ev('service_registered', 'a', 'b'),
      true,
    ],
    ['no heartbeats unless asked', undefined, undefined, ev('service_heartbeat', 'a', 'b'), false],
    [
      'heartbeats when asked',
      undefined,
      ['service_heartbeat'],
      ev('service_heartbeat', 'a', 'b'),
      true,
    ],
    ['exact service', ['shop/web'], undefined, ev('service_registered', 'shop', 'web'), true],
    ['other service', ['shop/web'], undefined, ev('service_registered', 'shop', 'orders'), false],
    ['namespace wildcard', ['shop/*'], undefined, ev('service_registered', 'shop', 'orders'), true],
    ['name wildcard', ['*/orders'], undefined, ev('service_registered', 'bank', 'orders'), true],
    ['type filter', undefined, ['config_changed'], ev('service_registered', 'a', 'b'), false],
    [
      'an ACL change in the namespace of a watched service',
      ['shop/web'],
      undefined,
      ev('acl_changed', 'shop', '*'),
      true,
    ],
    [
      'an ACL change in another namespace',
      ['shop/web'],
      undefined,
      ev('acl_changed', 'bank', '*'),
      false,
    ],
    [
      'an intention for any destination',
      ['shop/web'],
      undefined,
      ev('intention_changed', '*', '*'),
      true,
    ],
    [
      'resync always passes',
      ['x/y'],
      ['config_changed'],
      { seq: 1, type: 'resync_begin', time: '', data: { services: 0 } },
      true,
    ],
  ] as const)('%s', (_name, services, types, event, expected) => {
    expect(new EventFilter(services, types).matches(event)).toBe(expected);
  });

  const intentionEvent = (
    destination: { namespace: string; name: string },
    sources: { name: string; namespace?: string; action: 'allow' | 'deny' }[] | undefined,
  ): MaxineEvent => ({
    seq: 1,
    time: '',
    type: 'intention_changed',
    service: destination,
    data: {
      intention: { namespace: destination.namespace, name: 'i' },
      change: sources === undefined ? 'deleted' : 'applied',
      ...(sources !== undefined && {
        inForce: true,
        spec: { destination: { name: destination.name }, sources },
      }),
    },
  });
  const web = { namespace: 'shop', name: 'web' };
  it.each([
    [
      'an intention elsewhere naming the caller',
      web,
      intentionEvent({ namespace: 'pay', name: 'ledger' }, [
        { name: 'web', namespace: 'shop', action: 'allow' },
      ]),
      true,
    ],
    [
      'naming it through a wildcard source',
      web,
      intentionEvent({ namespace: 'pay', name: 'ledger' }, [
        { name: '*', namespace: 'shop', action: 'deny' },
      ]),
      true,
    ],
    [
      'a source without namespace is the intention’s namespace, not the caller’s',
      web,
      intentionEvent({ namespace: 'pay', name: 'ledger' }, [{ name: 'web', action: 'allow' }]),
      false,
    ],
    [
      'naming another service',
      web,
      intentionEvent({ namespace: 'pay', name: 'ledger' }, [
        { name: 'admin', namespace: 'shop', action: 'allow' },
      ]),
      false,
    ],
    [
      'without caller= an intention elsewhere is not sent',
      undefined,
      intentionEvent({ namespace: 'pay', name: 'ledger' }, [
        { name: 'web', namespace: 'shop', action: 'allow' },
      ]),
      false,
    ],
    [
      'a deletion elsewhere (no spec) is not sent',
      web,
      intentionEvent({ namespace: 'pay', name: 'ledger' }, undefined),
      false,
    ],
  ] as const)('caller=: %s', (_name, caller, event, expected) => {
    expect(new EventFilter(['shop/web'], undefined, caller).matches(event)).toBe(expected);
  });
});

describe('EventLog.continueAfter', () => {
  const draft: RegistryEventDraft = {
    type: 'service_deleted',
    service: { namespace: 'a', name: 'b' },
    data: { declared: true },
  };
  it.each([
    ['a stored sequence above the start', 100, 500, 501],
    ['a stored sequence below the start (the start wins)', 1000, 500, 1001],
    ['nothing stored', 100, 0, 101],
  ])('numbers above %s', (_name, start, stored, first) => {
    const log = new EventLog(16, new ManualClock(), start);
    log.continueAfter(stored);
    expect(log.append(draft).seq).toBe(first);
    // What the previous process handed out is not replayable here: a resync.
    expect(log.canResumeFrom(first - 2)).toBe(false);
    expect(log.since(first - 1)).toHaveLength(1);
  });
  it('refuses once events were numbered', () => {
    const log = new EventLog(16, new ManualClock(), 0);
    log.append(draft);
    expect(() => log.continueAfter(10)).toThrow('continueAfter: events were already appended');
  });
});

describe('EventLog epoch', () => {
  // Two replicas started a moment apart: B's numbers overlap the range of A's.
  const replica = (start: number, epoch: string): EventLog => {
    const log = new EventLog(100, new ManualClock(), start, epoch);
    for (let i = 0; i < 5; i++) log.append(draft('service_registered', svc('ns', `${epoch}${i}`)));
    return log;
  };
  const b = replica(1_000_000, 'bbbb');

  it.each<[string, number, string | undefined, number[] | undefined]>([
    [
      'its own since and epoch: the events after it',
      1_000_002,
      'bbbb',
      [1_000_003, 1_000_004, 1_000_005],
    ],
    [
      'its own since without an epoch (a client before epochs): as before',
      1_000_002,
      undefined,
      [1_000_003, 1_000_004, 1_000_005],
    ],
    [
      "another replica's since, inside this range: a snapshot, never a replay",
      1_000_002,
      'aaaa',
      undefined,
    ],
    ["another replica's since equal to this last seq: a snapshot", 1_000_005, 'aaaa', undefined],
    [
      "another replica's since below this start: a snapshot (as before)",
      999_000,
      'aaaa',
      undefined,
    ],
  ])('%s', (_what, since, epoch, seqs) => {
    expect(b.since(since, epoch)?.map((e) => e.seq)).toEqual(seqs);
    expect(b.canResumeFrom(since, epoch)).toBe(seqs !== undefined);
  });

  it('draws a fresh URL-safe epoch per log unless given; continueAfter may carry one over', () => {
    const one = new EventLog(10, new ManualClock());
    const two = new EventLog(10, new ManualClock());
    expect(one.epoch).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(one.epoch).not.toBe(two.epoch);
    two.continueAfter(40, 'kept-epoch');
    expect(two.epoch).toBe('kept-epoch');
    expect(two.canResumeFrom(40, 'kept-epoch')).toBe(true);
    expect(two.canResumeFrom(40, one.epoch)).toBe(false);
  });
});

describe('EventFilter instance filters (version, zone, datacenter, metadata)', () => {
  const instance = (fields: Partial<Instance>): Instance => ({
    id: 'web-1',
    service: svc('shop', 'web'),
    host: '10.0.0.1',
    port: 80,
    weight: 1,
    metadata: {},
    health: { status: 'passing' },
    source: 'registration',
    registeredAt: '',
    ...fields,
  });
  const registered = (fields: Partial<Instance>): MaxineEvent => ({
    seq: 1,
    time: '',
    type: 'service_registered',
    service: svc('shop', 'web'),
    instance: instance(fields),
    data: {},
  });
  const heartbeat = (id: string): MaxineEvent => ({
    seq: 1,
    time: '',
    type: 'service_heartbeat',
    service: svc('shop', 'web'),
    data: { id, status: 'passing' },
  });
  const circuit = (instanceId?: string): MaxineEvent => ({
    seq: 1,
    time: '',
    type: 'circuit_state_changed',
    service: svc('shop', 'web'),
    data: {
      from: 'closed',
      to: 'open',
      ...(instanceId !== undefined && { instanceId }),
      reporter: { service: svc('shop', 'cart') },
    },
  });
  const configChanged: MaxineEvent = {
    seq: 1,
    time: '',
    type: 'config_changed',
    service: svc('shop', 'web'),
    data: { config: {} },
  };
  /** What the registry holds now, for events that name an instance by id only. */
  const known: Record<string, Instance> = {
    'in-a': instance({ id: 'in-a', zone: 'a', version: 'v2', metadata: { tier: 'gold' } }),
    'in-b': instance({ id: 'in-b', zone: 'b' }),
  };
  const lookup = (id: string): Instance | undefined => known[id];
  const everyType = [
    'service_registered',
    'service_heartbeat',
    'circuit_state_changed',
    'config_changed',
  ] as const;

  it.each([
    ['no criteria: every instance', {}, registered({ zone: 'x' }), true],
    ['zone matches', { zone: 'a' }, registered({ zone: 'a' }), true],
    ['zone differs', { zone: 'a' }, registered({ zone: 'b' }), false],
    ['zone absent on the instance never matches', { zone: 'a' }, registered({}), false],
    ['version matches', { version: 'v2' }, registered({ version: 'v2' }), true],
    ['version differs', { version: 'v2' }, registered({ version: 'v1' }), false],
    ['datacenter matches', { datacenter: 'dc1' }, registered({ datacenter: 'dc1' }), true],
    [
      'every metadata pair holds',
      { metadata: { tier: 'gold', team: 'pay' } },
      registered({ metadata: { tier: 'gold', team: 'pay', extra: 'x' } }),
      true,
    ],
    [
      'one metadata pair missing',
      { metadata: { tier: 'gold', team: 'pay' } },
      registered({ metadata: { tier: 'gold' } }),
      false,
    ],
    [
      'a metadata value differs',
      { metadata: { tier: 'gold' } },
      registered({ metadata: { tier: 'silver' } }),
      false,
    ],
    [
      'an inherited property is no metadata',
      { metadata: { constructor: 'x' } },
      registered({}),
      false,
    ],
    [
      'all criteria together',
      { zone: 'a', version: 'v2', metadata: { tier: 'gold' } },
      registered({ zone: 'a', version: 'v2', metadata: { tier: 'gold' } }),
      true,
    ],
    [
      'all criteria, one off',
      { zone: 'a', version: 'v2', metadata: { tier: 'gold' } },
      registered({ zone: 'a', version: 'v3', metadata: { tier: 'gold' } }),
      false,
    ],
    ['a heartbeat of a matching instance (by id)', { zone: 'a' }, heartbeat('in-a'), true],
    ['a heartbeat of another instance', { zone: 'a' }, heartbeat('in-b'), false],
    ['a heartbeat of an unknown instance', { zone: 'a' }, heartbeat('gone'), false],
    ['a circuit of a matching instance (by id)', { version: 'v2' }, circuit('in-a'), true],
    ['a circuit of another instance', { version: 'v2' }, circuit('in-b'), false],
    ['a service-level circuit is about the service', { version: 'v2' }, circuit(), true],
    ['a config change is about the service', { zone: 'a' }, configChanged, true],
    [
      'the resync marker always passes',
      { zone: 'a' },
      { seq: 1, time: '', type: 'resync', data: { reason: 'slow_consumer' } },
      true,
    ],
  ] as const)('%s', (_name, criteria, event, expected) => {
    const filter = new EventFilter(['shop/*'], everyType, undefined, { criteria, lookup });
    expect(filter.matches(event)).toBe(expected);
  });

  it('still applies the service and type filters', () => {
    const filter = new EventFilter(['bank/*'], undefined, undefined, { criteria: { zone: 'a' } });
    expect(filter.matches(registered({ zone: 'a' }))).toBe(false);
    expect(filter.filtersInstances).toBe(true);
    expect(
      new EventFilter(undefined, undefined, undefined, { criteria: {} }).filtersInstances,
    ).toBe(false);
  });
});

describe('EventLog kept by a store (restore, persistTo, held)', () => {
  const appendN = (log: EventLog, n: number): void => {
    for (let i = 0; i < n; i++) log.append(draft('service_registered', svc('ns', `s${i}`)));
  };

  it('hands each stored event to the sink before any listener, never a heartbeat', () => {
    const log = new EventLog(10, new ManualClock(), 100);
    const order: string[] = [];
    log.persistTo((event, json) => {
      expect(JSON.parse(json)).toEqual(event);
      // The ring already holds it: a sink that compacts reads the whole log.
      expect(log.held().at(-1)).toBe(event);
      order.push(`sink ${event.seq}`);
    });
    log.subscribe((event) => order.push(`listener ${event.seq}`));
    appendN(log, 2);
    log.append({ type: 'service_heartbeat', service: svc('ns', 'a'), data: { id: 'x' } } as never);
    expect(order).toEqual(['sink 101', 'listener 101', 'sink 102', 'listener 102', 'listener 102']);
  });

  it('continues a kept log: same epoch, a since inside it replays, the next event numbered on', () => {
    const before = new EventLog(10, new ManualClock(), 100);
    appendN(before, 4);
    const after = new EventLog(10, new ManualClock(), 999_999);
    after.restore(before.epoch, before.heldAfter, before.held());
    expect(after.epoch).toBe(before.epoch);
    expect(after.since(102, before.epoch)).toEqual(before.since(102));
    expect(after.since(99, before.epoch)).toBeUndefined();
    after.append(draft('service_registered', svc('ns', 'next')));
    expect(after.lastSeq).toBe(105);
    expect(after.since(104, before.epoch)?.map((e) => e.service?.name)).toEqual(['next']);
  });

  it('applies its own bounds to what it restores, and refuses a hole or a late restore', () => {
    const before = new EventLog(10, new ManualClock(), 0);
    appendN(before, 8);
    const small = new EventLog(3, new ManualClock(), 0);
    small.restore(before.epoch, 0, before.held());
    expect(small.held().map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(small.since(2, before.epoch)).toBeUndefined();
    const holed = new EventLog(10, new ManualClock(), 0);
    const [a, , c] = before.held();
    expect(() => holed.restore('e', 0, [a!, c!])).toThrow('is not next');
    const late = new EventLog(10, new ManualClock(), 0);
    appendN(late, 1);
    expect(() => late.restore('e', 0, [])).toThrow('already appended');
  });
});
