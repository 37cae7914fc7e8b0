/** Registry.persisted / restore: what a standalone store keeps, and how it comes back. */
import { describe, expect, it } from '@jest/globals';
import { testRegistry } from '../../test/helpers/registry.js';
import type { PersistedInstance } from './registry.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function kept(id: string, extra: Partial<PersistedInstance> = {}): PersistedInstance {
  return {
    id,
    namespace: 'shop',
    service: 'web',
    host: `10.0.0.${id.length}`,
    port: 8080,
    weight: 1,
    metadata: { zone: 'a' },
    registeredAt: T0 - 60_000,
    lastHeartbeat: T0 - 1000,
    ttlMs: 30_000,
    check: { status: 'passing' },
    ...extra,
  };
}

describe('Registry.persisted', () => {
  it('keeps a registration (lease, reported health, owner) and not a pod or derived state', () => {
    const { registry, clock } = testRegistry();
    const { instance } = registry.register(
      { namespace: 'shop', service: 'web', host: 'h', port: 1, weight: 2, metadata: { a: 'b' } },
      'User:alice',
    );
    clock.advance(5000);
    registry.heartbeat(instance.id, { status: 'warning', output: 'slow' });
    expect(registry.persisted(instance.id)).toEqual({
      id: instance.id,
      namespace: 'shop',
      service: 'web',
      host: 'h',
      port: 1,
      weight: 2,
      metadata: { a: 'b' },
      owner: 'User:alice',
      registeredAt: T0,
      lastHeartbeat: T0 + 5000,
      ttlMs: 30_000,
      check: { status: 'warning', output: 'slow' },
    });
    expect([...registry.persistedAll()].map((p) => p.id)).toEqual([instance.id]);
    expect(registry.persisted('nope')).toBeUndefined();
  });
});

describe('Registry.restore', () => {
  it.each<[string, PersistedInstance, { status: string; reason: string }, boolean]>([
    ['a live lease', kept('live'), { status: 'passing', reason: 'check' }, true],
    [
      'a reported warning',
      kept('warn', { check: { status: 'warning', output: 'slow disk' } }),
      { status: 'warning', reason: 'check' },
      true,
    ],
    [
      'a lease that lapsed while down (within the grace)',
      kept('lapsed', { lastHeartbeat: T0 - 40_000 }),
      { status: 'critical', reason: 'lease-expired' },
      true,
    ],
    [
      'a lease whose grace passed while down',
      kept('gone', { lastHeartbeat: T0 - 120_000 }),
      { status: 'critical', reason: 'lease-expired' },
      false,
    ],
  ])(
    'restores %s with its id and renewal time; the first sweep decides',
    (_name, item, health, stays) => {
      const { registry, events } = testRegistry();
      expect(registry.restore([item])).toEqual({ restored: 1, refused: [] });
      const instance = registry.getInstance(item.id);
      expect(instance?.lastHeartbeat).toBe(new Date(item.lastHeartbeat).toISOString());
      expect(instance?.lease?.expiresAt).toBe(
        new Date(item.lastHeartbeat + item.ttlMs).toISOString(),
      );
      expect(events.map((e) => e.type)).toEqual(['service_updated', 'service_registered']);
      expect(events[1]).toMatchObject({ data: { restored: true } });
      registry.sweep();
      if (stays) expect(registry.getInstance(item.id)?.health).toMatchObject(health);
      else expect(registry.getInstance(item.id)).toBeUndefined();
    },
  );

  it('lets the mass-expiry guard hold removals when most restored leases lapsed', () => {
    const { registry } = testRegistry();
    const items = ['a', 'bb', 'ccc', 'dddd', 'eeeee'].map((id) =>
      kept(id, { lastHeartbeat: T0 - 600_000 }),
    );
    registry.restore(items);
    expect(registry.sweep()).toMatchObject({ lapsed: 5, removed: 0, guardActive: true });
    expect(registry.stats().instances).toMatchObject({ total: 5, critical: 5 });
  });

  it('counts restored registrations against the per-principal limit', () => {
    const { registry } = testRegistry({ limits: { instancesPerPrincipal: 1 } });
    registry.restore([kept('a', { owner: 'User:bob' })]);
    expect(() =>
      registry.register(
        { namespace: 'shop', service: 'web', host: 'x', port: 2, weight: 1 },
        'User:bob',
      ),
    ).toThrow(expect.objectContaining({ code: 'LIMIT_EXCEEDED' }));
  });

  it.each<[string, Parameters<typeof testRegistry>[0], PersistedInstance[], string[]]>([
    [
      'an undeclared service when that is off',
      { allowUndeclared: false },
      [kept('a')],
      ['SERVICE_NOT_DECLARED'],
    ],
    [
      'past the instance limit',
      { limits: { instances: 1 } },
      [kept('a'), kept('bb')],
      ['LIMIT_EXCEEDED'],
    ],
    ['a duplicate id', {}, [kept('a'), kept('a')], ['INSTANCE_CONFLICT']],
  ])('leaves out %s, and names it', (_name, options, items, codes) => {
    const { registry } = testRegistry(options);
    const { refused } = registry.restore(items);
    expect(refused.map((r) => r.code)).toEqual(codes);
  });

  it('restores into a declared service without re-declaring it', () => {
    const { registry, events } = testRegistry({ allowUndeclared: false });
    registry.upsertService('shop', 'web', {});
    events.length = 0;
    expect(registry.restore([kept('a')]).restored).toBe(1);
    expect(events.map((e) => e.type)).toEqual(['service_registered']);
    expect(registry.getService('shop', 'web')?.declared).toBe(true);
  });
});

describe('Registry.applyStored (a record another operator sharing the store wrote)', () => {
  it.each<[string, Partial<PersistedInstance>, { lastHeartbeat: number; status: string }]>([
    [
      'a newer renewal and report are taken',
      { lastHeartbeat: T0 + 5000, check: { status: 'warning' } },
      { lastHeartbeat: T0 + 5000, status: 'warning' },
    ],
    [
      'an older renewal keeps the one taken here',
      { lastHeartbeat: T0 - 5000, check: { status: 'critical' } },
      { lastHeartbeat: T0, status: 'passing' },
    ],
  ])('%s', (_, change, want) => {
    const { registry } = testRegistry();
    const { instance } = registry.register({
      namespace: 'shop',
      service: 'web',
      host: 'h',
      port: 1,
      weight: 1,
    });
    const p = { ...registry.persisted(instance.id)!, ...change, metadata: { v: '2' } };
    expect(registry.applyStored(p)).toBe(true);
    const after = registry.persisted(instance.id)!;
    expect(after.lastHeartbeat).toBe(want.lastHeartbeat);
    expect(after.check.status).toBe(want.status);
    expect(after.metadata).toEqual({ v: '2' });
  });

  it('creates one it did not hold, lapsed when its lease is over, and refuses another service', () => {
    const { registry, clock } = testRegistry();
    expect(registry.applyStored(kept('new', { lastHeartbeat: T0 - 40_000 }))).toBe(true);
    // Created as a restore is: the first sweep decides about its lease.
    expect(registry.getInstance('new')?.health.status).toBe('passing');
    expect(registry.applyStored(kept('new', { lastHeartbeat: T0 - 35_000 }))).toBe(true);
    expect(registry.getInstance('new')?.health).toEqual({
      status: 'critical',
      reason: 'lease-expired',
    });
    clock.advance(1);
    expect(registry.applyStored(kept('new', { service: 'api' }))).toBe(false);
    expect(registry.persisted('new')?.service).toBe('web');
  });
});
