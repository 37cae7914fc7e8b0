/**
 * The sidecar's `/v1/mesh/{mesh}` and `MAXINE_MESH_DIR` against a real operator in standalone
 * mode over real sockets: the pod's own service's render as JSON and YAML, the enabled meshes
 * written to the folder, both following intention and spec changes made in the operator's
 * resource folder (with the periodic refresh off, so only the event stream can cause it), and
 * the last answer served once the operator is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseAllDocuments } from 'yaml';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { createLogger } from '../../common/logger.js';
import { eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const SERVICES = (mesh: string) => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  serviceAccount: web
  ports: [{ name: http, port: 8080 }]
  mesh: ${mesh}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: front, namespace: shop }
spec:
  selector: { app: front }
  serviceAccount: front
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: admin, namespace: shop }
spec:
  selector: { app: admin }
  serviceAccount: admin
`;

const INTENTION = (source: string) => `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: web-callers, namespace: shop }
spec:
  destination: { name: web }
  sources:
    - { name: ${source}, action: deny }
`;

interface Rendered {
  mesh: string;
  enabled: boolean;
  objects: { kind: string; metadata: { name: string; namespace: string }; spec: any }[];
  differences: unknown[];
}

let op: TestOperator;
let operatorStopped = false;
let sidecar: Sidecar;
let url: string;
let work: string;
let meshDir: string;

function startSidecar(operatorUrl: string, env: NodeJS.ProcessEnv = {}): Sidecar {
  const config = loadSidecarConfig({
    MAXINE_SERVICE: 'web',
    MAXINE_POD_NAMESPACE: 'shop',
    MAXINE_POD_NAME: 'web-0',
    MAXINE_POD_IP: '127.0.0.1',
    MAXINE_OPERATOR_URL: operatorUrl,
    MAXINE_LISTEN_PORT: '0',
    ...env,
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  return createSidecar(config, createLogger('silent', sink, 'sidecar'));
}

async function get(
  path: string,
  init: RequestInit = {},
  base = url,
): Promise<{ status: number; type: string | null; headers: Headers; text: string }> {
  const res = await fetch(base + path, init);
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    headers: res.headers,
    text: await res.text(),
  };
}

async function meshJson(mesh: string): Promise<Rendered> {
  const res = await get(`/v1/mesh/${mesh}`);
  expect(res.status).toBe(200);
  expect(res.type).toBe('application/json');
  return JSON.parse(res.text) as Rendered;
}

const kinds = (r: Rendered) => r.objects.map((o) => `${o.kind}/${o.metadata.name}`);
const denied = (r: Rendered) =>
  r.objects.find((o) => o.kind === 'AuthorizationPolicy')?.spec.rules[0].from[0].source.principals;
const files = async () => (await readdir(meshDir)).sort();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-sidecar-mesh-'));
  // Not there yet: the sidecar creates it.
  meshDir = join(work, 'mesh');
  op = await startOperator({
    files: { 'services.yaml': SERVICES('{ istio: true }'), 'intentions.yaml': INTENTION('front') },
  });
  sidecar = startSidecar(op.url, {
    MAXINE_MESH_DIR: meshDir,
    // Only changes announced on the event stream may cause a new fetch.
    MAXINE_MESH_REFRESH_SECONDS: '0',
  });
  url = `http://127.0.0.1:${(await sidecar.start()).port}`;
  await sidecar.mirror.synchronised();
  await eventually(() => Promise.resolve(sidecar.mesh.status().ready), 5000, 'first fetch');
  // Its own registration (outside a cluster: an external endpoint) is in the render once
  // fetched again; settle that first so that the answers below do not change under the test.
  await eventually(() => Promise.resolve(sidecar.agent.state === 'registered'), 5000);
  await sidecar.mesh.refresh();
});

afterAll(async () => {
  await sidecar.stop();
  if (!operatorStopped) await op.stop();
  await rm(work, { recursive: true, force: true });
});

describe('sidecar /v1/mesh/{mesh}', () => {
  it('answers JSON with its own service render: the DestinationRule and the AuthorizationPolicy', async () => {
    const istio = await meshJson('istio');
    expect(istio.mesh).toBe('istio');
    expect(istio.enabled).toBe(true);
    expect(kinds(istio)).toEqual(
      expect.arrayContaining(['DestinationRule/web', 'AuthorizationPolicy/web-deny']),
    );
    const rule = istio.objects.find((o) => o.kind === 'DestinationRule')!;
    expect(rule.metadata.namespace).toBe('shop');
    expect(rule.spec.host).toBe('web.shop.svc.cluster.local');
    const policy = istio.objects.find((o) => o.kind === 'AuthorizationPolicy')!;
    expect(policy.spec).toEqual({
      selector: { matchLabels: { app: 'web' } },
      action: 'DENY',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/front'] } }] }],
    });
    // The sidecar's own registration is an endpoint outside the cluster.
    const entry = istio.objects.find((o) => o.kind === 'ServiceEntry');
    expect(entry?.spec.endpoints).toEqual([expect.objectContaining({ address: '127.0.0.1' })]);
    const linkerd = await meshJson('linkerd');
    expect(linkerd).toMatchObject({ mesh: 'linkerd', enabled: false });
    expect(linkerd.objects.length).toBeGreaterThan(0);
  });

  it('answers the YAML stream by Accept, the same objects as its JSON', async () => {
    const json = await meshJson('istio');
    const res = await get('/v1/mesh/istio', { headers: { accept: 'application/yaml' } });
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/yaml; charset=utf-8');
    expect(res.text).toMatch(/^# istio: \d+ objects rendered by Maxine\n/);
    expect(res.text).toContain('kind: AuthorizationPolicy');
    const docs = parseAllDocuments(res.text).map((d) => d.toJS() as unknown);
    expect(docs).toEqual(json.objects);
    // HEAD: the headers of GET, no body.
    const head = await get('/v1/mesh/istio', { method: 'HEAD', headers: { accept: 'text/yaml' } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(res.text)));
    expect(head.text).toBe('');
  });

  it('writes istio.yaml (enabled) to MAXINE_MESH_DIR, and no linkerd.yaml (not enabled)', async () => {
    expect(await files()).toEqual(['istio.yaml']);
    const served = await get('/v1/mesh/istio', { headers: { accept: 'application/yaml' } });
    expect(await readFile(join(meshDir, 'istio.yaml'), 'utf8')).toBe(served.text);
    expect(served.text).toContain('cluster.local/ns/shop/sa/front');
  });

  it('follows a change of the intention naming its service: answer and file', async () => {
    await op.write('intentions.yaml', INTENTION('admin'));
    const changed = await eventually(
      async () => {
        const istio = await meshJson('istio');
        return denied(istio)?.[0] === 'cluster.local/ns/shop/sa/admin' ? istio : undefined;
      },
      5000,
      'the new intention in the sidecar',
    );
    expect(denied(changed)).toEqual(['cluster.local/ns/shop/sa/admin']);
    // Now as the operator renders it, byte for byte.
    const yaml = await get('/v1/mesh/istio', { headers: { accept: 'application/yaml' } });
    const fromOperator = await get(
      '/api/v1/services/shop/web/mesh/istio',
      { headers: { accept: 'application/yaml' } },
      op.url,
    );
    expect(yaml.text).toBe(fromOperator.text);
    await eventually(
      async () => (await readFile(join(meshDir, 'istio.yaml'), 'utf8')) === yaml.text,
      3000,
      'the new intention in istio.yaml',
    );
    expect(await readFile(join(meshDir, 'istio.yaml'), 'utf8')).toContain(
      'cluster.local/ns/shop/sa/admin',
    );
    expect(await files()).toEqual(['istio.yaml']);
  });

  it('follows a change of its spec.mesh: the disabled mesh file goes, the enabled one comes', async () => {
    await op.write('services.yaml', SERVICES('{ linkerd: true }'));
    await eventually(
      async () => JSON.stringify(await files()) === '["linkerd.yaml"]',
      5000,
      'linkerd.yaml only',
    );
    expect((await meshJson('istio')).enabled).toBe(false);
    const linkerd = await meshJson('linkerd');
    expect(linkerd.enabled).toBe(true);
    expect(kinds(linkerd)).toContain('Server/web-http');
    const served = await get('/v1/mesh/linkerd', { headers: { accept: 'application/yaml' } });
    expect(await readFile(join(meshDir, 'linkerd.yaml'), 'utf8')).toBe(served.text);
  });

  it('refuses unknown meshes and other methods with catalog errors', async () => {
    const unknown = await get('/v1/mesh/consul');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.text).error.code).toBe('ROUTE_NOT_FOUND');
    expect((await get('/v1/mesh/istio/extra')).status).toBe(404);
    const post = await get('/v1/mesh/istio', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(JSON.parse(post.text).error.code).toBe('METHOD_NOT_ALLOWED');
  });

  it('answers 503 MESH_NOT_READY before its first fetch (no operator to ask)', async () => {
    const lonely = startSidecar('http://127.0.0.1:1', { MAXINE_POD_NAME: 'web-9' });
    const base = `http://127.0.0.1:${(await lonely.start()).port}`;
    try {
      const res = await get('/v1/mesh/istio', {}, base);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(JSON.parse(res.text).error).toEqual({
        code: 'MESH_NOT_READY',
        message: 'The mesh configuration has not been fetched from the operator yet; retry shortly',
      });
      expect(lonely.mesh.status()).toMatchObject({ ready: false });
    } finally {
      await lonely.stop();
    }
  });

  it('keeps serving the last answer, and keeps the file, once the operator is gone', async () => {
    const before = await get('/v1/mesh/linkerd', { headers: { accept: 'application/yaml' } });
    const json = await get('/v1/mesh/linkerd');
    await op.stop();
    operatorStopped = true;
    await eventually(() => Promise.resolve(!sidecar.mirror.status().connected), 3000);
    // A fetch now fails (the reconnecting stream or a resync would cause one).
    await sidecar.mesh.refresh();
    expect(sidecar.mesh.status().failures).toBeGreaterThanOrEqual(1);
    expect(sidecar.mesh.status().lastError).toMatch(/ECONNREFUSED|socket|connect/);
    const after = await get('/v1/mesh/linkerd', { headers: { accept: 'application/yaml' } });
    expect(after.status).toBe(200);
    expect(after.text).toBe(before.text);
    expect((await get('/v1/mesh/linkerd')).text).toBe(json.text);
    expect(await files()).toEqual(['linkerd.yaml']);
    expect(await readFile(join(meshDir, 'linkerd.yaml'), 'utf8')).toBe(before.text);
  });
});
