/**
 * A follower's forwarding of registry writes, over real sockets: to a real operator as the
 * leader (register, heartbeat, deregister answered by it, its authentication applied), and to
 * a recording server as the leader (what goes on the wire), and the refusals: no leader, a
 * forwarded request landing on a follower, an unreachable or silent leader, a body too large.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { request as rawRequest } from 'node:http';
import { Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { listen } from '../../common/listen.js';
import type { LeaderView } from '../kube/leader.js';
import { startBlackhole } from '../../test/helpers/blackhole.js';
import { logSink, startOperator } from '../../test/helpers/operator.js';
import type { TestOperator } from '../../test/helpers/operator.js';
import { createForwarder, FORWARDED_BY_HEADER, FORWARDED_TO_HEADER } from './forward.js';
import type { Forwarder } from './forward.js';

interface Follower {
  url: string;
  prom: PromRegistry;
  logs: ReturnType<typeof logSink>['logs'];
  close(): Promise<void>;
}

const servers: Server[] = [];
const forwarders: Forwarder[] = [];

/** A follower: the forwarder in front of a handler answering 299 "served here". */
async function startFollower(
  leader: () => LeaderView,
  opts: { timeoutMs?: number; bodyLimitBytes?: number } = {},
): Promise<Follower> {
  const prom = new PromRegistry();
  const { sink, logs } = logSink();
  const forwarder = createForwarder({
    leader,
    identity: 'replica-b',
    timeoutMs: opts.timeoutMs ?? 5000,
    bodyLimitBytes: opts.bodyLimitBytes ?? 64 * 1024,
    retryAfterSeconds: 2,
    logger: createLogger('debug', sink),
    prom,
  });
  forwarders.push(forwarder);
  const server = createServer((req, res) => {
    if (forwarder.handle(req, res)) return;
    res.writeHead(299, { 'content-type': 'text/plain' });
    res.end('served here');
  });
  servers.push(server);
  const { port } = await listen(server, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    prom,
    logs,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A follower of replica-a, which leads at `url`. */
const followerOf = (url: string, opts?: { timeoutMs?: number; bodyLimitBytes?: number }) =>
  startFollower(() => ({ leading: false, identity: 'replica-a', url }), opts);

interface Recorded {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A leader that records what reaches it and answers 201 with a header of its own. */
async function recordingLeader(
  answer: 'answer' | 'silent' = 'answer',
): Promise<{ url: string; seen: Recorded[] }> {
  const seen: Recorded[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (answer === 'silent') return;
      res.writeHead(201, { 'content-type': 'application/json', 'x-leader-says': 'hi' });
      res.end(JSON.stringify({ ok: true }));
    });
  });
  servers.push(server);
  const { port } = await listen(server, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, seen };
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  for (const started = Date.now(); !check(); await new Promise((r) => setTimeout(r, 10)))
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
}

async function metric(prom: PromRegistry, result: string): Promise<number> {
  const m = await prom.getSingleMetric('maxine_forwarded_writes_total')?.get();
  return m?.values.find((v) => v.labels.result === result)?.value ?? 0;
}

afterEach(async () => {
  for (const f of forwarders.splice(0)) f.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

describe('a follower forwards registry writes to a real operator that leads', () => {
  let leader: TestOperator;
  beforeAll(async () => {
    leader = await startOperator({
      files: {
        'svc.yaml':
          'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: web, namespace: shop }\nspec: {}\n',
      },
    });
  });
  afterAll(async () => {
    await leader.stop();
  });

  it('register, heartbeat and deregister through the follower are taken and answered by the leader', async () => {
    const follower = await followerOf(leader.url);
    const registered = await fetch(`${follower.url}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'web', namespace: 'shop', host: '10.0.0.7', port: 8080 }),
    });
    expect(registered.status).toBe(201);
    expect(registered.headers.get(FORWARDED_TO_HEADER)).toBe('replica-a');
    const { instance } = (await registered.json()) as { instance: { id: string } };
    expect(leader.operator.registry.getInstance(instance.id)?.host).toBe('10.0.0.7');

    const beat = await fetch(`${follower.url}/api/v1/instances/${instance.id}/heartbeat`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'warning', output: 'slow' }),
    });
    expect(beat.status).toBe(200);
    expect(leader.operator.registry.getInstance(instance.id)?.health.status).toBe('warning');

    const unknown = await fetch(`${follower.url}/api/v1/instances/nope-1/heartbeat`, {
      method: 'PUT',
    });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe(
      'INSTANCE_NOT_FOUND',
    );

    const gone = await fetch(`${follower.url}/api/v1/instances/${instance.id}`, {
      method: 'DELETE',
    });
    expect(gone.status).toBe(204);
    expect(leader.operator.registry.getInstance(instance.id)).toBeUndefined();

    // Reads are the follower's own.
    const read = await fetch(`${follower.url}/api/v1/discover/shop/web`);
    expect(read.status).toBe(299);
    expect(await metric(follower.prom, 'forwarded')).toBe(4);
  });

  it('the leader judges the caller itself: a refused caller stays refused through a follower', async () => {
    const strict = await startOperator({ config: { anonymous: false } });
    try {
      const follower = await followerOf(strict.url);
      const res = await fetch(`${follower.url}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-token' },
        body: JSON.stringify({ service: 'web', namespace: 'shop', host: '10.0.0.7', port: 80 }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
      expect(strict.operator.registry.listServices()).toHaveLength(0);
    } finally {
      await strict.stop();
    }
  });
});

describe('an operator without leader election forwards nothing', () => {
  it('standalone: a write carrying the hop header is served, not refused', async () => {
    const op = await startOperator();
    try {
      const res = await fetch(`${op.url}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [FORWARDED_BY_HEADER]: 'replica-x' },
        body: JSON.stringify({ service: 'web', namespace: 'shop', host: '10.0.0.9', port: 80 }),
      });
      expect(res.status).toBe(201);
      expect(res.headers.get(FORWARDED_TO_HEADER)).toBeNull();
      expect(op.operator.isLeader()).toBe(true);
    } finally {
      await op.stop();
    }
  });
});

describe('what a follower sends the leader', () => {
  it('method, path, query, body, the caller credentials and the hop header; nothing else', async () => {
    const leader = await recordingLeader();
    const follower = await followerOf(leader.url);
    const res = await fetch(`${follower.url}/api/v1/reports?dryRun=1`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer abc',
        'x-maxine-source': 'shop/web',
        'x-request-id': 'req-1',
        cookie: 'session=secret',
        'x-forwarded-for': '192.0.2.1',
      },
      body: '{"edges":[]}',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-leader-says')).toBe('hi');
    expect(await res.json()).toEqual({ ok: true });
    expect(leader.seen).toHaveLength(1);
    const [got] = leader.seen;
    expect(got).toMatchObject({ method: 'POST', url: '/api/v1/reports?dryRun=1' });
    expect(got!.body).toBe('{"edges":[]}');
    expect(got!.headers).toMatchObject({
      authorization: 'Bearer abc',
      'x-maxine-source': 'shop/web',
      'x-request-id': 'req-1',
      [FORWARDED_BY_HEADER]: 'replica-b',
      'x-forwarded-for': '192.0.2.1, 127.0.0.1',
    });
    expect(got!.headers.cookie).toBeUndefined();
  });

  it("a kubectl user's write carries X-Maxine-Kubernetes-Authorization to the leader, as a read does to the replica it lands on", async () => {
    const leader = await recordingLeader();
    const follower = await followerOf(leader.url);
    const res = await fetch(`${follower.url}/api/v1/instances`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer service-proxy',
        'x-maxine-kubernetes-authorization': 'Bearer kubectl-user',
      },
      body: '{}',
    });
    expect(res.status).toBe(201);
    expect(leader.seen).toHaveLength(1);
    expect(leader.seen[0]!.headers).toMatchObject({
      authorization: 'Bearer service-proxy',
      'x-maxine-kubernetes-authorization': 'Bearer kubectl-user',
      [FORWARDED_BY_HEADER]: 'replica-b',
    });
  });

  it('reaches a leader that advertises an IPv6 address', async () => {
    const seen: string[] = [];
    const v6 = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(204).end();
    });
    servers.push(v6);
    const { port } = await listen(v6, 0, '::1');
    const follower = await followerOf(`http://[::1]:${port}`);
    const res = await fetch(`${follower.url}/api/v1/instances/web-1`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    expect(seen).toEqual(['DELETE /api/v1/instances/web-1']);
  });

  it('streams a chunked body and keeps the connection to the leader alive', async () => {
    const leader = await recordingLeader();
    const follower = await followerOf(leader.url);
    const ports = new Set<number>();
    const leaderServer = servers.at(-2)!;
    leaderServer.on('connection', (socket) => ports.add(socket.remotePort ?? 0));
    for (let i = 0; i < 3; i++) {
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"service":'));
          controller.enqueue(new TextEncoder().encode(`"web-${i}"}`));
          controller.close();
        },
      });
      const res = await fetch(`${follower.url}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        duplex: 'half',
      });
      expect(res.status).toBe(201);
    }
    expect(leader.seen.map((s) => s.body)).toEqual([
      '{"service":"web-0"}',
      '{"service":"web-1"}',
      '{"service":"web-2"}',
    ]);
    expect(ports.size).toBe(1);
  });
});

describe('a caller that leaves', () => {
  it('before the leader answered: the exchange is dropped, and not counted as a refusal', async () => {
    const leader = await recordingLeader('silent');
    const follower = await followerOf(leader.url);
    const aborted = new AbortController();
    const call = fetch(`${follower.url}/api/v1/instances/web-1/heartbeat`, {
      method: 'PUT',
      body: '{}',
      signal: aborted.signal,
    }).catch((e: Error) => e.name);
    await until(() => leader.seen.length === 1);
    aborted.abort();
    expect(await call).toBe('AbortError');
    await new Promise((r) => setTimeout(r, 100));
    for (const result of ['unreachable', 'timeout', 'forwarded'])
      expect(await metric(follower.prom, result)).toBe(0);
  });
});

describe('a follower refuses what it cannot forward', () => {
  const write = (url: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/api/v1/instances/web-1/heartbeat`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...headers },
      body: '{}',
    });

  it('no leader known: 503 NO_LEADER with Retry-After', async () => {
    const follower = await startFollower(() => ({ leading: false }));
    const res = await write(follower.url);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    const body = (await res.json()) as { error: { code: string; details: { reason: string } } };
    expect(body.error.code).toBe('NO_LEADER');
    expect(body.error.details.reason).toBe('no_leader');
    expect(await metric(follower.prom, 'no_leader')).toBe(1);
    expect(follower.logs).toContainEqual(
      expect.objectContaining({ level: 'warn', result: 'no_leader', component: 'forward' }),
    );
  });

  it('a leader that advertises no address: 503 NO_LEADER naming it', async () => {
    const follower = await startFollower(() => ({ leading: false, identity: 'replica-a' }));
    const res = await write(follower.url);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { message: string; details: { leader: string } } };
    expect(body.error.details.leader).toBe('replica-a');
    expect(body.error.message).toContain('--advertise-url');
  });

  it('a forwarded request landing on a follower is refused, never forwarded again', async () => {
    const leader = await recordingLeader();
    const follower = await followerOf(leader.url);
    const res = await write(follower.url, { [FORWARDED_BY_HEADER]: 'replica-c' });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; details: { reason: string } } };
    expect(body.error).toMatchObject({ code: 'NO_LEADER', details: { reason: 'loop' } });
    expect(leader.seen).toHaveLength(0);
    expect(await metric(follower.prom, 'loop')).toBe(1);
  });

  it('an unreachable leader: 503 NO_LEADER (unreachable)', async () => {
    const closed = createServer();
    const { port } = await listen(closed, 0, '127.0.0.1');
    await new Promise((resolve) => closed.close(resolve));
    const follower = await followerOf(`http://127.0.0.1:${port}`);
    const res = await write(follower.url);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    const body = (await res.json()) as { error: { details: { reason: string } } };
    expect(body.error.details.reason).toBe('unreachable');
    expect(await metric(follower.prom, 'unreachable')).toBe(1);
  });

  it('a leader that drops the connection while a large body still streams: the caller still gets the 503', async () => {
    // Accepts and resets every connection: deterministic, unlike a closed port someone may reuse.
    const dropping = createServer();
    dropping.on('connection', (socket) => socket.destroy());
    servers.push(dropping);
    const { port } = await listen(dropping, 0, '127.0.0.1');
    const follower = await startFollower(
      () => ({ leading: false, identity: 'replica-a', url: `http://127.0.0.1:${port}` }),
      { bodyLimitBytes: 4 * 1024 * 1024 },
    );
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = rawRequest(`${follower.url}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      // Writing the rest after the answer may fail once the follower is done: not the point.
      req.on('error', (err) => (answered ? undefined : reject(err)));
      req.write('x'.repeat(64 * 1024));
      // More after the refusal: the follower must not have reset the connection under it.
      setTimeout(() => req.end('y'.repeat(1024 * 1024)), 100);
    });
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({
      error: { code: 'NO_LEADER', details: { reason: 'unreachable' } },
    });
  });

  it('a leader whose address answers no SYN: 503 NO_LEADER (unreachable) after the connect timeout, before the whole timeout', async () => {
    const hole = await startBlackhole();
    try {
      const follower = await startFollower(
        () => ({ leading: false, identity: 'replica-a', url: `http://127.0.0.1:${hole.port}` }),
        { timeoutMs: 10_000 },
      );
      const started = Date.now();
      const res = await write(follower.url);
      const took = Date.now() - started;
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { details: { reason: string } } };
      expect(body.error.details.reason).toBe('unreachable');
      expect(took).toBeGreaterThanOrEqual(1900);
      expect(took).toBeLessThan(5000);
    } finally {
      hole.close();
    }
  });

  it('a leader that does not answer in time: 503 NO_LEADER (timeout)', async () => {
    const leader = await recordingLeader('silent');
    const follower = await startFollower(
      () => ({ leading: false, identity: 'replica-a', url: leader.url }),
      { timeoutMs: 300 },
    );
    const started = Date.now();
    const res = await write(follower.url);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { details: { reason: string } } };
    expect(body.error.details.reason).toBe('timeout');
  });

  it('a body over the limit, declared or streamed: 413, the leader gets no complete request', async () => {
    const leader = await recordingLeader();
    const follower = await startFollower(
      () => ({ leading: false, identity: 'replica-a', url: leader.url }),
      { bodyLimitBytes: 100 },
    );
    const declared = await fetch(`${follower.url}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(101),
    });
    expect(declared.status).toBe(413);

    // Chunked: no content-length, the bound is counted as the body streams.
    const status = await new Promise<number>((resolve, reject) => {
      const req = rawRequest(`${follower.url}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('x'.repeat(80));
      setTimeout(() => req.end('y'.repeat(80)), 50);
    });
    expect(status).toBe(413);
    expect(leader.seen).toHaveLength(0);
    expect(await metric(follower.prom, 'too_large')).toBe(2);
  });

  it('the leader itself, and reads, are never forwarded', async () => {
    const follower = await startFollower(() => ({ leading: true }));
    expect((await write(follower.url)).status).toBe(299);
    const other = await followerOf('http://127.0.0.1:9');
    for (const path of ['/api/v1/discover/shop/web', '/api/v1/instances/web-1', '/metrics'])
      expect((await fetch(other.url + path)).status).toBe(299);
    expect((await fetch(`${other.url}/api/v1/services`, { method: 'POST' })).status).toBe(299);
  });
});
