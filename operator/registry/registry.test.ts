import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../../common/errors.js';
import { serviceSpecSchema } from '../../common/resources.js';
import type { ServiceSpec } from '../../common/resources.js';
import { registerRequestSchema } from '../../common/wire.js';
import type { DiscoverQuery, RegisterInput } from '../../common/wire.js';
import { codeOf } from '../../test/helpers/errors.js';
import { testRegistry } from '../../test/helpers/registry.js';
import type { RegistryOptions } from './registry.js';

function setup(overrides: Partial<RegistryOptions> = {}) {
  const { clock, events, registry } = testRegistry(overrides);
  const register = (input: Partial<RegisterInput> & { host: string }) =>
    registry.register(
      registerRequestSchema.parse({ service: 'api', namespace: 'ns', port: 80, ...input }),
    );
  const discover = (query: DiscoverQuery = {}, name = 'api') =>
    JSON.parse(registry.discover('ns', name, query).toString()) as {
      instance?: { id: string; host: string; version?: string };
      instances?: { id: string; host: string }[];
    };
  const types = () => events.map((e) => e.type);
  return { clock, events, registry, register, discover, types };
}

const spec = (s: unknown): ServiceSpec => serviceSpecSchema.parse(s);

describe('registration', () => {
  it('registers, renews the same endpoint under the same id, and deregisters', () => {
    const { registry, register, types } = setup();
    const first = register({ host: '10.0.0.1' });
    expect(first.created).toBe(true);
    const again = register({ host: '10.0.0.1' });
    expect(again.created).toBe(false);
    expect(again.instance.id).toBe(first.instance.id);
    expect(registry.stats().instances.total).toBe(1);
    registry.deregister(first.instance.id);
    expect(registry.stats().instances.total).toBe(0);
    expect(types()).toEqual([
      'service_updated',
      'service_registered',
      'service_registered',
      'service_deregistered',
      'service_deleted',
    ]);
  });

  it.each([
    [
      'undeclared service with undeclared registration off',
      { allowUndeclared: false },
      undefined,
      'SERVICE_NOT_DECLARED',
    ],
    [
      'service blocked for registration',
      {},
      { blocked: { registration: true, reason: 'retired' } },
      'SERVICE_BLOCKED',
    ],
  ] as const)('refuses %s', (_name, opts, declared, code) => {
    const { registry, register } = setup(opts);
    if (declared) registry.upsertService('ns', 'api', spec(declared));
    expect(codeOf(() => register({ host: '10.0.0.1' }))).toBe(code);
    expect(registry.stats().instances.total).toBe(0);
  });

  it('refuses an id that belongs to another service with a conflict', () => {
    const { registry, register } = setup();
    register({ host: '10.0.0.1', id: 'pod-1' });
    expect(codeOf(() => register({ host: '10.0.0.2', id: 'pod-1', service: 'other' }))).toBe(
      'INSTANCE_CONFLICT',
    );
    expect(registry.getInstance('pod-1')?.service.name).toBe('api');
  });

  it('heartbeat of an unknown instance is INSTANCE_NOT_FOUND so the caller re-registers', () => {
    const { registry } = setup();
    expect(codeOf(() => registry.heartbeat('nope', {}))).toBe('INSTANCE_NOT_FOUND');
    expect(codeOf(() => registry.deregister('nope'))).toBe('INSTANCE_NOT_FOUND');
  });

  it('a heartbeat nobody takes events of emits none; its health changes still do (issue 17)', () => {
    let wanted = false;
    const { registry, register, types } = setup({ heartbeatsWanted: () => wanted });
    const { instance } = register({ host: '10.0.0.1' });
    const before = types().length;
    const answer = registry.heartbeat(instance.id, { status: 'passing' });
    expect(answer.lastHeartbeat).toBeDefined(); // answered as before
    expect(types().slice(before)).toEqual([]);
    registry.heartbeat(instance.id, { status: 'critical' });
    expect(types().slice(before)).toEqual(['service_unhealthy']);
    wanted = true;
    registry.heartbeat(instance.id, { status: 'critical' });
    expect(types().slice(before)).toEqual(['service_unhealthy', 'service_heartbeat']);
  });

  it("a heartbeat adds no fields to a registration's record (one shape, no bytes per record)", () => {
    const { registry, register } = setup();
    const { instance } = register({ host: '10.0.0.1' });
    const records = Reflect.get(registry, 'instances') as Map<string, object>;
    const keys = Object.keys(records.get(instance.id)!);
    registry.heartbeat(instance.id, { status: 'passing' });
    registry.heartbeat(instance.id, { status: 'warning', output: 'slow' });
    expect(Object.keys(records.get(instance.id)!)).toEqual(keys);
  });

  it('names the owner of an instance without building it', () => {
    const { registry, register } = setup();
    const { instance } = register({ host: '10.0.0.1', metadata: { pod: 'api-0' } });
    expect(registry.instanceOwner(instance.id)).toEqual({
      id: instance.id,
      service: { namespace: 'ns', name: 'api' },
      pod: 'api-0',
    });
    expect(registry.instanceOwner('nope')).toBeUndefined();
  });

  it('a re-registration starts healthy again, and says so', () => {
    const { registry, register, events } = setup();
    const { instance } = register({ host: '10.0.0.1' });
    registry.heartbeat(instance.id, { status: 'critical', output: 'crashed' });
    expect(register({ host: '10.0.0.1' }).instance.health.status).toBe('passing');
    expect(events.at(-1)).toMatchObject({
      type: 'service_healthy',
      data: { status: 'passing', previous: 'critical' },
    });
  });

  it('takes the TTL from the request, else the service, else the default', () => {
    const { registry, register } = setup();
    registry.upsertService('ns', 'api', spec({ heartbeat: { ttlSeconds: 12 } }));
    expect(register({ host: 'a' }).instance.lease?.ttlSeconds).toBe(12);
    expect(register({ host: 'b', ttlSeconds: 5 }).instance.lease?.ttlSeconds).toBe(5);
    expect(register({ host: 'c', service: 'other' }).instance.lease?.ttlSeconds).toBe(30);
    registry.upsertService('ns', 'grace', spec({ heartbeat: { removeAfterSeconds: 5 } }));
    expect(register({ host: 'd', service: 'grace' }).instance.lease?.ttlSeconds).toBe(30);
  });
});

describe('leases', () => {
  it('goes critical after the TTL, leaves discovery, and is removed after the grace period', () => {
    const { clock, registry, register, discover, types } = setup();
    const { instance } = register({ host: '10.0.0.1' });
    clock.advance(30_000);
    registry.sweep();
    expect(registry.getInstance(instance.id)?.health.status).toBe('passing'); // exactly at TTL: still valid
    clock.advance(1);
    registry.sweep();
    expect(registry.getInstance(instance.id)?.health).toMatchObject({
      status: 'critical',
      reason: 'lease-expired',
    });
    expect(codeOf(() => discover())).toBe('NO_HEALTHY_INSTANCE');
    clock.advance(60_000);
    expect(registry.sweep().removed).toBe(1);
    expect(registry.getInstance(instance.id)).toBeUndefined();
    expect(registry.counters.evictions).toBe(1);
    expect(types()).toContain('service_unhealthy');
    expect(types()).toContain('service_deregistered');
  });

  it('a heartbeat revives a lapsed instance and brings it back to discovery', () => {
    const { clock, registry, register, discover, events } = setup();
    const { instance } = register({ host: '10.0.0.1' });
    clock.advance(31_000);
    registry.sweep();
    registry.heartbeat(instance.id, {});
    expect(discover().instance?.id).toBe(instance.id);
    expect(events.at(-2)?.type).toBe('service_healthy');
  });

  it('reports check status from heartbeats: warning stays discoverable, critical does not', () => {
    const { registry, register, discover } = setup();
    const { instance } = register({ host: '10.0.0.1' });
    registry.heartbeat(instance.id, { status: 'warning', output: 'disk 91%' });
    expect(discover().instance?.id).toBe(instance.id);
    registry.heartbeat(instance.id, { status: 'critical', output: 'db down' });
    expect(registry.getInstance(instance.id)?.health).toMatchObject({
      status: 'critical',
      output: 'db down',
    });
    expect(codeOf(() => discover())).toBe('NO_HEALTHY_INSTANCE');
  });

  it('the mass-expiry guard stops removals while more than the threshold has lapsed', () => {
    const { clock, registry, register } = setup({
      massExpiryThreshold: 0.5,
      massExpiryMinInstances: 4,
    });
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'].map((h) => register({ host: h }).instance.id);
    clock.advance(20_000);
    registry.heartbeat(ids[0]!, {});
    registry.heartbeat(ids[1]!, {});
    // 4 of 6 lapse together (67% > 50%): a partition, not four crashes.
    clock.advance(100_000);
    registry.heartbeat(ids[0]!, {});
    registry.heartbeat(ids[1]!, {});
    const held = registry.sweep();
    expect(held).toMatchObject({ lapsed: 4, leased: 6, removed: 0, guardActive: true });
    expect(registry.massExpiryGuardActive).toBe(true);
    expect(registry.stats().instances).toMatchObject({ total: 6, critical: 4 });
    // Two come back: 2 of 6 lapsed (33%) — the guard releases and the others go.
    registry.heartbeat(ids[2]!, {});
    registry.heartbeat(ids[3]!, {});
    const released = registry.sweep();
    expect(released).toMatchObject({ guardActive: false, removed: 2 });
    expect(registry.stats().instances.total).toBe(4);
  });

  it('the guard does not engage below its minimum population', () => {
    const { clock, registry, register } = setup({ massExpiryMinInstances: 10 });
    register({ host: 'a' });
    register({ host: 'b' });
    clock.advance(200_000);
    expect(registry.sweep()).toMatchObject({ guardActive: false, removed: 2 });
  });
});

describe('services', () => {
  it('a removed declaration keeps registered instances as undeclared, or drops them when undeclared is off', () => {
    const kept = setup();
    kept.registry.upsertService('ns', 'api', spec({}));
    kept.register({ host: 'a' });
    kept.registry.removeService('ns', 'api');
    expect(kept.registry.listServices()).toMatchObject([
      { name: 'api', declared: false, instances: { total: 1 } },
    ]);

    const dropped = setup({ allowUndeclared: false });
    dropped.registry.upsertService('ns', 'api', spec({}));
    dropped.register({ host: 'a' });
    dropped.registry.removeService('ns', 'api');
    expect(dropped.registry.listServices()).toEqual([]);
    expect(dropped.types()).toContain('service_deleted');
  });

  it('announces config changes and deletions', () => {
    const { registry, events } = setup();
    registry.upsertService('ns', 'api', spec({ config: { A: '1' } }));
    registry.upsertService('ns', 'api', spec({ config: { A: '1' } }));
    registry.upsertService('ns', 'api', spec({ config: { A: '2' } }));
    registry.upsertService('ns', 'api', spec({}));
    const config = events.filter((e) => e.type.startsWith('config_'));
    expect(
      config.map((e) => [e.type, e.type === 'config_changed' ? e.data.config : undefined]),
    ).toEqual([
      ['config_changed', { A: '1' }],
      ['config_changed', { A: '2' }],
      ['config_deleted', undefined],
    ]);
  });

  it('blocks discovery with the reason', () => {
    const { registry, register, discover } = setup();
    register({ host: 'a' });
    registry.upsertService(
      'ns',
      'api',
      spec({ blocked: { discovery: true, reason: 'incident 42' } }),
    );
    expect(() => discover()).toThrow(/incident 42/);
  });
});

describe('discovery', () => {
  const fleet = [
    { host: 'a1', zone: 'a', datacenter: 'dc1', version: 'v1', metadata: { tier: 'gold' } },
    { host: 'a2', zone: 'a', datacenter: 'dc1', version: 'v2' },
    { host: 'b1', zone: 'b', datacenter: 'dc1', version: 'v1' },
    { host: 'c1', zone: 'c', datacenter: 'dc2', version: 'v1', metadata: { tier: 'gold' } },
  ];

  it.each([
    ['version', { version: 'v2' }, ['a2']],
    ['zone', { zone: 'a' }, ['a1', 'a2']],
    ['datacenter', { datacenter: 'dc2' }, ['c1']],
    ['metadata', { 'meta.tier': 'gold' }, ['a1', 'c1']],
    ['zone and metadata', { zone: 'a', 'meta.tier': 'gold' }, ['a1']],
    ['nothing', {}, ['a1', 'a2', 'b1', 'c1']],
  ] as [string, DiscoverQuery, string[]][])('filters by %s', (_name, query, hosts) => {
    const { register, discover } = setup();
    for (const f of fleet) register(f);
    const all = discover({ ...query, all: true })
      .instances!.map((i) => i.host)
      .sort();
    expect(all).toEqual(hosts);
    const picked = new Set(Array.from({ length: 20 }, () => discover(query).instance!.host));
    expect([...picked].sort()).toEqual(hosts);
  });

  it('answers NO_HEALTHY_INSTANCE for a filter nothing matches, and SERVICE_NOT_FOUND for an unknown service', () => {
    const { register, discover } = setup();
    register({ host: 'a' });
    expect(codeOf(() => discover({ zone: 'nowhere' }))).toBe('NO_HEALTHY_INSTANCE');
    expect(codeOf(() => discover({}, 'missing'))).toBe('SERVICE_NOT_FOUND');
  });

  it('rejects unknown query parameters and hash strategies without a key', () => {
    const { register, discover } = setup();
    register({ host: 'a' });
    expect(codeOf(() => discover({ verison: 'v1' } as DiscoverQuery))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => discover({ strategy: 'consistent-hash' }))).toBe('HASH_KEY_REQUIRED');
    expect(discover({ strategy: 'consistent-hash', key: 'user-1' }).instance?.host).toBe('a');
  });

  it('splits by version weights exactly (smooth weighted round robin over versions)', () => {
    const { registry, register, discover } = setup();
    registry.upsertService(
      'ns',
      'api',
      spec({
        versions: [
          { name: 'v1', weight: 90 },
          { name: 'v2', weight: 10 },
        ],
      }),
    );
    for (const f of fleet) register(f);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const v = discover().instance!.version!;
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(counts).toEqual({ v1: 900, v2: 100 });
    // An explicit version bypasses the split.
    expect(discover({ version: 'v2' }).instance?.host).toBe('a2');
  });

  it('sends all traffic to the versions that have healthy instances', () => {
    const { registry, register, discover } = setup();
    registry.upsertService(
      'ns',
      'api',
      spec({
        versions: [
          { name: 'v1', weight: 50 },
          { name: 'v2', weight: 50 },
        ],
      }),
    );
    const { instance } = register({ host: 'a2', version: 'v2' });
    register({ host: 'a1', version: 'v1' });
    registry.heartbeat(instance.id, { status: 'critical' });
    const hosts = new Set(Array.from({ length: 10 }, () => discover().instance!.host));
    expect([...hosts]).toEqual(['a1']);
  });

  it('keeps answering from the cache until membership changes', () => {
    const { registry, register } = setup();
    register({ host: 'a' });
    const first = registry.discover('ns', 'api', { all: true });
    registry.heartbeat(registry.instancesOf('ns', 'api')[0]!.id, {});
    expect(registry.discover('ns', 'api', { all: true })).toBe(first); // same buffer: not rebuilt
    register({ host: 'b' });
    expect(registry.discover('ns', 'api', { all: true })).not.toBe(first);
  });

  it('gives no share of the split to a version whose instances are all drained', () => {
    const { registry, register, discover } = setup();
    registry.upsertService(
      'ns',
      'api',
      spec({
        versions: [
          { name: 'v1', weight: 90 },
          { name: 'v2', weight: 10 },
        ],
      }),
    );
    register({ host: 'a1', version: 'v1' });
    register({ host: 'a2', version: 'v2', weight: 0 });
    const hosts = new Set(Array.from({ length: 50 }, () => discover().instance!.host));
    expect([...hosts]).toEqual(['a1']);
  });

  it('keeps a key on one instance across a version split (sticky sessions)', () => {
    const { registry, register, discover } = setup();
    registry.upsertService(
      'ns',
      'api',
      spec({
        versions: [
          { name: 'v1', weight: 50 },
          { name: 'v2', weight: 50 },
        ],
        loadBalancing: { strategy: 'consistent-hash', hashKey: 'header:x-user' },
      }),
    );
    for (const f of fleet) register(f);
    const versions = new Set<string>();
    for (let user = 0; user < 40; user++) {
      const picks = new Set(
        Array.from({ length: 10 }, () => discover({ key: `user-${user}` }).instance!.id),
      );
      expect(picks.size).toBe(1);
      versions.add(discover({ key: `user-${user}` }).instance!.version!);
    }
    expect([...versions].sort()).toEqual(['v1', 'v2']); // the keys still spread over both versions
  });

  it('takes the hash key from the hashKey source when no key is given', () => {
    const { registry, register } = setup();
    registry.upsertService(
      'ns',
      'api',
      spec({ loadBalancing: { strategy: 'rendezvous-hash', hashKey: 'header:x-user' } }),
    );
    for (const f of fleet) register(f);
    const pick = (user: string) =>
      JSON.parse(
        registry
          .discover('ns', 'api', {}, (source) => (source === 'header:x-user' ? user : undefined))
          .toString(),
      ).instance.id as string;
    expect(pick('alice')).toBe(pick('alice'));
    expect(() => registry.discover('ns', 'api', {}, () => undefined)).toThrow(/header:x-user/);
  });

  it('answers all=true with nothing healthy as NO_HEALTHY_INSTANCE', () => {
    const { registry, register, discover } = setup();
    const { instance } = register({ host: 'a' });
    registry.heartbeat(instance.id, { status: 'critical' });
    expect(codeOf(() => discover({ all: true }))).toBe('NO_HEALTHY_INSTANCE');
  });

  it('uses least-connections with loads reported in heartbeats', () => {
    const { registry, register, discover } = setup();
    const ids = ['a', 'b', 'c'].map((h) => register({ host: h }).instance.id);
    registry.heartbeat(ids[0]!, { connections: 10 });
    registry.heartbeat(ids[1]!, { connections: 2 });
    registry.heartbeat(ids[2]!, { connections: 7 });
    expect(discover({ strategy: 'least-connections' }).instance?.host).toBe('b');
  });

  it('prefers the caller locality and fails over (locality-aware)', () => {
    const { registry, register, discover } = setup();
    const ids = fleet.map((f) => register(f).instance.id);
    const near = { strategy: 'locality-aware', localZone: 'b', localDatacenter: 'dc1' } as const;
    expect(discover(near).instance?.host).toBe('b1');
    registry.heartbeat(ids[2]!, { status: 'critical' });
    expect(['a1', 'a2']).toContain(discover(near).instance?.host);
  });
});

describe('a sidecar on a pod instance', () => {
  const pod = (id: string, ready = true) => ({
    id,
    host: '10.1.0.1',
    port: 8080,
    weight: 1,
    metadata: { pod: id },
    ready,
  });
  function withPod() {
    const s = setup({ allowUndeclared: false });
    s.registry.upsertService('ns', 'api', spec({ heartbeat: { ttlSeconds: 10 } }));
    s.registry.syncPodInstances('ns', 'api', [pod('p1')]);
    return s;
  }

  it('adds a lease and check results on top of pod readiness', () => {
    const { registry, clock, discover } = withPod();
    const { instance, created } = registry.attachSidecar('p1', { status: 'passing' });
    expect(created).toBe(true);
    expect(instance).toMatchObject({ source: 'kubernetes', lease: { ttlSeconds: 10 } });
    registry.heartbeat('p1', { status: 'critical', output: 'db down' });
    expect(() => discover()).toThrow(MaxineError);
    registry.heartbeat('p1', { status: 'passing' });
    expect(discover().instance?.id).toBe('p1');
    // A silent sidecar: critical after the TTL, but never removed while the pod exists.
    clock.advance(10_001);
    registry.sweep();
    expect(registry.getInstance('p1')?.health).toMatchObject({
      status: 'critical',
      reason: 'lease-expired',
    });
    clock.advance(3_600_000);
    registry.sweep();
    expect(registry.getInstance('p1')).toBeDefined();
    // The pod goes: the instance goes at once.
    registry.syncPodInstances('ns', 'api', []);
    expect(registry.getInstance('p1')).toBeUndefined();
  });

  it.each([
    ['a Ready pod without sidecar', { ready: true, noSidecar: true }, 'critical', 'no-sidecar'],
    [
      'a pod neither Ready nor injected',
      { ready: false, noSidecar: true },
      'critical',
      'no-sidecar',
    ],
    ['a Ready pod with its sidecar', { ready: true, noSidecar: false }, 'passing', 'check'],
  ])('%s: %s (%s)', (_what, state, status, reason) => {
    const { registry, discover } = withPod();
    registry.syncPodInstances('ns', 'api', [
      { ...pod('p1', state.ready), noSidecar: state.noSidecar },
    ]);
    expect(registry.getInstance('p1')?.health).toMatchObject({ status, reason });
    if (status === 'critical') expect(() => discover()).toThrow(MaxineError);
    else expect(discover().instance?.id).toBe('p1');
  });

  it('a pod whose sidecar appears (recreated with injection) is no longer no-sidecar', () => {
    const { registry, types } = withPod();
    registry.syncPodInstances('ns', 'api', [{ ...pod('p1'), noSidecar: true }]);
    expect(types()).toContain('service_unhealthy');
    registry.syncPodInstances('ns', 'api', [{ ...pod('p1'), noSidecar: false }]);
    expect(registry.getInstance('p1')?.health).toMatchObject({
      status: 'passing',
      reason: 'check',
    });
    expect(types()).toContain('service_healthy');
  });

  it('a pod that is not Ready stays out of discovery whatever its sidecar says', () => {
    const { registry, discover } = withPod();
    registry.syncPodInstances('ns', 'api', [pod('p1', false)]);
    registry.attachSidecar('p1', { status: 'passing' });
    expect(registry.getInstance('p1')?.health).toMatchObject({
      status: 'critical',
      reason: 'not-ready',
    });
    expect(() => discover()).toThrow(MaxineError);
  });

  it('deregistering takes the pod out of discovery at once and keeps the record until the pod goes', () => {
    const { registry, types } = withPod();
    registry.attachSidecar('p1', {});
    registry.deregister('p1');
    expect(registry.getInstance('p1')?.health.status).toBe('critical');
    expect(types()).toContain('service_unhealthy');
    // The sidecar restarts in the same pod: healthy again.
    expect(registry.attachSidecar('p1', {}).instance.health.status).toBe('passing');
  });

  it('refuses a pod the registry does not know yet, and a blocked service', () => {
    const { registry } = withPod();
    expect(codeOf(() => registry.attachSidecar('nope', {}))).toBe('NOT_READY');
    registry.upsertService(
      'ns',
      'api',
      spec({ blocked: { registration: true, reason: 'frozen' } }),
    );
    expect(codeOf(() => registry.attachSidecar('p1', {}))).toBe('SERVICE_BLOCKED');
  });

  it('a heartbeat to a pod instance without a sidecar lease is a 404, so the sidecar registers again', () => {
    // As after an operator restart: the pod is known again, its sidecar is not.
    const { registry, clock } = withPod();
    expect(codeOf(() => registry.heartbeat('p1', { status: 'passing' }))).toBe(
      'INSTANCE_NOT_FOUND',
    );
    registry.attachSidecar('p1', {});
    registry.heartbeat('p1', {});
    // The lease works again: silence makes it critical.
    clock.advance(10_001);
    registry.sweep();
    expect(registry.getInstance('p1')?.health.reason).toBe('lease-expired');
    registry.deregister('p1');
    expect(codeOf(() => registry.heartbeat('p1', {}))).toBe('INSTANCE_NOT_FOUND');
  });

  it.each([
    ['zone', { zone: 'b' }],
    ['metadata', { metadata: { pod: 'p1', node: 'n2' } }],
    ['named ports', { ports: { http: 8080, admin: 9090 } }],
  ])('a pod whose %s changes is announced too', (_what, change) => {
    const { registry, events } = withPod();
    events.length = 0;
    registry.syncPodInstances('ns', 'api', [{ ...pod('p1'), ...change }]);
    expect(events.map((e) => e.type)).toEqual(['service_registered']);
    events.length = 0;
    registry.syncPodInstances('ns', 'api', [{ ...pod('p1'), ...change }]);
    expect(events).toEqual([]);
  });

  it('a pod that moves is announced, so local copies follow', () => {
    const { registry, events } = withPod();
    events.length = 0;
    registry.syncPodInstances('ns', 'api', [{ ...pod('p1'), host: '10.1.0.9' }]);
    expect(events).toEqual([
      expect.objectContaining({
        type: 'service_registered',
        instance: expect.objectContaining({ host: '10.1.0.9' }),
      }),
    ]);
  });

  it('a service_updated event carries the spec', () => {
    const { registry, events } = setup();
    registry.upsertService('ns', 'web', spec({ loadBalancing: { strategy: 'random' } }));
    const last = events.at(-1);
    expect(last?.type === 'service_updated' && last.data.declared && last.data.spec).toMatchObject({
      loadBalancing: { strategy: 'random' },
    });
  });
});

describe('compact instance records (docs/decisions/0027)', () => {
  it('records without metadata share one frozen empty map; records with metadata keep theirs', () => {
    const { registry, register } = setup();
    const a = register({ host: '10.0.0.1' }).instance;
    const b = register({ host: '10.0.0.2', metadata: {} }).instance;
    const c = register({ host: '10.0.0.3', metadata: { rack: 'r1' } }).instance;
    const metadataOf = (id: string) => registry.persisted(id)?.metadata;
    expect(metadataOf(a.id)).toBe(metadataOf(b.id));
    expect(Object.isFrozen(metadataOf(a.id))).toBe(true);
    expect(metadataOf(c.id)).toEqual({ rack: 'r1' });
    expect(metadataOf(c.id)).not.toBe(metadataOf(a.id));
    // What callers see is unchanged.
    expect(registry.getInstance(a.id)?.metadata).toEqual({});
    expect(registry.getInstance(c.id)?.metadata).toEqual({ rack: 'r1' });
  });

  it.each([['passing'], ['warning'], ['critical']] as const)(
    'a %s check without output is one object shared by every record',
    (status) => {
      const { registry, register } = setup();
      const ids = ['10.0.0.1', '10.0.0.2'].map((host) => register({ host }).instance.id);
      for (const id of ids) registry.heartbeat(id, { status });
      const [first, second] = ids.map((id) => registry.persisted(id)?.check);
      expect(first).toEqual({ status });
      expect(first).toBe(second);
    },
  );

  it('a check with output is its own object, and a later bare check replaces it', () => {
    const { registry, register } = setup();
    const id = register({ host: '10.0.0.1' }).instance.id;
    registry.heartbeat(id, { status: 'warning', output: 'disk 91%' });
    expect(registry.persisted(id)?.check).toEqual({ status: 'warning', output: 'disk 91%' });
    expect(registry.getInstance(id)?.health).toMatchObject({
      status: 'warning',
      output: 'disk 91%',
    });
    registry.heartbeat(id, { status: 'passing' });
    expect(registry.persisted(id)?.check).toEqual({ status: 'passing' });
    expect(registry.getInstance(id)?.health.output).toBeUndefined();
  });
});
