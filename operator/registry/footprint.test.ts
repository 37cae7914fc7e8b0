/**
 * What an instance costs the registry's heap (issue 17: ≤ 1 KB of RSS per instance). The
 * figures are V8's, after full collections: `gc` is exposed at run time for this file only.
 */
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { systemClock } from './clock.js';
import { healthOf, toInstance } from './instance.js';
import type { InstanceRecord } from './instance.js';
import { instanceId, Registry } from './registry.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const heapUsed = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const N = 50_000;

describe('what an instance costs', () => {
  it.each([
    ['bench', 'svc-000', '10.0.0.1', 8080],
    ['ns', 'api', 'a.example', 80],
    ['team-a', 'orders', '::1', 65535],
  ])(
    'instanceId(%s, %s, %s, %d) is still the service and 16 hex of the sha256',
    (ns, svc, host, port) => {
      const digest = createHash('sha256').update(`${ns}/${svc}/${host}:${port}`).digest('hex');
      expect(instanceId(ns, svc, host, port)).toBe(`${svc}-${digest.slice(0, 16)}`);
    },
  );

  /** Heap bytes per instance of N registrations (`withId`: each names an id of 24 characters). */
  const bytesPerInstance = (withId: boolean): number => {
    const registry = new Registry({
      clock: systemClock,
      emit: () => undefined,
      allowUndeclared: true,
      defaultTtlSeconds: 3600,
      defaultRemoveAfterSeconds: 3600,
      massExpiryThreshold: 0.5,
      massExpiryMinInstances: 10,
      limits: { instances: N, instancesPerService: N, instancesPerPrincipal: N },
    });
    // The requests as JSON.parse makes them (flat strings), as the HTTP layer hands them over.
    const bodies = Array.from({ length: N }, (_, i) =>
      JSON.stringify({
        ...(withId && { id: `inst-${i.toString(16).padStart(19, '0')}` }),
        service: `svc-${String(i % 100).padStart(3, '0')}`,
        namespace: 'bench-mem',
        host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        port: 8080,
        weight: 1,
        metadata: {},
      }),
    );
    const before = heapUsed();
    for (let i = 0; i < N; i++) registry.register(JSON.parse(bodies[i] as string));
    const perInstance = (heapUsed() - before) / N;
    expect(registry.stats().instances.total).toBe(N);
    return perInstance;
  };

  it(`holds a computed id (${N.toLocaleString('en-US')} registrations) in no more heap than a 24-character id the client named`, () => {
    const named = bytesPerInstance(true);
    const computed = bytesPerInstance(false);
    // Both ids are 24 characters. The computed one was a concatenation of a slice of the hex
    // digest: four strings, ~128 bytes more per instance (158 measured here; ~32 now).
    expect(computed - named).toBeLessThan(64);
  });
});

describe('what a heartbeat builds', () => {
  const record = (over: Partial<InstanceRecord> = {}): InstanceRecord => ({
    id: 'api-1',
    namespace: 'ns',
    service: 'api',
    host: '10.0.0.1',
    port: 80,
    weight: 1,
    metadata: {},
    source: 'registration',
    registeredAt: Date.parse('2026-12-06T22:00:00.000Z'),
    lastHeartbeat: Date.parse('2026-12-06T22:00:10.500Z'),
    ttlMs: 30_000,
    leaseLapsed: false,
    ready: true,
    check: { status: 'passing' },
    connections: 0,
    ...over,
  });

  it.each([
    ['passing', {}, { status: 'passing', reason: 'check' }],
    ['warning', { check: { status: 'warning' as const } }, { status: 'warning', reason: 'check' }],
    ['lapsed', { leaseLapsed: true }, { status: 'critical', reason: 'lease-expired' }],
    ['not ready', { ready: false }, { status: 'critical', reason: 'not-ready' }],
  ])(
    'healthOf a %s record is one shared frozen answer, not an object per call',
    (_what, over, want) => {
      const a = healthOf(record(over));
      expect(a).toEqual(want);
      expect(healthOf(record(over))).toBe(a);
      expect(Object.isFrozen(a)).toBe(true);
    },
  );

  it.each([
    ['a bare registration', {}],
    [
      'every optional field',
      {
        ports: { http: 80 },
        version: 'v2',
        zone: 'a',
        datacenter: 'dc1',
        check: { status: 'critical' as const, output: 'down' },
      },
    ],
    ['no lease', { lastHeartbeat: undefined, ttlMs: undefined }],
  ])(
    'toInstance of %s says the same fields in the same order as the API always did',
    (_what, over) => {
      const r = record(over);
      const iso = (t: number) => new Date(t).toISOString();
      const expected = {
        id: r.id,
        service: { namespace: r.namespace, name: r.service },
        host: r.host,
        port: r.port,
        ...(r.ports && { ports: r.ports }),
        ...(r.version !== undefined && { version: r.version }),
        ...(r.zone !== undefined && { zone: r.zone }),
        ...(r.datacenter !== undefined && { datacenter: r.datacenter }),
        weight: r.weight,
        metadata: r.metadata,
        health: {
          ...healthOf(r),
          ...(r.check.output !== undefined && { output: r.check.output }),
        },
        source: r.source,
        registeredAt: iso(r.registeredAt),
        ...(r.lastHeartbeat !== undefined && { lastHeartbeat: iso(r.lastHeartbeat) }),
        ...(r.lastHeartbeat !== undefined &&
          r.ttlMs !== undefined && {
            lease: { ttlSeconds: r.ttlMs / 1000, expiresAt: iso(r.lastHeartbeat + r.ttlMs) },
          }),
      };
      expect(JSON.stringify(toInstance(r))).toBe(JSON.stringify(expected));
    },
  );
});
