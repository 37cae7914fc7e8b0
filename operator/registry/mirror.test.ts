/**
 * Registry.kept / mirror / unmirror / restartLease / releaseLease: registrations kept in the
 * API server (Kubernetes mode), mirrored by every replica, their leases held by the leader.
 */
import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../../common/errors.js';
import { testRegistry } from '../../test/helpers/registry.js';
import type { KeptRegistration } from './registry.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function kept(id: string, extra: Partial<KeptRegistration> = {}): KeptRegistration {
  return {
    id,
    namespace: 'shop',
    service: 'web',
    host: '10.0.0.1',
    port: 8080,
    weight: 1,
    metadata: {},
    registeredAt: T0 - 60_000,
    ttlMs: 10_000,
    check: { status: 'passing' },
    leaseLapsed: false,
    ...extra,
  };
}

describe('Registry.kept', () => {
  it('is what the object holds of a registration, and nothing of a pod', () => {
    const { registry } = testRegistry();
    const { instance } = registry.register(
      { namespace: 'shop', service: 'web', host: 'h', port: 1, weight: 2, ttlSeconds: 5 },
      'User:alice',
    );
    registry.heartbeat(instance.id, { status: 'critical', output: 'down' });
    expect(registry.kept(instance.id)).toEqual({
      id: instance.id,
      namespace: 'shop',
      service: 'web',
      host: 'h',
      port: 1,
      weight: 2,
      metadata: {},
      owner: 'User:alice',
      registeredAt: T0,
      ttlMs: 5000,
      check: { status: 'critical', output: 'down' },
      leaseLapsed: false,
    });
    registry.upsertService('shop', 'pods', { selector: { app: 'p' } });
    registry.syncPodInstances('shop', 'pods', [
      { id: 'shop.p-1.pods', host: '10.1.1.1', port: 80, weight: 1, metadata: {}, ready: true },
    ]);
    expect(registry.kept('shop.p-1.pods')).toBeUndefined();
    expect(registry.kept('nope')).toBeUndefined();
  });
});

describe('Registry.mirror on a follower (no lease here)', () => {
  it.each<[string, KeptRegistration, string]>([
    ['passing', kept('a'), 'passing'],
    ['a reported critical', kept('b', { check: { status: 'critical', output: 'x' } }), 'critical'],
    ['a lapsed lease', kept('c', { leaseLapsed: true }), 'critical'],
  ])('%s: added with the kept health, never expired here', (_what, k, status) => {
    const { registry, clock, events } = testRegistry();
    expect(registry.mirror(k, false)).toBe('added');
    const instance = registry.getInstance(k.id);
    expect(instance?.health.status).toBe(status);
    expect(instance?.lease).toBeUndefined();
    expect(instance?.registeredAt).toBe(new Date(T0 - 60_000).toISOString());
    expect(events.at(-1)).toMatchObject({ type: 'service_registered', data: { mirrored: true } });
    clock.advance(10 * 60_000);
    expect(registry.sweep()).toMatchObject({ leased: 0, removed: 0 });
    expect(registry.getInstance(k.id)).toBeDefined();
  });

  it('applies a later change of address and health, and says unchanged for an echo', () => {
    const { registry, events } = testRegistry();
    registry.mirror(kept('a'), false);
    expect(registry.mirror(kept('a'), false)).toBe('unchanged');
    const before = events.length;
    expect(registry.mirror(kept('a', { port: 9090, check: { status: 'critical' } }), false)).toBe(
      'updated',
    );
    expect(registry.getInstance('a')).toMatchObject({ port: 9090, health: { status: 'critical' } });
    expect(events.slice(before).map((e) => e.type)).toEqual([
      'service_registered',
      'service_unhealthy',
    ]);
    expect(registry.mirror(kept('a', { port: 9090 }), false)).toBe('updated');
    expect(registry.getInstance('a')?.health.status).toBe('passing');
  });

  it.each<[string, () => ReturnType<typeof testRegistry>, KeptRegistration, string]>([
    [
      'an undeclared service when that is off',
      () => testRegistry({ allowUndeclared: false }),
      kept('a'),
      'SERVICE_NOT_DECLARED',
    ],
    [
      'the instance limit',
      () => {
        const t = testRegistry({ limits: { instances: 1 } });
        t.registry.mirror(kept('first'), false);
        return t;
      },
      kept('second', { host: '10.0.0.2' }),
      'LIMIT_EXCEEDED',
    ],
    [
      'too much metadata',
      () => testRegistry({ limits: { metadataKeys: 1 } }),
      kept('a', { metadata: { a: '1', b: '2' } }),
      'METADATA_TOO_LARGE',
    ],
    [
      "an id another service's instance holds",
      () => {
        const t = testRegistry();
        t.registry.register({
          id: 'a',
          namespace: 'shop',
          service: 'other',
          host: 'h',
          port: 1,
          weight: 1,
        });
        return t;
      },
      kept('a'),
      'INSTANCE_CONFLICT',
    ],
  ])('refuses %s and changes nothing', (_what, make, k, code) => {
    const { registry } = make();
    const before = registry.stats();
    let caught: unknown;
    try {
      registry.mirror(k, false);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MaxineError);
    expect((caught as MaxineError).code).toBe(code);
    expect(registry.stats()).toEqual(before);
  });
});

describe('Registry.mirror on the leader, restartLease, releaseLease', () => {
  it('a new leader restarts every lease at takeover: a full TTL of grace, then the normal expiry', () => {
    const { registry, clock } = testRegistry({ massExpiryMinInstances: 100 });
    registry.mirror(kept('live'), false);
    registry.mirror(kept('silent', { host: '10.0.0.2' }), false);
    registry.mirror(kept('lapsed', { host: '10.0.0.3', leaseLapsed: true }), false);
    clock.advance(60_000); // long after the objects were written
    for (const id of ['live', 'silent', 'lapsed']) registry.restartLease(id);
    expect(registry.getInstance('live')?.lease?.expiresAt).toBe(
      new Date(clock.now() + 10_000).toISOString(),
    );
    clock.advance(9_000);
    registry.heartbeat('live', {});
    registry.heartbeat('lapsed', {});
    expect(registry.sweep()).toMatchObject({ lapsed: 0, removed: 0 });
    expect(registry.getInstance('lapsed')?.health.status).toBe('passing');
    clock.advance(2_000);
    expect(registry.sweep()).toMatchObject({ lapsed: 1, removed: 0 });
    expect(registry.getInstance('silent')?.health).toMatchObject({
      status: 'critical',
      reason: 'lease-expired',
    });
    // Removed once TTL and grace (60 s) have passed; those heartbeating stay.
    for (let t = 0; t < 60_000; t += 5_000) {
      clock.advance(5_000);
      registry.heartbeat('live', {});
      registry.heartbeat('lapsed', {});
      registry.sweep();
    }
    expect(registry.counters.evictions).toBe(1);
    expect(registry.getInstance('silent')).toBeUndefined();
    expect(registry.getInstance('live')?.health.status).toBe('passing');
  });

  it('a lease lapsed at the old leader stays critical until a heartbeat comes', () => {
    const { registry, clock } = testRegistry();
    registry.mirror(kept('a', { leaseLapsed: true }), false);
    registry.restartLease('a');
    clock.advance(1000);
    registry.sweep();
    expect(registry.getInstance('a')?.health.status).toBe('critical');
    registry.heartbeat('a', {});
    expect(registry.getInstance('a')?.health.status).toBe('passing');
  });

  it('the leader keeps its own lease and health when its object changes; a follower drops the lease', () => {
    const { registry, clock } = testRegistry();
    expect(registry.mirror(kept('a'), true)).toBe('added');
    expect(registry.getInstance('a')?.lease?.expiresAt).toBe(
      new Date(clock.now() + 10_000).toISOString(),
    );
    registry.mirror(kept('a', { port: 1, check: { status: 'critical' } }), true);
    expect(registry.getInstance('a')).toMatchObject({ port: 1, health: { status: 'passing' } });
    registry.releaseLease('a');
    expect(registry.getInstance('a')?.lease).toBeUndefined();
    clock.advance(60 * 60_000);
    expect(registry.sweep().removed).toBe(0);
  });

  it('unmirror removes a registration, never a pod', () => {
    const { registry, events } = testRegistry();
    registry.mirror(kept('a'), false);
    expect(registry.unmirror('a')).toBe(true);
    expect(registry.getInstance('a')).toBeUndefined();
    expect(events.find((e) => e.type === 'service_deregistered')).toMatchObject({
      data: { reason: 'removed_from_api_server' },
    });
    expect(registry.unmirror('a')).toBe(false);
  });
});
