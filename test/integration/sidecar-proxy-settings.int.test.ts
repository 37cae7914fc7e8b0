/**
 * The sidecar's proxy settings from its environment (sidecar/config.ts), as composed
 * (sidecar/sidecar.ts) against a real operator: what each setting changes on the call path.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { api, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { startBlackhole } from '../helpers/blackhole.js';
import type { Blackhole } from '../helpers/blackhole.js';
import { call, json, startUpstream } from '../helpers/proxy.js';
import type { Upstream } from '../helpers/proxy.js';

const services = `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  loadBalancing: { strategy: round-robin }
  retries: { attempts: 1, retryOn: [5xx] }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ledger, namespace: shop }
spec:
  requestTimeoutSeconds: 20
`;

let op: TestOperator;
const apps: Upstream[] = [];
const sidecars: Sidecar[] = [];
let hole: Blackhole;

async function register(service: string, port: number, host = '127.0.0.1'): Promise<void> {
  const r = await api(op.url, 'POST', '/api/v1/instances', {
    service,
    namespace: 'shop',
    host,
    port,
    ttlSeconds: 3600,
  });
  expect(r.status).toBe(201);
}

async function startSidecar(env: Record<string, string>): Promise<number> {
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
    MAXINE_REPORT_INTERVAL_SECONDS: '0',
    ...env,
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const sidecar = createSidecar(config, createLogger('warn', sink, 'sidecar'));
  sidecars.push(sidecar);
  const port = (await sidecar.start()).port;
  await sidecar.mirror.synchronised();
  return port;
}

beforeAll(async () => {
  op = await startOperator({ files: { 'shop.yaml': services } });
  const good = await startUpstream((req, res) => res.end('good'));
  const bad = await startUpstream((req, res) => {
    res.statusCode = 503;
    res.end('bad');
  });
  apps.push(good, bad);
  await register('orders', good.port);
  await register('orders', bad.port);
  hole = await startBlackhole();
  await register('ledger', hole.port);
});

afterAll(async () => {
  for (const s of sidecars) await s.stop();
  await op?.stop();
  for (const app of apps) await app.close();
  hole?.close();
});

describe('MAXINE_PROXY_RETRY_NON_IDEMPOTENT', () => {
  const posts = async (port: number) => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await call(port, '/v1/proxy/orders/order', {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: `order ${i}`,
      });
      statuses.push(r.status);
    }
    return statuses;
  };

  it('true: a POST that fails with a 5xx is tried again on the other instance', async () => {
    const port = await startSidecar({ MAXINE_PROXY_RETRY_NON_IDEMPOTENT: 'true' });
    const before = apps[1]!.seen.filter((s) => s.method === 'POST').length;
    expect(await posts(port)).toEqual([200, 200, 200, 200, 200, 200]);
    // Round robin over two instances: the failing one was tried first for some of them.
    expect(apps[1]!.seen.filter((s) => s.method === 'POST').length).toBeGreaterThan(before);
  });

  it('unset: a POST is not tried again, its 503 goes back to the app', async () => {
    const port = await startSidecar({});
    expect(await posts(port)).toContain(503);
  });
});

describe('MAXINE_PROXY_CONNECT_TIMEOUT_MS', () => {
  it('an instance that never answers the SYN fails the try after it, not after the call timeout', async () => {
    const port = await startSidecar({ MAXINE_PROXY_CONNECT_TIMEOUT_MS: '300' });
    const started = Date.now();
    const answer = await call(port, '/v1/proxy/ledger/x');
    expect(answer.status).toBe(502);
    expect(json(answer).error.message).toContain('no connection within 300 ms');
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
