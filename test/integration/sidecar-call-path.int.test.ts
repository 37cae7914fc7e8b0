/**
 * The sidecar as composed (sidecar/sidecar.ts), on the call path against a real operator: the
 * destination's MaxineService spec and the MaxineIntentions the operator holds decide what
 * the proxy does — an intention written to the resource folder refuses the next calls, the
 * service's rateLimit answers 429, its circuitBreaker opens on an instance that keeps failing
 * and the retries land on the other one — and what it did shows in the sidecar's /metrics, in
 * the operator's dependency graph and as circuit_state_changed on the event stream.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { api, EventClient, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { call, json, startUpstream } from '../helpers/proxy.js';
import type { Upstream } from '../helpers/proxy.js';

const services = `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  dependencies: [{ name: orders }, { name: ledger }, { name: catalog }, { name: stock }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: stock, namespace: shop }
spec:
  circuitBreaker: { failureThreshold: 1, openSeconds: 1, halfOpenProbes: 1 }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: catalog, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  loadBalancing: { strategy: round-robin }
  circuitBreaker: { failureThreshold: 2, openSeconds: 30 }
  retries: { attempts: 1, retryOn: [5xx] }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ledger, namespace: shop }
spec:
  rateLimit: { requestsPerSecond: 1, burst: 2 }
`;

let op: TestOperator;
let sidecar: Sidecar;
let port: number;
const apps = new Map<string, Upstream>();
/** The status the `bad` orders instance answers with. */
let badStatus = 200;
/** The status the only stock instance answers with. */
let stockStatus = 200;

async function register(service: string, app: Upstream): Promise<void> {
  const r = await api(op.url, 'POST', '/api/v1/instances', {
    service,
    namespace: 'shop',
    host: '127.0.0.1',
    port: app.port,
    ttlSeconds: 3600,
  });
  expect(r.status).toBe(201);
}

beforeAll(async () => {
  op = await startOperator({
    files: { 'shop.yaml': services },
    config: { allowUndeclared: false, graphWindowSeconds: 60 },
  });
  apps.set('good', await startUpstream((req, res) => res.end(JSON.stringify({ name: 'good' }))));
  apps.set(
    'bad',
    await startUpstream((req, res) => {
      res.statusCode = badStatus;
      res.end(JSON.stringify({ name: 'bad' }));
    }),
  );
  apps.set(
    'stock',
    await startUpstream((req, res) => {
      res.statusCode = stockStatus;
      res.end(JSON.stringify({ name: 'stock' }));
    }),
  );
  for (const name of ['ledger', 'catalog']) {
    apps.set(name, await startUpstream((req, res) => res.end(JSON.stringify({ name }))));
  }
  await register('orders', apps.get('good')!);
  await register('orders', apps.get('bad')!);
  await register('ledger', apps.get('ledger')!);
  await register('catalog', apps.get('catalog')!);
  await register('stock', apps.get('stock')!);
  const config = loadSidecarConfig({
    // Written for a copy of the whole registry (the default scope is `pod` since issue 15).
    MAXINE_DISCOVERY_SCOPE: 'cluster',
    MAXINE_SERVICE: 'web',
    MAXINE_POD_NAMESPACE: 'shop',
    MAXINE_POD_IP: '127.0.0.1',
    MAXINE_APP_PORT: '1',
    MAXINE_OPERATOR_URL: op.url,
    MAXINE_LISTEN_PORT: '0',
    MAXINE_PROXY_LISTEN: 'off',
    MAXINE_REPORT_INTERVAL_SECONDS: '1',
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  sidecar = createSidecar(config, createLogger('warn', sink, 'sidecar'));
  port = (await sidecar.start()).port;
  await sidecar.mirror.synchronised();
});

afterAll(async () => {
  await sidecar?.stop();
  await op?.stop();
  for (const app of apps.values()) await app.close();
});

describe('the composed sidecar on the call path', () => {
  it('an intention written to the folder refuses the next calls with 403 naming it; removed, calls pass', async () => {
    expect((await call(port, '/v1/proxy/catalog/x')).status).toBe(200);
    await op.write(
      'intention.yaml',
      `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: catalog-callers, namespace: shop }
spec:
  destination: { name: catalog }
  sources:
    - name: web
      permissions:
        - action: allow
          http: { pathPrefix: /public, methods: [GET] }
        - action: deny
          http: { pathPrefix: / }
`,
    );
    let last: unknown;
    const refused = await eventually(async () => {
      const r = await call(port, '/v1/proxy/catalog/private');
      last = [r.status, r.body, op.logs.filter((l) => l.level !== 'debug').slice(-3)];
      return r.status === 403 && r;
    }).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(last)}`);
    });
    const body = json(refused) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('INTENTION_DENIED');
    expect(body.error.message).toContain('catalog-callers');
    // A path that only normalises into the allowed prefix is still refused.
    expect((await call(port, '/v1/proxy/catalog/public/../private')).status).toBe(403);
    expect((await call(port, '/v1/proxy/catalog/public/menu')).status).toBe(200);
    await op.write('intention.yaml', '');
    await eventually(async () => (await call(port, '/v1/proxy/catalog/private')).status === 200);
  });

  it("ledger's rateLimit (1/s, burst 2) answers 429 with Retry-After once the burst is spent", async () => {
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 4; i++) {
      const r = await call(port, '/v1/proxy/ledger/x');
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers['retry-after'];
    }
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    expect(statuses.slice(2)).toEqual([429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it("orders' failing instance: retried on the other one, then its circuit opens and it is skipped", async () => {
    const events = await EventClient.connect(
      `${op.wsUrl}/api/v1/events?types=circuit_state_changed`,
    );
    badStatus = 503;
    const bad = apps.get('bad')!;
    const before = bad.seen.length;
    // Every call succeeds for the app: a 503 from `bad` is retried on `good`.
    for (let i = 0; i < 6; i++) {
      const r = await call(port, '/v1/proxy/orders/x');
      expect(r.status).toBe(200);
      expect(json(r).name).toBe('good');
    }
    // failureThreshold 2: bad saw two tries, then its circuit opened and it saw no more.
    expect(bad.seen.length - before).toBe(2);
    const seen = await events.until((es) => es.some((e) => e.type === 'circuit_state_changed'));
    expect(seen.find((e) => e.type === 'circuit_state_changed')).toMatchObject({
      service: { namespace: 'shop', name: 'orders' },
      data: {
        from: 'closed',
        to: 'open',
        reporter: { service: { namespace: 'shop', name: 'web' } },
      },
    });
    await events.close();
    badStatus = 200;
  });

  it("stock's breaker runs its full cycle: open on failure (503 CIRCUIT_OPEN), half-open after openSeconds, closed on a good probe", async () => {
    const events = await EventClient.connect(
      `${op.wsUrl}/api/v1/events?types=circuit_state_changed&services=shop/stock`,
    );
    stockStatus = 500;
    expect((await call(port, '/v1/proxy/stock/x')).status).toBe(500);
    // failureThreshold 1: the only instance is open, so the proxy answers without calling it.
    const seen = apps.get('stock')!.seen.length;
    const refused = await call(port, '/v1/proxy/stock/x');
    expect(refused.status).toBe(503);
    expect((json(refused) as { error: { code: string } }).error.code).toBe('CIRCUIT_OPEN');
    expect(apps.get('stock')!.seen.length).toBe(seen);
    // The upstream recovers; after openSeconds (1 s) one probe goes through and closes it.
    stockStatus = 200;
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call(port, '/v1/proxy/stock/x')).status).toBe(200);
    expect((await call(port, '/v1/proxy/stock/x')).status).toBe(200);
    const transitions = (es: { type: string; data?: unknown; instance?: unknown }[]) =>
      es
        .filter((e) => e.type === 'circuit_state_changed' && e.instance !== undefined)
        .map((e) => `${(e.data as { from: string }).from}→${(e.data as { to: string }).to}`);
    await events.until((es) => transitions(es).includes('half-open→closed'), 5000);
    expect(transitions(events.events)).toEqual([
      'closed→open',
      'open→half-open',
      'half-open→closed',
    ]);
    await events.close();
  });

  it('what the proxy did shows in its /metrics and in the operator’s dependency graph', async () => {
    const metrics = await call(port, '/metrics');
    expect(metrics.status).toBe(200);
    const text = metrics.body;
    expect(text).toMatch(/maxine_sidecar_proxy_calls_total\{[^}]*destination="shop\/orders"/);
    expect(text).toMatch(/maxine_sidecar_circuit_transitions_total\{[^}]*to="open"/);
    expect(text).toContain('maxine_sidecar_rate_limited_total');
    const edge = await eventually(async () => {
      const graph = await api(op.url, 'GET', '/api/v1/graph');
      const edges = (
        graph.body as {
          edges: { source: string; destination: string; observed: boolean; calls?: number }[];
        }
      ).edges;
      return edges.find(
        (e) => e.source === 'shop/web' && e.destination === 'shop/orders' && e.observed,
      );
    }, 5000);
    expect(edge.calls).toBeGreaterThanOrEqual(6);
  });
});
