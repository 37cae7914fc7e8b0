/**
 * What an instance costs the registry's heap (issue 17: ≤ 1 KB of RSS per instance). The
 * figures are V8's, after full collections: `gc` is exposed at run time for this file only.
 */
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { systemClock } from './clock.js';
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
