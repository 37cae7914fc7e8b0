/**
 * The sidecar against a real operator over real sockets: it registers, heartbeats with the
 * results of a real health script, answers discovery on localhost from its copy exactly as
 * the operator does, keeps answering while the operator is down, registers again when it
 * comes back, and deregisters when stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { createLogger } from '../../common/logger.js';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let sidecar: Sidecar;
let sidecarUrl: string;
let app: Server;
let work: string;
const codeFile = () => join(work, 'exit-code');

const services = (script: string) => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  loadBalancing: { strategy: weighted-round-robin }
  heartbeat: { ttlSeconds: 3 }
  healthCheck:
    exec: { command: [${JSON.stringify(script)}] }
    intervalSeconds: 1
    failureThreshold: 2
    successThreshold: 1
  config: { greeting: hello }
  dependencies: [{ name: pay, namespace: bank }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: pay, namespace: bank }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: thing, namespace: other }
spec: {}
`;

function startSidecar(operatorUrl: string, port: number, env: NodeJS.ProcessEnv = {}): Sidecar {
  const config = loadSidecarConfig({
    // Written for a copy of the whole registry (the default scope is `pod` since issue 15).
    MAXINE_DISCOVERY_SCOPE: 'cluster',
    MAXINE_SERVICE: 'web',
    MAXINE_POD_NAMESPACE: 'shop',
    MAXINE_POD_NAME: 'web-0',
    MAXINE_POD_IP: '127.0.0.1',
    MAXINE_APP_PORT: String(port),
    MAXINE_OPERATOR_URL: operatorUrl,
    MAXINE_LISTEN_PORT: '0',
    ...env,
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  return createSidecar(config, createLogger('warn', sink, 'sidecar'));
}

/** Registers instances directly with the operator (namespace, service, host). */
async function registerAll(list: readonly (readonly [string, string, string])[]): Promise<void> {
  for (const [namespace, service, host] of list) {
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service,
      namespace,
      host,
      port: 80,
      ttlSeconds: 3600,
    });
    expect(r.status).toBe(201);
  }
}

async function get(base: string, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(base + path);
  return { status: res.status, text: await res.text() };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-sidecar-'));
  const script = join(work, 'check.sh');
  await writeFile(script, `#!/bin/sh\necho "checked"\nexit $(cat ${codeFile()})\n`);
  await chmod(script, 0o755);
  await writeFile(codeFile(), '0');
  app = createServer((_req, res) => res.end('app'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as { port: number }).port;
  op = await startOperator({
    files: { 'shop.yaml': services(script) },
    config: { allowUndeclared: false, sweepIntervalMs: 100 },
  });
  // Other instances, registered directly.
  await registerAll([
    ['shop', 'web', '10.0.0.2'],
    ['shop', 'orders', '10.0.0.3'],
    ['shop', 'orders', '10.0.0.4'],
    ['bank', 'pay', '10.0.1.1'],
    ['other', 'thing', '10.0.2.1'],
  ]);
  sidecar = startSidecar(op.url, appPort);
  sidecarUrl = `http://127.0.0.1:${(await sidecar.start()).port}`;
  await sidecar.mirror.synchronised();
});

afterAll(async () => {
  await sidecar.stop();
  await op.stop();
  await new Promise((r) => app.close(r));
  await rm(work, { recursive: true, force: true });
});

describe('sidecar', () => {
  it('registers its instance and reports the health script result', async () => {
    const web = await eventually(async () => {
      const r = await api(op.url, 'GET', '/api/v1/services/shop/web');
      return r.body.items.length === 2 && sidecar.health()?.status === 'passing'
        ? r.body
        : undefined;
    }, 5000);
    const own = web.items.find((i: any) => i.host === '127.0.0.1');
    expect(own).toMatchObject({ metadata: { pod: 'web-0' }, lease: { ttlSeconds: 3 } });
    await eventually(async () => {
      const i = (await api(op.url, 'GET', `/api/v1/instances/${own.id}`)).body.instance;
      return i.health.output === 'checked\n';
    }, 5000);
  });

  it('answers discovery on localhost from its copy, as the operator does', async () => {
    // Same healthy set, same order, same bytes for the full list.
    await eventually(async () => {
      const local = await get(sidecarUrl, '/v1/discover/web?all=true');
      const remote = await get(op.url, '/api/v1/discover/shop/web?all=true');
      return local.status === 200 && local.text === remote.text;
    }, 5000);
    // The namespace defaults to the pod's; another namespace/name form works too.
    const orders = await get(sidecarUrl, '/v1/discover/shop/orders?all=true');
    expect(JSON.parse(orders.text).instances).toHaveLength(2);
    // The service's strategy applies: weighted round-robin alternates between the two.
    const picks = new Set<string>();
    for (let i = 0; i < 4; i++)
      picks.add(JSON.parse((await get(sidecarUrl, '/v1/discover/orders')).text).instance.host);
    expect(picks).toEqual(new Set(['10.0.0.3', '10.0.0.4']));
    // Filters and errors are the operator's.
    expect((await get(sidecarUrl, '/v1/discover/orders?version=v9')).status).toBe(404);
    expect((await get(sidecarUrl, '/v1/discover/orders?verison=v1')).status).toBe(400);
    expect((await get(sidecarUrl, '/v1/discover/nope')).status).toBe(404);
    expect((await get(sidecarUrl, '/v1/discover/Bad_Name')).status).toBe(400);
  });

  it('serves its service config and its health', async () => {
    expect(JSON.parse((await get(sidecarUrl, '/v1/config')).text)).toEqual({
      service: { namespace: 'shop', name: 'web' },
      config: { greeting: 'hello' },
    });
    const health = JSON.parse((await get(sidecarUrl, '/healthz')).text);
    expect(health).toMatchObject({
      ok: true,
      registration: { state: 'registered' },
      operator: { connected: true, synced: true },
      check: { status: 'passing' },
    });
  });

  it('a failing script takes the instance out of discovery within interval × threshold + a heartbeat', async () => {
    const ownId = () => sidecar.agent.instanceId ?? '';
    await writeFile(codeFile(), '2');
    const flipped = Date.now();
    await eventually(async () => {
      const r = await api(op.url, 'GET', `/api/v1/instances/${ownId()}`);
      return r.body.instance.health.status === 'critical';
    }, 6000);
    const took = Date.now() - flipped;
    // 1 s interval × 2 failures, plus the immediate heartbeat on the change, plus scheduling.
    expect(took).toBeLessThan(1000 * 2 + 1000 + 500);
    // The sidecar's own copy follows through the event stream.
    await eventually(async () => {
      const r = await get(sidecarUrl, '/v1/discover/web?all=true');
      return JSON.parse(r.text).instances.length === 1;
    }, 3000);
    // A warning (exit 1) is still discoverable; a pass restores it.
    await writeFile(codeFile(), '0');
    await eventually(async () => {
      const r = await get(sidecarUrl, '/v1/discover/web?all=true');
      return JSON.parse(r.text).instances?.length === 2;
    }, 4000);
  });

  it('keeps answering while the operator is down, and registers again when it is back', async () => {
    const port = Number(new URL(op.url).port);
    const files = { 'shop.yaml': await readFile(join(op.dir, 'shop.yaml'), 'utf8') };
    await op.stop();
    const before = await get(sidecarUrl, '/v1/discover/orders?all=true');
    expect(before.status).toBe(200);
    await eventually(() => Promise.resolve(!sidecar.mirror.status().connected), 3000);
    expect((await get(sidecarUrl, '/v1/discover/shop/orders?all=true')).text).toBe(before.text);
    // A new operator on the same port knows nothing of us: heartbeats get 404, we register again.
    op = await startOperator({ files, config: { port, allowUndeclared: false } });
    await eventually(async () => {
      const r = await api(op.url, 'GET', '/api/v1/services/shop/web');
      return r.status === 200 && r.body.items.length === 1;
    }, 8000);
    // The copy resyncs from the new operator (it has no orders instances now).
    await eventually(
      async () => (await get(sidecarUrl, '/v1/discover/orders')).status === 404,
      8000,
    );
  });

  it('deregisters when it stops', async () => {
    const id = sidecar.agent.instanceId;
    expect(id).toBeDefined();
    await sidecar.stop();
    expect((await api(op.url, 'GET', `/api/v1/instances/${id}`)).status).toBe(404);
    // Restart it for afterAll's stop.
    sidecar = startSidecar(op.url, (app.address() as { port: number }).port);
    sidecarUrl = `http://127.0.0.1:${(await sidecar.start()).port}`;
  });

  it('in namespace scope it mirrors only its namespace and the services its own declares it calls', async () => {
    // This operator was restarted above: register the other services' instances again.
    await registerAll([
      ['shop', 'orders', '10.0.0.3'],
      ['bank', 'pay', '10.0.1.1'],
      ['other', 'thing', '10.0.2.1'],
    ]);
    const scoped = startSidecar(op.url, 1, {
      MAXINE_DISCOVERY_SCOPE: 'namespace',
      MAXINE_POD_NAME: 'web-9',
    });
    const url = `http://127.0.0.1:${(await scoped.start()).port}`;
    try {
      // The dependency arrives once the sidecar has read its own spec and resubscribed.
      await eventually(async () => (await get(url, '/v1/discover/bank/pay')).status === 200, 5000);
      expect((await get(url, '/v1/discover/orders?all=true')).status).toBe(200);
      const outside = await get(url, '/v1/discover/other/thing');
      expect(outside.status).toBe(404);
      expect(JSON.parse(outside.text).error.code).toBe('SERVICE_NOT_FOUND');
      expect(scoped.mirror.state.size).toBe(3);
      // A cluster-scope sidecar sees everything.
      await eventually(
        async () => (await get(sidecarUrl, '/v1/discover/other/thing')).status === 200,
        3000,
      );
    } finally {
      await scoped.stop();
    }
  });

  it('answers unknown routes and wrong methods with catalog errors', async () => {
    const missing = await get(sidecarUrl, '/v2/nothing');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text).error.code).toBe('ROUTE_NOT_FOUND');
    const post = await fetch(`${sidecarUrl}/v1/discover/web`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});
