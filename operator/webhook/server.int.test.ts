import { request as httpsRequest, Agent } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { generateCa, generateServingCert } from './certs.js';
import type { CertificateAuthority, ServingCertificate } from './certs.js';
import { applyJsonPatch } from './json-patch.js';
import { injectionConfigSchema } from '../../common/injection-patch.js';
import type { SelectingService } from '../../common/injection-patch.js';
import { createWebhookServer, setWebhookTls } from './server.js';

const MAX_BODY = 64 * 1024;

let ca: CertificateAuthority;
let leaf: ServingCertificate;
let server: Server;
let port: number;
const logs: any[] = [];
const prom = new PromRegistry();

beforeAll(async () => {
  ca = await generateCa();
  leaf = await generateServingCert({ ca, dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line));
      done();
    },
  });
  server = createWebhookServer({
    tls: { cert: leaf.certPem, key: leaf.keyPem },
    logger: createLogger('debug', destination),
    servicesIn: (namespace): SelectingService[] =>
      namespace === 'shop'
        ? [
            { name: 'shop', selector: { app: 'shop' } },
            { name: 'web', selector: { tier: 'web' } },
          ]
        : [],
    config: injectionConfigSchema.parse({ image: 'example.test/sidecar:1' }),
    maxBodyBytes: MAX_BODY,
    prom,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  logs.length = 0;
});

interface Reply {
  status: number;
  headers: Record<string, unknown>;
  body: any;
  peer: X509Certificate;
}

interface Call {
  path: string;
  method?: string;
  /** An object is sent as JSON; a string or Buffer as is. */
  body?: unknown;
  headers?: Record<string, string | number>;
  /** The only CA the client trusts; the webhook's by default. */
  trust?: string;
  agent?: Agent | false;
}

function call({ path, method = 'POST', body, headers = {}, trust, agent = false }: Call) {
  const payload =
    body === undefined
      ? undefined
      : typeof body === 'string' || Buffer.isBuffer(body)
        ? body
        : JSON.stringify(body);
  return new Promise<Reply>((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        ca: trust ?? ca.certPem,
        agent,
        headers: {
          ...(payload !== undefined && {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          }),
          ...headers,
        },
      },
      (res) => {
        const peer = new X509Certificate((res.socket as any).getPeerCertificate(false).raw);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text === '' ? undefined : JSON.parse(text),
            peer,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function review(object: unknown, request: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      dryRun: false,
      ...request,
    },
  };
}

function pod(
  annotations?: Record<string, string>,
  labels: Record<string, string> = { app: 'shop' },
) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'shop-5c7d8-', labels, ...(annotations && { annotations }) },
    spec: {
      containers: [{ name: 'app', image: 'example.test/shop:1', ports: [{ containerPort: 8080 }] }],
      serviceAccountName: 'shop',
    },
  };
}

const decode = (patch: string): any[] => JSON.parse(Buffer.from(patch, 'base64').toString());

describe('webhook server', () => {
  it('answers GET /healthz', async () => {
    const reply = await call({ path: '/healthz', method: 'GET' });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ status: 'ok' });
  });

  it('injects a pod that opted in by annotation, with a patch that applies', async () => {
    const object = pod({ 'maxine.io/inject': 'true' });
    const reply = await call({ path: '/inject', body: review(object) });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.body.apiVersion).toBe('admission.k8s.io/v1');
    expect(reply.body.kind).toBe('AdmissionReview');
    const { response } = reply.body;
    expect(response).toMatchObject({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
      patchType: 'JSONPatch',
    });
    expect(response.warnings).toBeUndefined();
    const patched: any = applyJsonPatch(object, decode(response.patch));
    expect(patched.spec.initContainers).toHaveLength(1);
    const sidecar = patched.spec.initContainers[0];
    expect(sidecar).toMatchObject({
      name: 'maxine-sidecar',
      image: 'example.test/sidecar:1',
      restartPolicy: 'Always',
    });
    expect(sidecar.env).toContainEqual({ name: 'MAXINE_SERVICE', value: 'shop' });
    expect(patched.spec.containers).toEqual(object.spec.containers);
    expect(patched.metadata.annotations['maxine.io/status']).toBe('injected');
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'info',
        namespace: 'shop',
        pod: 'shop-5c7d8-*',
        service: 'shop',
        msg: 'sidecar injected into shop/shop-5c7d8-* for service shop',
      }),
    );
  });

  it.each([
    ['/inject/namespace', true],
    ['/inject?namespace=enabled', true],
    ['/inject', false],
  ])('POST %s treats the namespace as opted in: %s', async (path, injected) => {
    const reply = await call({ path, body: review(pod()) });
    expect(reply.status).toBe(200);
    expect(reply.body.response.allowed).toBe(true);
    expect(reply.body.response.patchType !== undefined).toBe(injected);
    expect(reply.body.response.patch !== undefined).toBe(injected);
  });

  it('allows without a patch, and warns, when the pod is ambiguous', async () => {
    const object = pod({ 'maxine.io/inject': 'true' }, { app: 'shop', tier: 'web' });
    const reply = await call({ path: '/inject', body: review(object) });
    expect(reply.body.response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
      warnings: ['maxine: not injected: services shop, web select this pod; set maxine.io/service'],
    });
    expect(logs).toContainEqual(
      expect.objectContaining({ level: 'warn', pod: 'shop-5c7d8-*', namespace: 'shop' }),
    );
  });

  it('does not inject again on re-invocation', async () => {
    const object = pod({ 'maxine.io/inject': 'true' });
    const first = await call({ path: '/inject', body: review(object) });
    const patched = applyJsonPatch(object, decode(first.body.response.patch));
    const again = await call({ path: '/inject', body: review(patched) });
    expect(again.body.response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
  });

  it.each([
    [
      'a Deployment',
      review(
        { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'shop' } },
        { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
      ),
    ],
    ['a Pod UPDATE', review(pod({ 'maxine.io/inject': 'true' }), { operation: 'UPDATE' })],
    ['a Pod DELETE', review(undefined, { operation: 'DELETE', name: 'shop-0' })],
    [
      'a pods subresource',
      review(
        { kind: 'Binding' },
        { subResource: 'binding', kind: { group: '', version: 'v1', kind: 'Binding' } },
      ),
    ],
  ])('allows %s unchanged', async (_name, body) => {
    const reply = await call({ path: '/inject', body });
    expect(reply.status).toBe(200);
    expect(reply.body.response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
  });

  it.each([
    ['not JSON', '{"apiVersion":', 'MALFORMED_JSON', undefined],
    ['no body', undefined, 'VALIDATION_FAILED', ''],
    ['a JSON array', [], 'VALIDATION_FAILED', ''],
    [
      'an old review version',
      { ...review(pod()), apiVersion: 'admission.k8s.io/v1beta1' },
      'VALIDATION_FAILED',
      'apiVersion',
    ],
    [
      'a request without uid',
      { ...review(pod()), request: { ...review(pod()).request, uid: undefined } },
      'VALIDATION_FAILED',
      'request.uid',
    ],
    [
      'a pod whose labels are not strings',
      review({ metadata: { labels: { app: 1 } }, spec: {} }),
      'VALIDATION_FAILED',
      'request.object.metadata.labels.app',
    ],
    [
      'a pod whose containers have no name',
      review({ metadata: {}, spec: { containers: [{}] } }),
      'VALIDATION_FAILED',
      'request.object.spec.containers[0].name',
    ],
  ])('answers 400 to %s', async (_name, body, code, path) => {
    const reply = await call({ path: '/inject', body });
    expect(reply.status).toBe(400);
    expect(reply.body.error.code).toBe(code);
    if (path !== undefined)
      expect(reply.body.error.details.issues).toContainEqual(expect.objectContaining({ path }));
  });

  it('answers 415 to a body that is not JSON by its type', async () => {
    const reply = await call({
      path: '/inject',
      body: 'x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(reply.status).toBe(415);
  });

  it('answers 413 to a body over the limit, by Content-Length', async () => {
    const huge = JSON.stringify(review({ metadata: { annotations: { x: 'y'.repeat(MAX_BODY) } } }));
    const reply = await call({ path: '/inject', body: huge });
    expect(reply.status).toBe(413);
    expect(reply.body.error.code).toBe('BODY_TOO_LARGE');
    expect(reply.headers.connection).toBe('close');
  });

  it('answers 413 to a chunked body that grows over the limit', async () => {
    const huge = JSON.stringify(review({ metadata: { annotations: { x: 'y'.repeat(MAX_BODY) } } }));
    const reply = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/inject',
          method: 'POST',
          ca: ca.certPem,
          agent: false,
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write(huge.slice(0, MAX_BODY / 2));
      req.end(huge.slice(MAX_BODY / 2));
    });
    expect(reply).toBe(413);
  });

  it('answers 404 to an unknown path and 405 to a wrong method', async () => {
    expect((await call({ path: '/mutate', body: review(pod()) })).status).toBe(404);
    const wrong = await call({ path: '/inject', method: 'GET' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('POST');
  });

  it('is refused by a client that trusts another CA', async () => {
    const stranger = await generateCa();
    await expect(
      call({ path: '/healthz', method: 'GET', trust: stranger.certPem }),
    ).rejects.toThrow(/self.signed|unable to verify|certificate/i);
  });

  it('serves a rotated certificate on new connections; open ones keep theirs', async () => {
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem });
    try {
      const before = await call({ path: '/healthz', method: 'GET', agent: keepAlive });
      expect(before.peer.fingerprint256).toBe(new X509Certificate(leaf.certPem).fingerprint256);

      const nextCa = await generateCa();
      const next = await generateServingCert({
        ca: nextCa,
        dnsNames: ['localhost'],
        ips: ['127.0.0.1'],
      });
      setWebhookTls(server, { cert: next.certPem, key: next.keyPem });

      const fresh = await call({ path: '/healthz', method: 'GET', trust: nextCa.certPem });
      expect(fresh.status).toBe(200);
      expect(fresh.peer.fingerprint256).toBe(new X509Certificate(next.certPem).fingerprint256);
      await expect(call({ path: '/healthz', method: 'GET' })).rejects.toThrow();

      const reused = await call({ path: '/healthz', method: 'GET', agent: keepAlive });
      expect(reused.peer.fingerprint256).toBe(before.peer.fingerprint256);

      // Back to the first certificate for the other tests.
      setWebhookTls(server, { cert: leaf.certPem, key: leaf.keyPem });
      expect((await call({ path: '/healthz', method: 'GET' })).status).toBe(200);
    } finally {
      keepAlive.destroy();
    }
  });
});

describe('webhook metrics', () => {
  /** The value of one sample of the exposition, 0 when absent. */
  async function sample(name: string, labels = ''): Promise<number> {
    const text = await prom.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? 0 : Number(line.split(' ')[1]);
  }
  const reviews = (outcome: string) =>
    sample('maxine_webhook_reviews_total', `{outcome="${outcome}"}`);

  it('exposes every review outcome from the start, and counts each one', async () => {
    const text = await prom.metrics();
    for (const outcome of ['injected', 'not_injected', 'unchanged', 'refused', 'error'])
      expect(text).toContain(`maxine_webhook_reviews_total{outcome="${outcome}"}`);
    const before = {
      injected: await reviews('injected'),
      not_injected: await reviews('not_injected'),
      unchanged: await reviews('unchanged'),
      refused: await reviews('refused'),
    };
    await call({ path: '/inject', body: review(pod({ 'maxine.io/inject': 'true' })) });
    await call({ path: '/inject', body: review(pod()) });
    await call({ path: '/inject', body: review(pod(), { operation: 'DELETE' }) });
    await call({ path: '/inject', body: { apiVersion: 'v1' } });
    expect(await reviews('injected')).toBe(before.injected + 1);
    expect(await reviews('not_injected')).toBe(before.not_injected + 1);
    expect(await reviews('unchanged')).toBe(before.unchanged + 1);
    expect(await reviews('refused')).toBe(before.refused + 1);
  });

  it('counts a TLS handshake a client gives up on', async () => {
    const before = await sample('maxine_webhook_tls_errors_total');
    const stranger = await generateCa();
    await expect(
      call({ path: '/healthz', method: 'GET', trust: stranger.certPem }),
    ).rejects.toThrow();
    for (let i = 0; i < 50 && (await sample('maxine_webhook_tls_errors_total')) === before; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await sample('maxine_webhook_tls_errors_total')).toBe(before + 1);
  });
});
