/**
 * The engine's connect timeout over real sockets: an instance that never answers the SYN is a
 * `connect-failure` after `connectTimeoutMs`, retried on another instance and recorded for the
 * breaker, instead of holding the call until a per-try or whole-call timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AttemptOutcome, CallRecord } from './hooks.js';
import { SpecRetryPolicy } from './retry.js';
import { startBlackhole } from '../../test/helpers/blackhole.js';
import type { Blackhole } from '../../test/helpers/blackhole.js';
import {
  call,
  instance,
  json,
  Routes,
  startProxy,
  startUpstream,
} from '../../test/helpers/proxy.js';
import type { ProxyRig, Upstream } from '../../test/helpers/proxy.js';

let hole: Blackhole;
let good: Upstream;
const rigs: ProxyRig[] = [];

beforeAll(async () => {
  hole = await startBlackhole();
  good = await startUpstream((req, res) => res.end(JSON.stringify({ name: 'good' })));
});
afterAll(async () => {
  for (const rig of rigs) await rig.close();
  await good.close();
  hole.close();
});

function recorder() {
  const records: { instanceId: string; outcome: AttemptOutcome }[] = [];
  const calls: CallRecord[] = [];
  return {
    records,
    calls,
    hooks: {
      breakers: {
        admit: () => true,
        record: (_d: unknown, instanceId: string, outcome: AttemptOutcome) =>
          void records.push({ instanceId, outcome }),
        state: () => 'closed' as const,
      },
      observer: { callEnded: (r: CallRecord) => void calls.push(r) },
      retryPolicy: new SpecRetryPolicy(),
      retryBudget: { onCall: () => undefined, tryRetry: () => true },
    },
  };
}

describe('connect timeout', () => {
  it('a blackholed instance alone: 502 UPSTREAM_CONNECT_FAILED after the connect timeout, not the call timeout', async () => {
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('hole', hole.port)], { requestTimeoutSeconds: 10 });
    const rec = recorder();
    const rig = await startProxy(routes, rec.hooks, { connectTimeoutMs: 250 });
    rigs.push(rig);
    const started = Date.now();
    const answer = await call(rig.port, '/v1/proxy/orders/x');
    const took = Date.now() - started;
    expect(answer.status).toBe(502);
    expect(json(answer).error.code).toBe('UPSTREAM_CONNECT_FAILED');
    expect(json(answer).error.message).toContain('no connection within 250 ms');
    expect(took).toBeGreaterThanOrEqual(240);
    expect(took).toBeLessThan(2000);
    expect(rec.records).toMatchObject([
      { instanceId: 'hole', outcome: { kind: 'connect-failure' } },
    ]);
  });

  it('retried on another instance when retryOn says connect-failure: every call answered 200', async () => {
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('hole', hole.port), instance('good', good.port)], {
      loadBalancing: { strategy: 'round-robin' },
      retries: { attempts: 1, retryOn: ['connect-failure'] },
    });
    const rec = recorder();
    const rig = await startProxy(routes, rec.hooks, { connectTimeoutMs: 200 });
    rigs.push(rig);
    for (let i = 0; i < 4; i++) {
      const answer = await call(rig.port, '/v1/proxy/orders/x');
      expect(answer.status).toBe(200);
      expect(json(answer).name).toBe('good');
    }
    const failures = rec.records.filter((r) => r.outcome.kind === 'connect-failure');
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((r) => r.instanceId === 'hole')).toBe(true);
    expect(rec.calls.map((c) => c.status)).toEqual([200, 200, 200, 200]);
  });
});
