/**
 * The outbound proxy engine over real sockets: the path form `ANY /v1/proxy/{service}[.{ns}]/...`
 * of the sidecar's localhost server, forwarding to real upstream node:http servers.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { AttemptOutcome, CallRecord } from './hooks.js';
import { CLIENT_CLOSED, MAX_REPLAY_BYTES } from './engine.js';
import {
  call,
  delay,
  instance,
  json,
  rawExchange,
  Routes,
  startProxy,
  startUpstream,
} from '../../test/helpers/proxy.js';
import type { ProxyRig, Upstream } from '../../test/helpers/proxy.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
async function upstream(handler: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
  const up = await startUpstream(handler);
  cleanups.push(() => up.close());
  return up;
}
async function proxy(...args: Parameters<typeof startProxy>): Promise<ProxyRig> {
  const rig = await startProxy(...args);
  cleanups.push(() => rig.close());
  return rig;
}
const echo = (name: string) =>
  upstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          name,
          method: req.method,
          url: req.url,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
  });

/** Records every hook call the retry and breaker cases assert on. */
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
    },
  };
}

const retryOn5xxAndFailures = {
  retryPolicy: {
    retryable: (_s: unknown, _m: string, outcome: AttemptOutcome, tries: number) =>
      tries < 3 && (outcome.kind !== 'response' || outcome.status >= 500),
  },
  retryBudget: { onCall: () => undefined, tryRetry: () => true },
};

describe('path form: /v1/proxy/{service}[.{namespace}]/{path}', () => {
  it('forwards method, path, query and body to an instance and returns its answer', async () => {
    const a = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', a.port)]);
    routes.set('billing', 'invoices', [instance('a', a.port)]);
    const rig = await proxy(routes);

    const post = await call(rig.port, '/v1/proxy/orders/items/42?x=1&y=2', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(post.status).toBe(200);
    expect(json(post)).toEqual({
      name: 'a',
      method: 'POST',
      url: '/items/42?x=1&y=2',
      body: 'hello',
    });
    expect(a.seen[0]!.headers.host).toBe('orders.shop');

    const other = await call(rig.port, '/v1/proxy/invoices.billing?q=1', { method: 'DELETE' });
    expect(json(other)).toMatchObject({ method: 'DELETE', url: '/?q=1' });
    expect(a.seen[1]!.headers.host).toBe('invoices.billing');
  });

  it('passes the upstream status and end-to-end headers back', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(418, [
        'X-Answer',
        'one',
        'Set-Cookie',
        'a=1',
        'Set-Cookie',
        'b=2',
        'Content-Length',
        '2',
      ]);
      res.end('no');
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes);
    const answer = await call(rig.port, '/v1/proxy/orders/');
    expect(answer.status).toBe(418);
    expect(answer.body).toBe('no');
    expect(answer.headers['x-answer']).toBe('one');
    expect(answer.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('strips hop-by-hop headers both ways, and those Connection names', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, [
        'Connection',
        'x-up-private',
        'X-Up-Private',
        'secret',
        'Proxy-Authenticate',
        'Basic',
        'Trailer',
        'x-t',
        'Upgrade',
        'h2c',
        'X-Up-Public',
        'yes',
      ]);
      res.end('ok');
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes);
    const answer = await call(rig.port, '/v1/proxy/orders/h', {
      headers: [
        'Host',
        '127.0.0.1',
        'Connection',
        'keep-alive, X-Private',
        'X-Private',
        'drop me',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Authorization',
        'Basic abc',
        'Proxy-Connection',
        'keep-alive',
        'TE',
        'trailers',
        'X-Public',
        'keep me',
        'traceparent',
        '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      ],
    });
    const seen = up.seen[0]!.headers;
    for (const name of [
      'x-private',
      'keep-alive',
      'proxy-authorization',
      'proxy-connection',
      'te',
      'upgrade',
    ]) {
      expect(seen[name]).toBeUndefined();
    }
    expect(seen['x-public']).toBe('keep me');
    // No tracer composed: the caller's trace context goes upstream unchanged.
    expect(seen.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(answer.headers['x-up-private']).toBeUndefined();
    expect(answer.headers['proxy-authenticate']).toBeUndefined();
    expect(answer.headers.trailer).toBeUndefined();
    expect(answer.headers.upgrade).toBeUndefined();
    expect(answer.headers['x-up-public']).toBe('yes');
  });

  it('sends the tracer’s traceparent upstream, one span per try', async () => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const spans: string[] = [];
    const rig = await proxy(routes, {
      tracer: {
        startCall: () => ({
          startTry: (info) => {
            spans.push(`try ${info.attempt} ${info.instanceId}`);
            return {
              headers: { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' },
              end: (o) => void spans.push(`end ${o.kind}`),
            };
          },
          end: (status) => void spans.push(`call ${status}`),
        }),
      },
    });
    await call(rig.port, '/v1/proxy/orders/', {
      headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    expect(up.seen[0]!.headers.traceparent).toBe(
      '00-11111111111111111111111111111111-2222222222222222-01',
    );
    expect(spans).toEqual(['try 1 a', 'end response', 'call 200']);
  });

  it.each([
    ['/v1/proxy/', 400, 'PROXY_BAD_DESTINATION'],
    ['/v1/proxy/Orders/x', 400, 'PROXY_BAD_DESTINATION'],
    ['/v1/proxy/orders.shop.svc/x', 400, 'PROXY_BAD_DESTINATION'],
    ['/v1/proxy/or%2fders/x', 400, 'PROXY_BAD_DESTINATION'],
    ['/v1/proxy/payments/x', 404, 'SERVICE_NOT_FOUND'],
    ['/v1/proxy/empty/x', 503, 'NO_UPSTREAM_INSTANCE'],
  ])('%s → %i %s, nothing forwarded', async (path, status, code) => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    routes.set('shop', 'empty', []);
    const rig = await proxy(routes);
    const answer = await call(rig.port, path);
    expect(answer.status).toBe(status);
    expect(json(answer).error.code).toBe(code);
    expect(up.seen).toHaveLength(0);
    // A name the copy does not hold is counted as `unknown`: callers cannot grow the labels.
    if (code === 'SERVICE_NOT_FOUND') {
      expect(await rig.engine.metrics.registry.metrics()).toContain(
        'maxine_sidecar_proxy_calls_total{destination="unknown",class="4xx"} 1',
      );
    }
  });

  it('keeps one keep-alive connection per instance across calls', async () => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes);
    for (let i = 0; i < 5; i++)
      expect((await call(rig.port, '/v1/proxy/orders/')).status).toBe(200);
    expect(up.connections).toBe(1);
    expect(rig.engine.pools.stats()).toMatchObject({ agents: 1, idle: 1, active: 0 });
    const metrics = await rig.engine.metrics.registry.metrics();
    expect(metrics).toContain(
      'maxine_sidecar_proxy_calls_total{destination="shop/orders",class="2xx"} 5',
    );
    expect(metrics).toContain(
      'maxine_sidecar_proxy_tries_total{destination="shop/orders",outcome="response"} 5',
    );
    expect(metrics).toContain('maxine_sidecar_proxy_pool_sockets{state="idle"} 1');
    expect(metrics).toContain('maxine_sidecar_proxy_pools 1');
  });

  it('closes the pool of an instance that left the local copy', async () => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes);
    await call(rig.port, '/v1/proxy/orders/');
    expect(rig.engine.sweep()).toBe(0);
    routes.set('shop', 'orders', []);
    expect(rig.engine.sweep()).toBe(1);
    expect(rig.engine.pools.size).toBe(0);
    const metrics = await rig.engine.metrics.registry.metrics();
    expect(metrics).toContain('maxine_sidecar_proxy_pool_evictions_total 1');
  });

  it('bounds the pools: the least recently used idle one makes room', async () => {
    const ups = await Promise.all(['a', 'b', 'c'].map((n) => echo(n)));
    const routes = new Routes();
    routes.set(
      'shop',
      'orders',
      ups.map((u, i) => instance(`i${i}`, u.port)),
      {
        loadBalancing: { strategy: 'round-robin' },
      } as never,
    );
    const rig = await proxy(routes, {}, { pools: { maxPools: 2 } });
    for (let i = 0; i < 6; i++) await call(rig.port, '/v1/proxy/orders/');
    expect(rig.engine.pools.size).toBe(2);
  });
});

describe('load balancing with the real in-flight counts', () => {
  it('least-connections sends the next call away from a busy instance', async () => {
    let release: () => void = () => undefined;
    const slow = await upstream((_req, res) => {
      release = () => res.end('slow');
    });
    const fast = await upstream((_req, res) => res.end('fast'));
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', slow.port), instance('b', fast.port)], {
      loadBalancing: { strategy: 'least-connections' },
    } as never);
    const rig = await proxy(routes);
    const first = call(rig.port, '/v1/proxy/orders/');
    while (slow.seen.length === 0) await delay(5);
    expect(rig.engine.pools.load('a')).toBe(1);
    for (let i = 0; i < 3; i++)
      expect((await call(rig.port, '/v1/proxy/orders/')).body).toBe('fast');
    release();
    expect((await first).body).toBe('slow');
    await delay(20);
    expect(rig.engine.pools.load('a')).toBe(0);
  });
});

describe('policy answers of the hooks', () => {
  it('403 with the intention that decided, never forwarded', async () => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const calls: CallRecord[] = [];
    const rig = await proxy(routes, {
      authorizer: {
        authorize: () => ({
          allowed: false,
          reason: 'MaxineIntention shop/orders denies web',
          intention: { namespace: 'shop', name: 'orders' },
        }),
      },
      observer: { callEnded: (r) => void calls.push(r) },
    });
    const answer = await call(rig.port, '/v1/proxy/orders/x');
    expect(answer.status).toBe(403);
    expect(json(answer).error).toEqual({
      code: 'INTENTION_DENIED',
      message: 'MaxineIntention shop/orders denies web',
      details: { intention: { namespace: 'shop', name: 'orders' } },
    });
    expect(up.seen).toHaveLength(0);
    expect(calls).toMatchObject([{ status: 403, tries: 0, refusedBy: 'INTENTION_DENIED' }]);
  });

  it('429 with Retry-After when the rate limiter says no', async () => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes, {
      rateLimiter: { take: () => ({ ok: false, retryAfterSeconds: 2.2 }) },
    });
    const answer = await call(rig.port, '/v1/proxy/orders/x');
    expect(answer.status).toBe(429);
    expect(answer.headers['retry-after']).toBe('3');
    expect(json(answer).error.code).toBe('RATE_LIMITED');
    expect(up.seen).toHaveLength(0);
  });

  it('skips instances the breakers do not admit; 503 CIRCUIT_OPEN when none is', async () => {
    const a = await echo('a');
    const b = await echo('b');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', a.port), instance('b', b.port)]);
    let open = new Set(['a']);
    const rig = await proxy(routes, {
      breakers: {
        admit: (_d, id) => !open.has(id),
        record: () => undefined,
        state: () => 'closed',
      },
    });
    for (let i = 0; i < 4; i++)
      expect(json(await call(rig.port, '/v1/proxy/orders/')).name).toBe('b');
    open = new Set(['a', 'b']);
    const answer = await call(rig.port, '/v1/proxy/orders/');
    expect(answer.status).toBe(503);
    expect(json(answer).error.code).toBe('CIRCUIT_OPEN');
    expect(a.seen).toHaveLength(0);
  });
});

describe('retries', () => {
  it('a failed try is retried on another instance, with the same small body', async () => {
    const bad = await upstream((req, res) => {
      req.resume();
      res.writeHead(503).end('down');
    });
    const good = await echo('good');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', bad.port), instance('b', good.port)]);
    const rec = recorder();
    const rig = await proxy(routes, { ...retryOn5xxAndFailures, ...rec.hooks });
    for (let i = 0; i < 4; i++) {
      const answer = await call(rig.port, '/v1/proxy/orders/pay', {
        method: 'PUT',
        body: 'x'.repeat(1000),
      });
      expect(answer.status).toBe(200);
      expect(json(answer)).toMatchObject({ name: 'good', body: 'x'.repeat(1000) });
    }
    // Round robin started on the bad one half the time; each of those calls took two tries.
    expect(bad.seen.length).toBeGreaterThan(0);
    expect(rec.records.filter((r) => r.instanceId === 'a')).toHaveLength(bad.seen.length);
    expect(rec.records).toHaveLength(4 + bad.seen.length);
    expect(rec.calls.map((c) => c.tries).sort()).toEqual(
      [...Array(4 - bad.seen.length).fill(1), ...Array(bad.seen.length).fill(2)].sort(),
    );
  });

  it('no retry when the budget is spent: the failure comes back as is', async () => {
    const bad = await upstream((_req, res) => res.writeHead(503).end('down'));
    const good = await echo('good');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', bad.port), instance('b', good.port)], {
      loadBalancing: { strategy: 'round-robin' },
    } as never);
    const rig = await proxy(routes, {
      ...retryOn5xxAndFailures,
      retryBudget: { onCall: () => undefined, tryRetry: () => false },
    });
    const answers = [
      await call(rig.port, '/v1/proxy/orders/'),
      await call(rig.port, '/v1/proxy/orders/'),
    ];
    expect(answers.map((a) => a.status).sort()).toEqual([200, 503]);
    expect(answers.find((a) => a.status === 503)!.body).toBe('down');
  });

  it('a body over the replay bound is streamed once and never retried', async () => {
    const bad = await upstream((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(503).end('down'));
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', bad.port), instance('b', bad.port)]);
    const rec = recorder();
    const rig = await proxy(routes, { ...retryOn5xxAndFailures, ...rec.hooks });
    const answer = await call(rig.port, '/v1/proxy/orders/', {
      method: 'POST',
      body: Buffer.alloc(MAX_REPLAY_BYTES + 1, 1),
    });
    expect(answer.status).toBe(503);
    expect(rec.records).toHaveLength(1);
  });
});

describe('timeouts', () => {
  it('perTryTimeoutSeconds: 504 UPSTREAM_TIMEOUT, or the retry on another instance answers', async () => {
    const hang = await upstream(() => undefined);
    const good = await echo('good');
    const routes = new Routes();
    routes.set('shop', 'slow', [instance('h', hang.port)], {
      retries: { attempts: 1, perTryTimeoutSeconds: 0.2 },
    } as never);
    routes.set('shop', 'orders', [instance('h', hang.port), instance('g', good.port)], {
      retries: { attempts: 1, perTryTimeoutSeconds: 0.2 },
    } as never);
    const rec = recorder();
    const rig = await proxy(routes, { ...retryOn5xxAndFailures, ...rec.hooks });
    const t0 = Date.now();
    const answer = await call(rig.port, '/v1/proxy/slow/');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(answer.status).toBe(504);
    expect(json(answer).error.code).toBe('UPSTREAM_TIMEOUT');
    expect(rec.records.every((r) => r.outcome.kind === 'timeout')).toBe(true);
    for (let i = 0; i < 2; i++)
      expect(json(await call(rig.port, '/v1/proxy/orders/')).name).toBe('good');
  });

  it('requestTimeoutSeconds bounds the whole call, retries included: 504 CALL_TIMEOUT', async () => {
    const hang = await upstream(() => undefined);
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', hang.port), instance('b', hang.port)], {
      requestTimeoutSeconds: 0.3,
      retries: { attempts: 5, perTryTimeoutSeconds: 0.2 },
    } as never);
    const rig = await proxy(routes, retryOn5xxAndFailures);
    const t0 = Date.now();
    const answer = await call(rig.port, '/v1/proxy/orders/');
    const took = Date.now() - t0;
    expect(answer.status).toBe(504);
    expect(json(answer).error.code).toBe('CALL_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(1500);
  });
});

describe('upstream failures', () => {
  it('connection refused: 502 UPSTREAM_CONNECT_FAILED, recorded as connect-failure', async () => {
    const gone = await startUpstream(() => undefined);
    await gone.close();
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', gone.port)]);
    const rec = recorder();
    const rig = await proxy(routes, rec.hooks);
    const answer = await call(rig.port, '/v1/proxy/orders/');
    expect(answer.status).toBe(502);
    expect(json(answer).error.code).toBe('UPSTREAM_CONNECT_FAILED');
    expect(rec.records.map((r) => r.outcome.kind)).toEqual(['connect-failure']);
    expect(rec.calls).toMatchObject([{ status: 502, tries: 1 }]);
  });

  it('connection reset before an answer: 502 UPSTREAM_RESET, recorded as reset', async () => {
    const reset = await upstream((req) => req.socket.resetAndDestroy());
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', reset.port)]);
    const rec = recorder();
    const rig = await proxy(routes, rec.hooks);
    const answer = await call(rig.port, '/v1/proxy/orders/');
    expect(answer.status).toBe(502);
    expect(json(answer).error.code).toBe('UPSTREAM_RESET');
    expect(rec.records.map((r) => r.outcome.kind)).toEqual(['reset']);
  });

  it('a reset mid-answer cuts the app’s connection (the answer cannot be completed)', async () => {
    const cut = await upstream((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.resetAndDestroy(), 20);
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', cut.port)]);
    const rig = await proxy(routes);
    await expect(call(rig.port, '/v1/proxy/orders/')).rejects.toThrow();
  });
});

describe('the app hanging up', () => {
  it('aborts the upstream request, frees the instance and reports 499 once', async () => {
    let upstreamClosed = false;
    const endless = await upstream((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => res.write(Buffer.alloc(1024)), 5);
      res.on('close', () => {
        clearInterval(timer);
        upstreamClosed = true;
      });
      req.resume();
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', endless.port)]);
    const rec = recorder();
    const rig = await proxy(routes, rec.hooks);
    await new Promise<void>((resolve) => {
      const req = request(
        { port: rig.port, host: '127.0.0.1', path: '/v1/proxy/orders/', agent: false },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end();
    });
    for (let i = 0; i < 100 && !upstreamClosed; i++) await delay(10);
    expect(upstreamClosed).toBe(true);
    await delay(20);
    expect(rig.engine.pools.load('a')).toBe(0);
    expect(rec.calls).toMatchObject([{ status: CLIENT_CLOSED, tries: 1 }]);
    expect(rig.logs.join('')).not.toContain('"level":50');
    const metrics = await rig.engine.metrics.registry.metrics();
    expect(metrics).toMatch(/maxine_sidecar_proxy_in_flight\{destination="shop\/orders"\} 0/);
  });
});

describe('the app hanging up before the answer', () => {
  it('is not an upstream failure: nothing recorded for the breakers, 499 reported', async () => {
    // An app closing its connections (a load generator stopping, a client timeout) must not
    // open the circuit of a healthy instance that was merely slower than the app's patience.
    let arrived = 0;
    const slow = await upstream((req, res) => {
      arrived++;
      setTimeout(() => res.end('late'), 200);
      req.resume();
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', slow.port)]);
    const rec = recorder();
    const rig = await proxy(routes, rec.hooks);
    const hangUps = 3;
    for (let i = 0; i < hangUps; i++) {
      await new Promise<void>((resolve) => {
        const req = request({
          port: rig.port,
          host: '127.0.0.1',
          path: '/v1/proxy/orders/',
          agent: false,
        });
        req.on('error', () => resolve());
        req.end();
        const waiting = setInterval(() => {
          if (arrived > i) {
            clearInterval(waiting);
            req.destroy();
          }
        }, 2);
      });
    }
    for (let i = 0; i < 100 && rec.calls.length < hangUps; i++) await delay(10);
    expect(rec.calls).toHaveLength(hangUps);
    expect(rec.calls.every((c) => c.status === CLIENT_CLOSED && c.tries === 1)).toBe(true);
    expect(rec.records).toEqual([]);
    // A call that waits gets its answer, and that one is recorded.
    const answered = await call(rig.port, '/v1/proxy/orders/');
    expect(answered.status).toBe(200);
    expect(rec.records).toMatchObject([
      { instanceId: 'a', outcome: { kind: 'response', status: 200 } },
    ]);
  });
});

/** `gc()` without --expose-gc on the command line (jest's workers do not pass it). */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('large bodies stream both ways', () => {
  const SIZE = 50 * 1024 * 1024;
  /** Deterministic pseudo-random 50 MB, generated chunk by chunk. */
  function generated(): Readable {
    let sent = 0;
    let seed = 7;
    return new Readable({
      read() {
        if (sent >= SIZE) return void this.push(null);
        const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, SIZE - sent));
        for (let i = 0; i < chunk.length; i += 4) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          chunk.writeUInt32LE(seed, i);
        }
        sent += chunk.length;
        this.push(chunk);
      },
    });
  }
  async function hashOf(stream: Readable): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of stream) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }

  it('50 MB up and 50 MB down, checked by hash, memory not growing by the body size', async () => {
    const expected = await hashOf(generated());
    // Live memory only, measured when half of a body has gone through: a full GC first, so
    // garbage not yet collected (every chunk read from a socket is) does not count; a proxy that
    // buffered the body would hold at least half of it then. Two measurements, not a sampler:
    // full GCs on a timer starve the stream when this runs in a long-lived jest worker with a
    // large heap beside other suites.
    const gc = exposedGc();
    gc();
    const base = process.memoryUsage();
    let peak = 0;
    let samples = 0;
    const measure = (): void => {
      gc();
      // Two collections a turn apart: array buffers are released by a sweeper after the first.
      setImmediate(() => {
        gc();
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
        samples += 1;
      });
    };
    /** Calls `measure` once, when the bytes counted pass half the body. */
    const halfway = (): ((n: number) => void) => {
      let seen = 0;
      return (n) => {
        if (seen < SIZE / 2 && seen + n >= SIZE / 2) measure();
        seen += n;
      };
    };
    let measured = 0;
    const up = await upstream((req, res) => {
      if (req.method === 'POST') {
        const count = halfway();
        req.on('data', (c: Buffer) => count(c.length));
        void hashOf(req).then((h) => {
          measured += 1;
          res.end(h);
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      generated().pipe(res);
    });
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes);
    const uploaded = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          port: rig.port,
          host: '127.0.0.1',
          path: '/v1/proxy/orders/upload',
          method: 'POST',
          agent: false,
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        },
      );
      req.on('error', reject);
      generated().pipe(req);
    });
    expect(uploaded).toBe(expected);
    const downloaded = await new Promise<string>((resolve, reject) => {
      request(
        { port: rig.port, host: '127.0.0.1', path: '/v1/proxy/orders/download', agent: false },
        (res) => {
          const count = halfway();
          res.on('data', (c: Buffer) => count(c.length));
          hashOf(res).then(resolve, reject);
        },
      )
        .on('error', reject)
        .end();
    });
    expect(downloaded).toBe(expected);
    await new Promise((r) => setImmediate(r));
    expect(measured).toBe(1);
    expect(samples).toBe(2); // once halfway up, once halfway down
    // Proxy, upstream and client share this process: what is alive is in-flight chunks only.
    expect(peak).toBeLessThan(SIZE / 2);
  });
});

describe('bad input on the sidecar server', () => {
  it('headers over maxHeaderSize: 431 HEADERS_TOO_LARGE, nothing forwarded', async () => {
    const up = await echo('a');
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)]);
    const rig = await proxy(routes);
    const raw = await rawExchange(
      rig.port,
      `GET /v1/proxy/orders/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 431 /);
    expect(raw).toContain('"HEADERS_TOO_LARGE"');
    expect(up.seen).toHaveLength(0);
  });

  it.each([
    [
      'Transfer-Encoding with Content-Length',
      'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
    ],
    ['two Content-Lengths', 'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello'],
    ['an unknown transfer coding last', 'Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'],
    ['a transfer coding before chunked', 'Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
  ])(
    'smuggling shape (%s): 400 AMBIGUOUS_MESSAGE_LENGTH, never reaching an upstream',
    async (_n, rest) => {
      const up = await echo('a');
      const routes = new Routes();
      routes.set('shop', 'orders', [instance('a', up.port)]);
      const rig = await proxy(routes);
      const raw = await rawExchange(
        rig.port,
        `POST /v1/proxy/orders/ HTTP/1.1\r\nHost: x\r\n${rest}`,
      );
      expect(raw).toMatch(/^HTTP\/1\.1 400 /);
      expect(raw).toContain('"AMBIGUOUS_MESSAGE_LENGTH"');
      expect(up.seen).toHaveLength(0);
    },
  );
});
