import { describe, expect, it } from '@jest/globals';
import type { MaxineEvent } from '../../common/wire.js';
import { ManualClock } from '../registry/clock.js';
import { EventFilter, EventLog } from './log.js';

const svc = (namespace: string, name: string) => ({ namespace, name });

describe('EventLog', () => {
  it('numbers events, replays after a sequence, and says when it no longer holds that far back', () => {
    const log = new EventLog(3, new ManualClock());
    for (let i = 0; i < 5; i++)
      log.append({ type: 'service_registered', service: svc('ns', `s${i}`) });
    expect(log.lastSeq).toBe(5);
    expect(log.firstSeq).toBe(3);
    expect(log.since(5)).toEqual([]);
    expect(log.since(2)?.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(log.since(4)?.map((e) => e.service?.name)).toEqual(['s4']);
    expect(log.since(1)).toBeUndefined();
  });

  it('refuses to resume from a sequence it never issued: older than its start, or ahead of it', () => {
    // A restarted operator starts numbering above its predecessor (start time in µs).
    const log = new EventLog(10, new ManualClock(), 1_000_000);
    log.append({ type: 'service_registered', service: svc('ns', 'a') });
    expect(log.since(1_000_000)?.map((e) => e.seq)).toEqual([1_000_001]);
    expect(log.since(1_000_001)).toEqual([]);
    expect(log.since(999_999)).toBeUndefined(); // from a previous incarnation
    expect(log.since(2_000_000)).toBeUndefined(); // ahead: not from this log
  });

  it('does not store heartbeats nor advance the sequence for them, but delivers them live', () => {
    const log = new EventLog(10, new ManualClock());
    const seen: MaxineEvent[] = [];
    log.subscribe((e) => seen.push(e));
    log.append({ type: 'service_registered', service: svc('ns', 'a') });
    log.append({ type: 'service_heartbeat', service: svc('ns', 'a') });
    expect(log.lastSeq).toBe(1);
    expect(log.since(0)?.map((e) => e.type)).toEqual(['service_registered']);
    expect(seen.map((e) => [e.type, e.seq])).toEqual([
      ['service_registered', 1],
      ['service_heartbeat', 1],
    ]);
  });

  it('stamps RFC 3339 times from the clock and unsubscribes', () => {
    const log = new EventLog(10, new ManualClock(Date.parse('2026-03-04T05:06:07Z')));
    const seen: MaxineEvent[] = [];
    const off = log.subscribe((e) => seen.push(e));
    log.append({ type: 'acl_changed', service: svc('ns', '*') });
    off();
    log.append({ type: 'acl_changed', service: svc('ns', '*') });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.time).toBe('2026-03-04T05:06:07.000Z');
  });
});

describe('EventFilter', () => {
  const ev = (type: MaxineEvent['type'], namespace: string, name: string): MaxineEvent => ({
    seq: 1,
    type,
    time: '',
    service: svc(namespace, name),
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
      { seq: 1, type: 'resync_begin', time: '' },
      true,
    ],
  ] as const)('%s', (_name, services, types, event, expected) => {
    expect(new EventFilter(services, types).matches(event)).toBe(expected);
  });
});
