/** A registration ↔ its MaxineRegistration object: names, the round trip, refusals, echoes. */
import { describe, expect, it } from '@jest/globals';
import type { KeptRegistration } from '../registry/registry.js';
import {
  contentOf,
  EchoFilter,
  objectNameOf,
  objectOf,
  readObject,
  statusOf,
} from './registration-object.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function kept(extra: Partial<KeptRegistration> = {}): KeptRegistration {
  return {
    id: 'web-0123456789abcdef',
    namespace: 'shop',
    service: 'web',
    host: '10.0.0.7',
    port: 8080,
    weight: 1,
    metadata: {},
    registeredAt: T0,
    ttlMs: 30_000,
    check: { status: 'passing' },
    leaseLapsed: false,
    ...extra,
  };
}

/** What the API server hands back: the object with its status (and fields it adds). */
function stored(k: KeptRegistration, uid?: string): unknown {
  const o = objectOf(k, uid);
  return {
    ...o,
    metadata: { ...o.metadata, uid: 'u-1', resourceVersion: '42', generation: 1 },
    status: statusOf(k),
  };
}

describe('objectNameOf', () => {
  it.each([
    ['a computed id is its own name', 'web-0123456789abcdef', 'web-0123456789abcdef'],
    ['a DNS subdomain id is its own name', 'vm-1.dc-a', 'vm-1.dc-a'],
    ['upper case is hashed', 'VM-1', /^reg-[0-9a-f]{40}$/],
    ['":" and "_" are hashed', 'host_1:8080', /^reg-[0-9a-f]{40}$/],
  ])('%s', (_what, id, name) => {
    if (typeof name === 'string') expect(objectNameOf(id)).toBe(name);
    else expect(objectNameOf(id)).toMatch(name);
  });

  it('is stable and distinct per id', () => {
    expect(objectNameOf('VM-1')).toBe(objectNameOf('VM-1'));
    expect(objectNameOf('VM-1')).not.toBe(objectNameOf('VM-2'));
  });
});

describe('objectOf / readObject round trip', () => {
  it.each<[string, KeptRegistration]>([
    ['the least a registration has', kept()],
    [
      'every field',
      kept({
        id: 'Vm_1:80',
        ports: { http: 8080, admin: 9090 },
        version: 'v2',
        zone: 'eu-1a',
        datacenter: 'dc1',
        weight: 7,
        metadata: { 'example.com/tier': 'gold', rack: 'r1' },
        owner: 'User:alice',
        ttlMs: 12_000,
      }),
    ],
    ['critical with output', kept({ check: { status: 'critical', output: 'disk full' } })],
    ['a lapsed lease', kept({ leaseLapsed: true })],
  ])('%s comes back as it was written', (_what, k) => {
    const back = readObject(stored(k));
    expect(back).toEqual({ ok: true, kept: k, content: expect.any(String) as unknown });
  });

  it('labels the service and owns the object by the MaxineService when declared', () => {
    const o = objectOf(kept(), 'uid-svc');
    expect(o.metadata).toEqual({
      name: 'web-0123456789abcdef',
      namespace: 'shop',
      labels: { 'maxine.io/service': 'web', 'app.kubernetes.io/managed-by': 'maxine-operator' },
      ownerReferences: [
        { apiVersion: 'maxine.io/v1alpha1', kind: 'MaxineService', name: 'web', uid: 'uid-svc' },
      ],
    });
    expect(objectOf(kept()).metadata.ownerReferences).toBeUndefined();
  });

  it('an object without status is passing with its lease held', () => {
    const bare = stored(kept()) as Record<string, unknown>;
    delete bare.status;
    const back = readObject(bare);
    expect(back.ok && back.kept.check).toEqual({ status: 'passing' });
    expect(back.ok && back.kept.leaseLapsed).toBe(false);
  });
});

describe('readObject refuses what the schema or the name rule refuses', () => {
  const good = stored(kept()) as { metadata: object; spec: object; status: object };
  it.each<[string, unknown, RegExp]>([
    ['a port out of range', { ...good, spec: { ...good.spec, port: 70000 } }, /^spec\.port: /],
    [
      'a metadata key that is not a label key',
      { ...good, spec: { ...good.spec, metadata: { 'bad key!': 'x' } } },
      /^spec\.metadata/,
    ],
    ['an unknown spec field', { ...good, spec: { ...good.spec, colour: 'red' } }, /colour/],
    [
      'a health that is not one',
      { ...good, status: { health: 'fine', leaseLapsed: false } },
      /^status\.health/,
    ],
    ['a missing spec', { ...good, spec: undefined }, /^spec: /],
    [
      'a name that is not its id',
      { ...good, metadata: { ...good.metadata, name: 'other' } },
      /^metadata\.name: must be "web-0123456789abcdef"/,
    ],
    ['not an object at all', 'hello', /./],
  ])('%s', (_what, raw, message) => {
    const back = readObject(raw);
    expect(back.ok).toBe(false);
    if (!back.ok) expect(back.message).toMatch(message);
  });
});

describe('contentOf', () => {
  it('does not depend on key order, and no status equals the default one', () => {
    const k = kept({ metadata: { b: '2', a: '1' } });
    const spec = objectOf(k).spec;
    const reordered = Object.fromEntries(Object.entries(spec).reverse()) as typeof spec;
    expect(contentOf(reordered, undefined)).toBe(contentOf(spec, statusOf(k)));
    expect(contentOf(spec, { health: 'critical', leaseLapsed: false })).not.toBe(
      contentOf(spec, undefined),
    );
  });
});

describe('EchoFilter', () => {
  it.each<[string, [string, string][], [string, string, boolean][], number]>([
    [
      'an echo is recognised once',
      [['a', 'c1']],
      [
        ['a', 'c1', true],
        ['a', 'c1', false],
      ],
      0,
    ],
    ['a foreign change is not an echo', [['a', 'c1']], [['a', 'c9', false]], 1],
    [
      'a later echo consumes the older ones (stale echoes are not foreign afterwards)',
      [
        ['a', 'c1'],
        ['a', 'c2'],
      ],
      [
        ['a', 'c2', true],
        ['a', 'c1', false],
      ],
      0,
    ],
    [
      'stale echoes arriving in order are all echoes',
      [
        ['a', 'c1'],
        ['a', 'deleted'],
      ],
      [
        ['a', 'c1', true],
        ['a', 'deleted', true],
      ],
      0,
    ],
    ['objects are apart', [['a', 'c1']], [['b', 'c1', false]], 1],
  ])('%s', (_what, writes, events, left) => {
    const f = new EchoFilter();
    for (const [id, c] of writes) f.wrote(id, c);
    for (const [id, c, echo] of events) expect([id, c, f.isEcho(id, c)]).toEqual([id, c, echo]);
    expect(f.size).toBe(left);
  });

  it('a cancelled write (it failed) is not awaited any more', () => {
    const f = new EchoFilter();
    f.wrote('a', 'c1');
    f.wrote('a', 'c2');
    f.cancel('a', 'c2');
    expect(f.isEcho('a', 'c2')).toBe(false);
    expect(f.isEcho('a', 'c1')).toBe(true);
    f.wrote('b', 'deleted');
    f.cancel('b', 'deleted');
    expect(f.size).toBe(0);
  });

  it('awaits at most 8 writes per object', () => {
    const f = new EchoFilter();
    for (let i = 0; i < 20; i++) f.wrote('a', `c${i}`);
    expect(f.isEcho('a', 'c11')).toBe(false);
    expect(f.isEcho('a', 'c12')).toBe(true);
  });
});
