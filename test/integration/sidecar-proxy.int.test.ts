/**
 * A real sidecar proxies: it learns the destination's instances from a real operator's event
 * stream and forwards both forms (path form on its localhost port, the forward-proxy listener)
 * to real application servers, spread by the service's strategy.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
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
`;

let op: TestOperator;
let sidecar: Sidecar;
let port: number;
const apps: Upstream[] = [];

beforeAll(async () => {
  op = await startOperator({
    files: { 'shop.yaml': services },
    config: { allowUndeclared: false },
  });
  for (const name of ['one', 'two']) {
    const app = await startUpstream((req, res) => res.end(JSON.stringify({ name, url: req.url })));
    apps.push(app);
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'orders',
      namespace: 'shop',
      host: '127.0.0.1',
      port: app.port,
      ttlSeconds: 3600,
    });
    expect(r.status).toBe(201);
  }
  const config = loadSidecarConfig({
    // Written for a copy of the whole registry (the default scope is `pod` since issue 15).
    MAXINE_DISCOVERY_SCOPE: 'cluster',
    MAXINE_SERVICE: 'web',
    MAXINE_POD_NAMESPACE: 'shop',
    MAXINE_POD_IP: '127.0.0.1',
    MAXINE_APP_PORT: '1',
    MAXINE_OPERATOR_URL: op.url,
    MAXINE_LISTEN_PORT: '0',
    MAXINE_PROXY_LISTEN: '127.0.0.1:0',
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  sidecar = createSidecar(config, createLogger('warn', sink, 'sidecar'));
  port = (await sidecar.start()).port;
  await sidecar.mirror.synchronised();
});

afterAll(async () => {
  await sidecar.stop();
  await op.stop();
  for (const app of apps) await app.close();
});

describe('a real sidecar proxies', () => {
  it('path form: spread over both instances by round robin', async () => {
    const names = await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const answer = await call(port, '/v1/proxy/orders/hello?x=1');
        if (answer.status !== 200) return undefined;
        expect(json(answer).url).toBe('/hello?x=1');
        seen.add(json(answer).name as string);
      }
      return seen;
    }, 5000);
    expect([...names].sort()).toEqual(['one', 'two']);
  });

  it('forward-proxy listener: http://orders.shop/... and http://orders/...', async () => {
    const forward = sidecar.proxyAddress();
    expect(forward).toBeDefined();
    const a = await call(forward!.port, 'http://orders.shop/a', {
      headers: { host: 'orders.shop' },
    });
    expect(json(a).url).toBe('/a');
    const b = await call(forward!.port, 'http://orders/b', { headers: { host: 'orders' } });
    expect(json(b).url).toBe('/b');
    const c = await call(forward!.port, 'http://example.com/', {
      headers: { host: 'example.com' },
    });
    expect(c.status).toBe(502);
  });

  it('a taken forward-proxy port is logged and the sidecar runs on without it', async () => {
    const taken = apps[0]!.port;
    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _e, done) => {
        lines.push(chunk.toString());
        done();
      },
    });
    const other = createSidecar(
      loadSidecarConfig({
        // Written for a copy of the whole registry (the default scope is `pod` since issue 15).
        MAXINE_DISCOVERY_SCOPE: 'cluster',
        MAXINE_SERVICE: 'web',
        MAXINE_POD_NAMESPACE: 'shop',
        MAXINE_POD_IP: '127.0.0.1',
        MAXINE_APP_PORT: '1',
        MAXINE_OPERATOR_URL: op.url,
        MAXINE_LISTEN_PORT: '0',
        MAXINE_PROXY_LISTEN: `127.0.0.1:${taken}`,
      }),
      createLogger('warn', sink, 'sidecar'),
    );
    try {
      const address = await other.start();
      expect(other.proxyAddress()).toBeUndefined();
      expect(lines.join('')).toContain('forward-proxy listener not started');
      await other.mirror.synchronised();
      const answer = await eventually(async () => {
        const a = await call(address.port, '/v1/proxy/orders/x');
        return a.status === 200 ? a : undefined;
      }, 5000);
      expect(json(answer).url).toBe('/x');
    } finally {
      await other.stop();
    }
  });
});
