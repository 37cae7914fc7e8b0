/** The REST contract at the edge: the error catalog, limits, content types, OpenAPI, telemetry. */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
beforeAll(async () => {
  op = await startOperator({ config: { bodyLimitBytes: 1024 } });
});
afterAll(async () => op.stop());

async function raw(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(op.url + path, { method, body, headers });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, headers: res.headers };
}

describe('error catalog', () => {
  it.each([
    [
      'malformed JSON',
      'POST',
      '/api/v1/instances',
      '{"service":',
      { 'content-type': 'application/json' },
      400,
      'MALFORMED_JSON',
    ],
    [
      'a body that is not JSON',
      'POST',
      '/api/v1/instances',
      'service=x',
      { 'content-type': 'application/x-www-form-urlencoded' },
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a body over the limit',
      'POST',
      '/api/v1/instances',
      JSON.stringify({ service: 'a', host: 'h', port: 1, metadata: { k: 'x'.repeat(2000) } }),
      { 'content-type': 'application/json' },
      413,
      'BODY_TOO_LARGE',
    ],
    ['a missing body', 'POST', '/api/v1/instances', undefined, {}, 400, 'VALIDATION_FAILED'],
    [
      'an unknown field',
      'POST',
      '/api/v1/instances',
      JSON.stringify({ service: 'a', host: 'h', port: 1, colour: 'red' }),
      { 'content-type': 'application/json' },
      400,
      'VALIDATION_FAILED',
    ],
    [
      'a JSON array',
      'POST',
      '/api/v1/instances',
      '[]',
      { 'content-type': 'application/json' },
      400,
      'VALIDATION_FAILED',
    ],
    ['an unknown route', 'GET', '/api/v2/nothing', undefined, {}, 404, 'ROUTE_NOT_FOUND'],
    ['a wrong method', 'PATCH', '/api/v1/instances', undefined, {}, 405, 'METHOD_NOT_ALLOWED'],
    [
      'a wrong method on discovery',
      'POST',
      '/api/v1/discover/a/b',
      undefined,
      {},
      405,
      'METHOD_NOT_ALLOWED',
    ],
    [
      'an invalid namespace in discovery',
      'GET',
      '/api/v1/discover/Not_Valid/b',
      undefined,
      {},
      400,
      'VALIDATION_FAILED',
    ],
    [
      'bad percent-encoding in discovery',
      'GET',
      '/api/v1/discover/%E0%A4%A/b',
      undefined,
      {},
      400,
      'VALIDATION_FAILED',
    ],
    [
      'bad percent-encoding in a REST path',
      'GET',
      '/api/v1/instances/%E0%A4%A',
      undefined,
      {},
      400,
      'VALIDATION_FAILED',
    ],
    [
      'a repeated query parameter',
      'GET',
      '/api/v1/discover/a/b?zone=x&zone=y',
      undefined,
      {},
      400,
      'VALIDATION_FAILED',
    ],
    [
      'an unknown service',
      'GET',
      '/api/v1/services/shop/nothing',
      undefined,
      {},
      404,
      'SERVICE_NOT_FOUND',
    ],
    [
      'an invalid namespace filter',
      'GET',
      '/api/v1/services?namespace=UPPER',
      undefined,
      {},
      400,
      'VALIDATION_FAILED',
    ],
  ] as const)('%s', async (_name, method, path, body, headers, status, code) => {
    const res = await raw(method, path, body, headers);
    expect(res.status).toBe(status);
    expect(res.json.error.code).toBe(code);
    expect(typeof res.json.error.message).toBe('string');
  });

  it('names every validation issue', async () => {
    const res = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'UPPER',
      host: 'has space',
      port: 0,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'host',
      'port',
      'service',
    ]);
  });

  it('answers 409 when an id belongs to another service', async () => {
    await api(op.url, 'POST', '/api/v1/instances', {
      id: 'pod-7',
      service: 'a',
      host: 'h',
      port: 1,
    });
    const res = await api(op.url, 'POST', '/api/v1/instances', {
      id: 'pod-7',
      service: 'b',
      host: 'h',
      port: 1,
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('INSTANCE_CONFLICT');
  });
});

describe('discovery over HTTP', () => {
  it('takes the hash key from the header the service names, answers HEAD, and 404s all=true with none healthy', async () => {
    await op.write(
      'sticky.yaml',
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: sticky, namespace: d }\nspec: { loadBalancing: { strategy: consistent-hash, hashKey: "header:x-user-id" } }\n',
    );
    await eventually(
      async () => (await api(op.url, 'GET', '/api/v1/services/d/sticky')).status === 200,
    );
    for (const host of ['h1', 'h2', 'h3'])
      await api(op.url, 'POST', '/api/v1/instances', {
        service: 'sticky',
        namespace: 'd',
        host,
        port: 1,
      });
    const pick = async (user: string) =>
      (
        (await (
          await fetch(`${op.url}/api/v1/discover/d/sticky`, { headers: { 'x-user-id': user } })
        ).json()) as any
      ).instance.host;
    const first = await pick('alice');
    for (let i = 0; i < 5; i++) expect(await pick('alice')).toBe(first);
    const noKey = await api(op.url, 'GET', '/api/v1/discover/d/sticky');
    expect(noKey.status).toBe(400);
    expect(noKey.body.error.code).toBe('HASH_KEY_REQUIRED');

    const head = await fetch(`${op.url}/api/v1/discover/d/sticky?key=k`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);

    const none = await api(op.url, 'GET', '/api/v1/discover/d/sticky?all=true&zone=nowhere');
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('NO_HEALTHY_INSTANCE');
  });

  it('answers other methods on the event stream with 405', async () => {
    const res = await raw('POST', '/api/v1/events');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });
});

describe('service reads', () => {
  it('lists services with counts and shows one with its instances', async () => {
    await api(op.url, 'POST', '/api/v1/instances', {
      service: 'reads',
      namespace: 'r',
      host: 'h1',
      port: 1,
    });
    const list = await api(op.url, 'GET', '/api/v1/services?namespace=r');
    expect(list.body.services).toEqual([
      {
        namespace: 'r',
        name: 'reads',
        declared: false,
        instances: { total: 1, passing: 1, warning: 0, critical: 0 },
      },
    ]);
    const one = await api(op.url, 'GET', '/api/v1/services/r/reads');
    expect(one.body).toMatchObject({ name: 'reads', items: [{ host: 'h1' }] });
  });
});

describe('operations endpoints', () => {
  it('serves an OpenAPI document that lists every endpoint', async () => {
    const res = await api(op.url, 'GET', '/api/v1/openapi.json');
    expect(res.body.openapi).toBe('3.0.3');
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/instances',
        '/api/v1/instances/{id}/heartbeat',
        '/api/v1/instances/{id}',
        '/api/v1/services',
        '/api/v1/services/{namespace}/{name}',
        '/api/v1/discover/{namespace}/{name}',
        '/api/v1/events',
        '/api/v1/intentions/check',
        '/api/v1/audit',
      ]),
    );
    expect(res.body.components.securitySchemes.bearer).toMatchObject({ scheme: 'bearer' });
    expect(res.body.paths['/healthz'].get.security).toEqual([]);
    expect(res.body.components.schemas.RegisterRequest.required).toEqual(
      expect.arrayContaining(['service', 'host', 'port']),
    );
  });

  it('exposes maxine_ metrics, including the discovery route', async () => {
    await api(op.url, 'POST', '/api/v1/instances', {
      service: 'm',
      namespace: 'metrics',
      host: 'h',
      port: 1,
    });
    await api(op.url, 'GET', '/api/v1/discover/metrics/m');
    const text = await (await fetch(`${op.url}/metrics`)).text();
    for (const name of [
      'maxine_services',
      'maxine_instances{health="passing"}',
      'maxine_registrations_total',
      'maxine_heartbeats_total',
      'maxine_evictions_total',
      'maxine_mass_expiry_guard_active',
      'maxine_http_request_duration_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(
      /maxine_http_request_duration_seconds_count\{route="\/api\/v1\/discover\/:namespace\/:name",method="GET",status="200"\} [1-9]/,
    );
    expect(text).toMatch(
      /maxine_http_request_duration_seconds_count\{route="\/api\/v1\/instances",method="POST",status="201"\} [1-9]/,
    );
  });

  it('answers healthz and readyz, and echoes a request id', async () => {
    expect((await api(op.url, 'GET', '/healthz')).body).toMatchObject({ status: 'ok' });
    expect((await api(op.url, 'GET', '/readyz')).status).toBe(200);
    const res = await fetch(`${op.url}/api/v1/services`, {
      headers: { 'x-request-id': 'req-123' },
    });
    expect(res.headers.get('x-request-id')).toBe('req-123');
    const logged = op.logs.find((l) => l.reqId === 'req-123' && l.msg === 'request completed');
    expect(logged).toBeDefined();
  });

  it('refuses a malformed HTTP request line with 400 and keeps serving', async () => {
    const { port } = new URL(op.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        method: 'GET',
        path: '/healthz',
        headers: { 'bad header': 'x' },
      });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', reject);
      req.end();
    }).catch(() => 400);
    expect(status).toBe(400);
    expect((await api(op.url, 'GET', '/healthz')).status).toBe(200);
  });
});
