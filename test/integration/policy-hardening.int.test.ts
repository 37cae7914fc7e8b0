/**
 * Findings of the hostile review on policy and identity (issue 12), each over real sockets:
 * the discovery cache key cannot be forged, instance endpoints do not reveal other tenants'
 * instances, static-token and JWT users do not share a name space, intentions hold callers to
 * their real identity, and an ACL deny takes away every verb it implies.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

interface Reply {
  status: number;
  body: any;
}

async function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(opts.token !== undefined && { authorization: `Bearer ${opts.token}` }),
      ...(opts.body !== undefined && { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

describe('discovery cache key', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({ config: { anonymous: true } });
  });
  afterAll(async () => {
    await op.stop();
  });

  it('a forged metadata value cannot poison the answer of another filter', async () => {
    const reg = await call(op.url, 'POST', '/api/v1/instances', {
      body: {
        service: 'web',
        namespace: 'shop',
        host: '10.0.0.1',
        port: 80,
        metadata: { a: 'x', b: 'y' },
      },
    });
    expect(reg.status).toBe(201);
    // The poisoning request: one metadata filter whose value carries the old separator.
    const forged = await call(op.url, 'GET', '/api/v1/discover/shop/web?meta.a=x%01b%3Dy');
    expect(forged.status).toBe(404);
    // Every other caller's honest query still finds the instance.
    const honest = await call(op.url, 'GET', '/api/v1/discover/shop/web?meta.a=x&meta.b=y');
    expect(honest.status).toBe(200);
    expect(honest.body.instance.metadata).toEqual({ a: 'x', b: 'y' });
    // And the other way round: the honest answer does not leak into the forged filter.
    expect((await call(op.url, 'GET', '/api/v1/discover/shop/web?meta.a=x%01b%3Dy')).status).toBe(
      404,
    );
  });
});
