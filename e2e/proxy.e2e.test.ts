/**
 * The sidecar's outbound data plane on a real control plane: two injected services, `web`
 * calling `orders` through web's sidecar (the path form and the forward proxy), and
 * MaxineIntentions applied with kubectl taking effect on the next call.
 *
 * kwok gives the pods addresses in 127.77.0.0/16, so the test serves each orders pod's app
 * itself on the pod's own IP and port: the sidecar proxies to the address the registry holds
 * for the pod, exactly as in a cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, freePorts, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { installCrds, kubectl as kubectlIn } from './operator-identity.js';
import {
  applyDeployment,
  podsWithIps,
  startInjectingOperator,
  startSidecar,
  untilInjects,
} from './injection.js';
import type { Pod, SidecarProcess } from './injection.js';
import { eventually } from '../test/helpers/operator.js';

let cp: ControlPlane;
let operator: Operator;
let work: string;
let web: SidecarProcess;
let proxyPort: number;
const apps: Server[] = [];
let orders: Pod[] = [];

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

interface Echo {
  pod: string;
  method: string;
  url: string;
  traceparent?: string;
}

/** A call through the path form: `/v1/proxy/{service}/{path}` on web's sidecar. */
async function viaPath(
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Echo & { error?: { code: string; message: string } } }> {
  const res = await fetch(`${web.url}/v1/proxy/${path}`, init);
  const text = await res.text();
  return {
    status: res.status,
    body: JSON.parse(text) as Echo & { error?: { code: string; message: string } },
  };
}

/** A call as an unmodified app makes it with HTTP_PROXY set: absolute-form to the forward listener. */
function viaForwardProxy(url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request(
      { host: '127.0.0.1', port: proxyPort, method, path: url, headers: { host: target.host } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true, podCidr: '127.77.0.1/16' });
  work = await mkdtemp(join(tmpdir(), 'maxine-proxy-e2e-'));
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  ({ operator } = await startInjectingOperator(cp, 'shop'));
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 8080 }]
  dependencies: [{ name: orders }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  selector: { app: orders }
  ports: [{ name: http, port: 8080 }]
`,
  );
  await untilInjects(cp, 'shop', { app: 'web' });
  await untilInjects(cp, 'shop', { app: 'orders' });
  await applyDeployment(cp, 'shop', 'web', { replicas: 1 });
  await applyDeployment(cp, 'shop', 'orders', { replicas: 2 });
  orders = await podsWithIps(cp, 'shop', 'orders', 2);
  // Each orders pod's app: echoes who answered and what it received.
  for (const pod of orders) {
    const app = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            pod: pod.metadata.name,
            method: req.method,
            url: req.url,
            traceparent: req.headers.traceparent,
          }),
        );
      });
    });
    await new Promise<void>((resolve) => app.listen(8080, pod.status.podIP, resolve));
    apps.push(app);
  }
  const [webPod] = await podsWithIps(cp, 'shop', 'web', 1);
  [proxyPort] = (await freePorts(1)) as [number];
  web = await startSidecar(cp, webPod!, work, {
    MAXINE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
  });
  await eventually(
    async () => {
      const res = await fetch(`${web.url}/v1/discover/orders?all=true`).catch(() => undefined);
      if (res?.status !== 200) return false;
      const body = (await res.json()) as { instances: unknown[] };
      return body.instances.length === 2;
    },
    30_000,
    "web's sidecar copy holds both orders instances",
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${web?.log.join('')}`);
  });
}, 30 * 60_000);

afterAll(async () => {
  web?.proc.kill('SIGKILL');
  for (const app of apps) app.close();
  await operator?.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the outbound proxy between two injected services', () => {
  it('web reaches both orders pods through its sidecar, path form and forward proxy alike', async () => {
    const names = new Set(orders.map((p) => p.metadata.name));
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const { status, body } = await viaPath('orders/hello?x=1');
      expect(status).toBe(200);
      expect(body).toMatchObject({ method: 'GET', url: '/hello?x=1' });
      expect(body.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      seen.add(body.pod);
    }
    expect(seen).toEqual(names);
    for (const url of ['http://orders/a', 'http://orders.shop/b']) {
      const { status, body } = await viaForwardProxy(url);
      expect(status).toBe(200);
      expect(names.has((JSON.parse(body) as Echo).pod)).toBe(true);
    }
    // A host that is not a Maxine service is never forwarded, and the answer names it.
    const outside = await viaForwardProxy('http://example.com/');
    expect(outside.status).toBe(502);
    expect(outside.body).toContain('example.com');
  });

  it('an intention applied with kubectl decides the next calls, L7 permissions included', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders-callers, namespace: shop }
spec:
  destination: { name: orders }
  sources:
    - name: web
      action: deny
`,
    );
    const applied = Date.now();
    const denied = await eventually(
      async () => {
        const r = await viaPath('orders/hello');
        return r.status === 403 && r;
      },
      10_000,
      'the deny intention in force at the caller',
    );
    process.stderr.write(
      `[e2e] intention applied → first refused call after ${Date.now() - applied} ms\n`,
    );
    expect(denied.body.error?.message).toContain('orders-callers');

    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders-callers, namespace: shop }
spec:
  destination: { name: orders }
  sources:
    - name: web
      permissions:
        - action: allow
          http: { pathPrefix: /public, methods: [GET] }
        - action: deny
          http: { pathPrefix: / }
`,
    );
    await eventually(
      async () => (await viaPath('orders/public/menu')).status === 200,
      10_000,
      'the L7 allow in force',
    );
    expect((await viaPath('orders/private')).status).toBe(403);
    expect((await viaPath('orders/public/menu', { method: 'POST', body: '{}' })).status).toBe(403);
    expect((await viaForwardProxy('http://orders/private')).status).toBe(403);

    await kubectl(['delete', 'maxineintention', 'orders-callers', '-n', 'shop']);
    await eventually(
      async () => (await viaPath('orders/private')).status === 200,
      10_000,
      'the default (allow) decides again once the intention is gone',
    );
  });
});
