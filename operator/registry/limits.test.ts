import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../../common/errors.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { registerRequestSchema } from '../../common/wire.js';
import type { RegisterInput } from '../../common/wire.js';
import { testRegistry } from '../../test/helpers/registry.js';
import { DEFAULT_LIMITS, LIMIT_FLAGS } from './limits.js';
import type { LimitName, RegistryLimits } from './limits.js';
import type { Registry } from './registry.js';

/** Every limit roomy, so each case tightens only the one it is about. */
const ROOMY: RegistryLimits = {
  instances: 1000,
  instancesPerService: 1000,
  instancesPerPrincipal: 1000,
  undeclaredServices: 1000,
  undeclaredServicesPerPrincipal: 1000,
  metadataBytes: 100_000,
  metadataKeys: 1000,
  ports: 1000,
};

function setup(limits: Partial<RegistryLimits>) {
  const { events, registry } = testRegistry({ limits: { ...ROOMY, ...limits } });
  const register = (input: Reg) =>
    registry.register(
      registerRequestSchema.parse({ namespace: 'ns', port: 80, ...input.body }),
      input.by,
    );
  return { registry, events, register };
}

interface Reg {
  body: Partial<RegisterInput> & { service: string; host: string };
  by?: string;
}
const reg = (service: string, host: string, by?: string, extra: Partial<RegisterInput> = {}) => ({
  body: { service, host, ...extra },
  ...(by !== undefined && { by }),
});

/** Everything a client can see of the registry. */
function stateOf(registry: Registry): string {
  return JSON.stringify(
    registry.listServices().map((s) => registry.getService(s.namespace, s.name)),
  );
}

function refusalOf(fn: () => unknown): MaxineError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MaxineError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('registry limits', () => {
  const big = { k: 'x'.repeat(40) }; // {"k":"xxx…"} = 48 bytes
  it.each<[string, Partial<RegistryLimits>, Reg[], Reg, string, LimitName, Record<string, number>]>(
    [
      [
        'instances in total',
        { instances: 2 },
        [reg('api', 'h1', 'alice'), reg('web', 'h2', 'bob')],
        reg('db', 'h3', 'carol'),
        'LIMIT_EXCEEDED',
        'instances',
        { max: 2, current: 2 },
      ],
      [
        'instances per service',
        { instancesPerService: 2 },
        [reg('api', 'h1', 'alice'), reg('api', 'h2', 'bob'), reg('web', 'h3', 'carol')],
        reg('api', 'h4', 'carol'),
        'LIMIT_EXCEEDED',
        'instancesPerService',
        { max: 2, current: 2 },
      ],
      [
        'instances per principal',
        { instancesPerPrincipal: 2 },
        [reg('api', 'h1', 'alice'), reg('web', 'h2', 'alice'), reg('api', 'h3', 'bob')],
        reg('db', 'h4', 'alice'),
        'LIMIT_EXCEEDED',
        'instancesPerPrincipal',
        { max: 2, current: 2 },
      ],
      [
        'undeclared services in total',
        { undeclaredServices: 2 },
        [reg('api', 'h1', 'alice'), reg('web', 'h2', 'bob')],
        reg('db', 'h3', 'carol'),
        'LIMIT_EXCEEDED',
        'undeclaredServices',
        { max: 2, current: 2 },
      ],
      [
        'undeclared services per principal',
        { undeclaredServicesPerPrincipal: 1 },
        [reg('api', 'h1', 'alice'), reg('web', 'h2', 'bob'), reg('web', 'h3', 'alice')],
        reg('db', 'h4', 'alice'),
        'LIMIT_EXCEEDED',
        'undeclaredServicesPerPrincipal',
        { max: 1, current: 1 },
      ],
      [
        'metadata bytes',
        { metadataBytes: 47 },
        [reg('api', 'h1', 'alice', { metadata: { k: 'x'.repeat(39) } })],
        reg('api', 'h2', 'alice', { metadata: big }),
        'METADATA_TOO_LARGE',
        'metadataBytes',
        { max: 47, actual: 48 },
      ],
      [
        'metadata keys',
        { metadataKeys: 2 },
        [reg('api', 'h1', 'alice', { metadata: { a: '1', b: '2' } })],
        reg('api', 'h2', 'alice', { metadata: { a: '1', b: '2', c: '3' } }),
        'METADATA_TOO_LARGE',
        'metadataKeys',
        { max: 2, actual: 3 },
      ],
      [
        'ports',
        { ports: 1 },
        [reg('api', 'h1', 'alice', { ports: { http: 80 } })],
        reg('api', 'h2', 'alice', { ports: { http: 80, admin: 9090 } }),
        'TOO_MANY_PORTS',
        'ports',
        { max: 1, actual: 2 },
      ],
      [
        'metadata bytes on a renewal',
        { metadataBytes: 47 },
        [reg('api', 'h1', 'alice')],
        reg('api', 'h1', 'alice', { metadata: big }),
        'METADATA_TOO_LARGE',
        'metadataBytes',
        { max: 47, actual: 48 },
      ],
    ],
  )(
    '%s: refused with the catalog code, the limit named, and nothing changed',
    (_name, limits, before, refused, code, limit, figures) => {
      const { registry, events, register } = setup(limits);
      for (const r of before) register(r);
      const state = stateOf(registry);
      const emitted = events.length;
      const err = refusalOf(() => register(refused));
      expect(err.code).toBe(code);
      expect(err.status).toBe(code === 'LIMIT_EXCEEDED' ? 429 : 413);
      expect(err.details).toMatchObject({ limit, flag: LIMIT_FLAGS[limit], ...figures });
      expect(err.message).toContain(LIMIT_FLAGS[limit]);
      if (code === 'LIMIT_EXCEEDED') {
        expect((err.details as { retry: string }).retry).toMatch(/no Retry-After/);
      }
      expect(stateOf(registry)).toBe(state);
      expect(events).toHaveLength(emitted);
      expect(registry.limitRefusals[limit]).toBe(1);
      const others = Object.entries(registry.limitRefusals).filter(([n]) => n !== limit);
      expect(others.every(([, n]) => n === 0)).toBe(true);
    },
  );

  it('a renewal at a count limit is no new instance: it passes', () => {
    const { registry, register } = setup({ instances: 1, instancesPerPrincipal: 1 });
    register(reg('api', 'h1', 'alice'));
    expect(register(reg('api', 'h1', 'alice', { weight: 5 })).created).toBe(false);
    expect(registry.stats().instances.total).toBe(1);
  });

  it('counts fall when instances and undeclared services go, so there is room again', () => {
    const { registry, register } = setup({
      instancesPerPrincipal: 1,
      undeclaredServicesPerPrincipal: 1,
    });
    const first = register(reg('api', 'h1', 'alice'));
    expect(refusalOf(() => register(reg('web', 'h2', 'alice'))).code).toBe('LIMIT_EXCEEDED');
    registry.deregister(first.instance.id); // api was undeclared: it goes with its last instance
    expect(register(reg('web', 'h2', 'alice')).created).toBe(true);
  });

  it('a declared service is no undeclared one: declaring frees the slot its registration took', () => {
    const { registry, register } = setup({ undeclaredServices: 1 });
    register(reg('api', 'h1', 'alice'));
    expect(refusalOf(() => register(reg('web', 'h2', 'bob'))).details).toMatchObject({
      limit: 'undeclaredServices',
    });
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({}));
    register(reg('web', 'h2', 'bob'));
    // ...and a declaration removed while instances remain makes it undeclared again.
    registry.removeService('ns', 'api');
    expect(refusalOf(() => register(reg('db', 'h3', 'carol'))).details).toMatchObject({
      limit: 'undeclaredServices',
      current: 2,
    });
  });

  it('registrations without an owner count in total and per service, not per principal', () => {
    const { registry, register } = setup({ instancesPerPrincipal: 1, instancesPerService: 3 });
    for (const host of ['h1', 'h2', 'h3']) register(reg('api', host));
    expect(registry.stats().instances.total).toBe(3);
    expect(refusalOf(() => register(reg('api', 'h4'))).details).toMatchObject({
      limit: 'instancesPerService',
    });
  });

  it('pods are never refused: they count, registrations are refused, and the overrun is reported', () => {
    const { registry, register } = setup({ instances: 2, instancesPerService: 2 });
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({}));
    register(reg('api', 'h1', 'alice'));
    const pod = (id: string) => ({
      id,
      host: `10.1.0.${id.length}`,
      port: 8080,
      weight: 1,
      metadata: { pod: id },
      ready: true,
    });
    const synced = registry.syncPodInstances('ns', 'api', [pod('p1'), pod('p22'), pod('p333')]);
    expect(synced).toEqual({ added: 3, removed: 0, overLimit: 2 });
    expect(registry.stats().instances.total).toBe(4);
    expect(registry.instancesOverLimit).toBe(2);
    expect(refusalOf(() => register(reg('api', 'h2', 'alice'))).details).toMatchObject({
      limit: 'instances',
      current: 4,
    });
    expect(registry.syncPodInstances('ns', 'api', [pod('p1')]).overLimit).toBe(0);
  });

  it('defaults to the documented limits when none are given', () => {
    const { registry } = testRegistry();
    expect(registry.limits).toEqual(DEFAULT_LIMITS);
    expect(DEFAULT_LIMITS).toEqual({
      instances: 200_000,
      instancesPerService: 10_000,
      instancesPerPrincipal: 10_000,
      undeclaredServices: 10_000,
      undeclaredServicesPerPrincipal: 1_000,
      metadataBytes: 4096,
      metadataKeys: 64,
      ports: 16,
    });
  });
});

describe('no per-renewal copies', () => {
  const metadata = { build: 'b'.repeat(1000), tier: 'gold' };

  it('a renewal with the same metadata and ports keeps their objects; a change replaces them', () => {
    const { registry, events, register } = setup({});
    const body = reg('api', 'h1', 'alice', { metadata, ports: { http: 80 } });
    const first = register(body).instance;
    for (let i = 0; i < 100; i++)
      register(reg('api', 'h1', 'alice', { metadata, ports: { http: 80 } }));
    const held = new Set(events.flatMap((e) => (e.instance ? [e.instance.metadata] : [])));
    expect(held.size).toBe(1);
    const ports = new Set(events.flatMap((e) => (e.instance?.ports ? [e.instance.ports] : [])));
    expect(ports.size).toBe(1);
    expect(registry.getInstance(first.id)?.metadata).toBe([...held][0]);
    const changed = register(reg('api', 'h1', 'alice', { metadata: { tier: 'silver' } }));
    expect(changed.instance.metadata).toEqual({ tier: 'silver' });
    expect(changed.instance.metadata).not.toBe([...held][0]);
  });

  it('a heartbeat event names the instance and its health, without the instance and its metadata', () => {
    const { registry, events, register } = setup({});
    const { instance } = register(reg('api', 'h1', 'alice', { metadata }));
    events.length = 0;
    registry.heartbeat(instance.id, {});
    expect(events).toEqual([
      {
        type: 'service_heartbeat',
        service: { namespace: 'ns', name: 'api' },
        data: {
          id: instance.id,
          status: 'passing',
          lastHeartbeat: '2026-01-01T00:00:00.000Z',
          expiresAt: '2026-01-01T00:00:30.000Z',
        },
      },
    ]);
  });

  it('a pod synced again with equal metadata keeps the object', () => {
    const { registry, events } = setup({});
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({}));
    const pod = () => ({
      id: 'p1',
      host: '10.1.0.1',
      port: 8080,
      weight: 1,
      metadata: { pod: 'p1', node: 'n1' },
      ready: true,
    });
    registry.syncPodInstances('ns', 'api', [pod()]);
    const kept = registry.getInstance('p1')?.metadata;
    registry.syncPodInstances('ns', 'api', [pod()]);
    expect(registry.getInstance('p1')?.metadata).toBe(kept);
    expect(events.filter((e) => e.type === 'service_registered')).toHaveLength(1);
  });
});
