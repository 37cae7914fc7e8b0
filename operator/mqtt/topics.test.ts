import { describe, expect, it } from '@jest/globals';
import type { Instance, MaxineEvent } from '../../common/wire.js';
import {
  backoffMs,
  eventTopic,
  inboundFilters,
  parseInboundTopic,
  stateKeyOf,
  stateMessage,
  stateTopic,
  statusTopic,
} from './topics.js';

const svc = { namespace: 'shop', name: 'cart' };
const ev = (type: string, service?: { namespace: string; name: string }): MaxineEvent =>
  ({ seq: 1, time: 't', type, ...(service && { service }), data: {} }) as unknown as MaxineEvent;

describe('eventTopic', () => {
  it.each([
    ['service_registered', svc, 'maxine/shop/cart/service_registered'],
    ['service_unhealthy', svc, 'maxine/shop/cart/service_unhealthy'],
    ['acl_changed', { namespace: 'shop', name: '*' }, 'maxine/shop/_all/acl_changed'],
    ['intention_changed', { namespace: '*', name: '*' }, 'maxine/_all/_all/intention_changed'],
    ['acl_changed', undefined, 'maxine/_cluster/_cluster/acl_changed'],
    ['config_changed', { namespace: 'a+b', name: 'c#/d' }, 'maxine/a%2Bb/c%23%2Fd/config_changed'],
  ])('%s about %j → %s', (type, service, topic) => {
    expect(eventTopic('maxine', ev(type, service))).toBe(topic);
  });
  it('uses the prefix', () => {
    expect(eventTopic('site/7', ev('service_healthy', svc))).toBe(
      'site/7/shop/cart/service_healthy',
    );
  });
});

describe('state and status topics', () => {
  it.each([
    [stateTopic('maxine', 'shop', 'cart'), 'maxine/shop/cart/state'],
    [statusTopic('maxine', 'op-1'), 'maxine/bridge/op-1/status'],
    [statusTopic('maxine', 'Host.Name/1'), 'maxine/bridge/Host.Name%2F1/status'],
  ])('%s', (got, want) => expect(got).toBe(want));
});

describe('stateKeyOf', () => {
  it.each([
    ['service_registered', svc, 'shop/cart'],
    ['service_deregistered', svc, 'shop/cart'],
    ['service_deleted', svc, 'shop/cart'],
    ['service_heartbeat', svc, undefined],
    ['acl_changed', { namespace: 'shop', name: '*' }, undefined],
    ['acl_changed', undefined, undefined],
  ])('%s about %j → %s', (type, service, key) => {
    expect(stateKeyOf(ev(type, service))).toBe(key);
  });
});

const inst = (id: string, status: 'passing' | 'warning' | 'critical'): Instance => ({
  id,
  service: svc,
  host: '10.0.0.1',
  port: 80,
  weight: 1,
  metadata: {},
  health: { status },
  source: 'registration',
  registeredAt: 't',
});

describe('stateMessage', () => {
  it.each([
    ['gone service clears', undefined, undefined],
    ['no instances', { instances: [] }, []],
    [
      'critical left out, id order',
      { instances: [inst('b', 'passing'), inst('c', 'critical'), inst('a', 'warning')] },
      ['a', 'b'],
    ],
    [
      'blocked discovery shows none',
      { instances: [inst('a', 'passing')], discoveryBlocked: 'retired' },
      [],
    ],
  ])('%s', (_name, current, ids) => {
    const m = stateMessage(svc, current, 9, 'now');
    if (ids === undefined) expect(m).toBeUndefined();
    else {
      expect(m?.instances.map((i) => i.id)).toEqual(ids);
      expect(m).toMatchObject({ service: svc, seq: 9, time: 'now' });
      const blocked = current !== undefined && 'discoveryBlocked' in current;
      expect(m?.blocked).toEqual(blocked ? { reason: 'retired' } : undefined);
    }
  });
  it('carries the discovery view, not leases or check output', () => {
    const m = stateMessage(
      svc,
      { instances: [{ ...inst('a', 'passing'), lease: { ttlSeconds: 3, expiresAt: 'x' } }] },
      1,
      't',
    );
    expect(m?.instances[0]).toEqual({
      id: 'a',
      service: svc,
      host: '10.0.0.1',
      port: 80,
      weight: 1,
      metadata: {},
      health: 'passing',
    });
  });
});

describe('parseInboundTopic', () => {
  it.each([
    [
      'maxine/shop/cart/register/dev1',
      { namespace: 'shop', service: 'cart', verb: 'register', user: 'dev1' },
    ],
    [
      'maxine/shop/cart/heartbeat/dev1',
      { namespace: 'shop', service: 'cart', verb: 'heartbeat', user: 'dev1' },
    ],
    [
      'maxine/shop/cart/deregister/dev1',
      { namespace: 'shop', service: 'cart', verb: 'deregister', user: 'dev1' },
    ],
    ['maxine/shop/cart/register', undefined],
    ['maxine/shop/cart/register/dev1/x', undefined],
    ['maxine/shop/cart/explode/dev1', undefined],
    ['maxine/Shop/cart/register/dev1', undefined],
    ['other/shop/cart/register/dev1', undefined],
    ['maxine/shop/cart/register/', undefined],
    [`maxine/shop/cart/register/${'u'.repeat(257)}`, undefined],
    [
      `maxine/shop/cart/register/${'u'.repeat(256)}`,
      { namespace: 'shop', service: 'cart', verb: 'register', user: 'u'.repeat(256) },
    ],
    [
      'maxine/shop/cart/register/dév-1',
      { namespace: 'shop', service: 'cart', verb: 'register', user: 'dév-1' },
    ],
    ['maxine/shöp/cart/register/dev1', undefined],
    [`maxine/${'a'.repeat(64)}/cart/register/dev1`, undefined],
    ['maxine//cart/register/dev1', undefined],
    ['maxine/shop/ca+rt/register/dev1', undefined],
  ])('%s', (topic, want) => expect(parseInboundTopic('maxine', topic)).toEqual(want));
  it('subscribes one shared filter per verb', () => {
    expect(inboundFilters('maxine')).toEqual([
      '$share/maxine-inbound/maxine/+/+/register/+',
      '$share/maxine-inbound/maxine/+/+/heartbeat/+',
      '$share/maxine-inbound/maxine/+/+/deregister/+',
    ]);
  });
});

describe('backoffMs', () => {
  it.each([
    [0, 0, 500],
    [1, 0, 1000],
    [3, 0, 4000],
    [10, 0, 30_000],
    [1000, 0, 30_000],
    [1, 0.999, 750],
  ])('attempt %d, random %d → %d', (attempt, random, want) => {
    expect(backoffMs(attempt, 500, 30_000, random)).toBe(want);
  });
});
