/**
 * Several standalone operators sharing one redis-server (`--store-redis-shared true`), as real
 * processes: a registration made at one is discovered at the other within a measured delay,
 * a heartbeat at the other renews it, both number events alike; kill -9 of the expiry leader
 * hands lease expiry to the other; Redis unreachable at start or stopped mid-run makes the
 * operator not ready and its writes 503, and it recovers with nothing acknowledged lost.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EventClient } from '../helpers/operator.js';
import { spawnListening } from '../helpers/spawn.js';
import { startRedis } from '../helpers/redis.js';
import type { RedisServer } from '../helpers/redis.js';

const children: ChildProcess[] = [];
const servers: RedisServer[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const s of servers.splice(0)) {
    s.proc.kill('SIGCONT');
    await s.stop();
  }
});

let resources: string;
beforeAll(async () => {
  resources = await mkdtemp(join(tmpdir(), 'maxine-redis-shared-res-'));
});
afterAll(async () => {
  await rm(resources, { recursive: true, force: true });
});

async function startOperator(url: string, extra: string[] = []) {
  const args = [
    ...['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', resources],
    ...['--store', 'redis', '--store-redis-url', url, '--store-redis-shared', 'true'],
    ...['--store-redis-timeout-ms', '500', '--store-redis-lock-ms', '1000'],
    ...['--address-rate-limit', '0', '--sweep-interval-ms', '100', '--log-level', 'info'],
    ...extra,
  ];
  const started = await spawnListening(args, { env: { ...process.env } });
  children.push(started.proc);
  return { ...started, base: `http://127.0.0.1:${started.port}` };
}

async function redis(): Promise<RedisServer> {
  const server = await startRedis();
  servers.push(server);
  return server;
}

function register(base: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${base}/api/v1/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'shop', ...body }),
  });
}

async function sequenceOf(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^maxine_event_sequence (\d+)/m.exec(text)?.[1] ?? 0);
}

interface Item {
  id: string;
  health: { status: string; reason: string };
}

async function instancesOf(base: string, service: string): Promise<Item[]> {
  const res = await fetch(`${base}/api/v1/services/shop/${service}`);
  if (res.status === 404) return [];
  return ((await res.json()) as { items: Item[] }).items;
}

async function until(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('operators sharing one redis-server (real processes)', () => {
  it('a registration at A is discovered at B, renewed by a heartbeat at B, and both number events alike', async () => {
    const server = await redis();
    const a = await startOperator(server.url);
    const b = await startOperator(server.url);
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await register(a.base, { service: 'web', host: `10.0.0.${i}`, port: 80 });
      expect(res.status).toBe(201);
      const { instance } = (await res.json()) as { instance: Item };
      const sent = Date.now();
      await until(async () =>
        (await instancesOf(b.base, 'web')).some((item) => item.id === instance.id),
      );
      delays.push(Date.now() - sent);
    }
    delays.sort((x, y) => x - y);
    // The measured delay, A's answer to B's discovery (HTTP polling every 20 ms included).
    console.log(
      `discovery delay A→B over 10 registrations: median ${delays[5]} ms, max ${delays[9]} ms`,
    );
    expect(delays[9]).toBeLessThan(2000);

    const [first] = await instancesOf(b.base, 'web');
    const beat = await fetch(`${b.base}/api/v1/instances/${first?.id}/heartbeat`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(beat.status).toBe(200);
    await until(async () => (await sequenceOf(a.base)) === (await sequenceOf(b.base)));
    expect(await sequenceOf(a.base)).toBeGreaterThan(0);

    // B deregisters what A registered: gone at A too.
    const gone = await fetch(`${b.base}/api/v1/instances/${first?.id}`, { method: 'DELETE' });
    expect(gone.status).toBe(204);
    await until(async () => !(await instancesOf(a.base, 'web')).some((i) => i.id === first?.id));
    await until(async () => (await sequenceOf(a.base)) === (await sequenceOf(b.base)));

    // B killed and started again: since= replays from Redis what A replays, same numbers.
    const seq = await sequenceOf(a.base);
    b.proc.kill('SIGKILL');
    const again = await startOperator(server.url);
    expect(await sequenceOf(again.base)).toBe(seq);
    const replay = async (port: number) => {
      const client = await EventClient.connect(
        `ws://127.0.0.1:${port}/api/v1/events?since=${seq - 4}`,
      );
      const events = await client.until((e) => e.length >= 4);
      await client.close();
      return events.map((e) => [e.seq, e.type, e.instance?.id]);
    };
    const fromA = await replay(a.port);
    expect(fromA.map(([, type]) => type)).not.toContain('resync_begin');
    expect(await replay(again.port)).toEqual(fromA);
  }, 90_000);

  it('kill -9 of the expiry leader: the other takes the lock and expires the lease', async () => {
    const server = await redis();
    const extra = ['--remove-after-seconds', '1'];
    const a = await startOperator(server.url, extra);
    await until(() =>
      Promise.resolve(
        a.lines.some((l) => l.msg === 'expiry lock taken: this operator expires leases'),
      ),
    );
    const b = await startOperator(server.url, extra);
    const res = await register(a.base, {
      service: 'short',
      host: '10.0.0.1',
      port: 80,
      ttlSeconds: 1,
    });
    expect(res.status).toBe(201);
    await until(async () => (await instancesOf(b.base, 'short')).length === 1);
    a.proc.kill('SIGKILL');
    const killed = Date.now();
    await until(async () => (await instancesOf(b.base, 'short')).length === 0);
    console.log(
      `lease expired by the other operator ${Date.now() - killed} ms after kill -9 of the leader`,
    );
    expect(b.lines.some((l) => l.msg === 'expiry lock taken: this operator expires leases')).toBe(
      true,
    );
    expect(b.lines.find((l) => l.msg === 'expired instances removed')).toMatchObject({
      removed: 1,
    });
  }, 90_000);

  it('Redis unreachable at start: not ready, writes 503; once it answers, ready and nothing acknowledged lost', async () => {
    const probe = await startRedis();
    const port = probe.port;
    await probe.stop();
    const a = await startOperator(`redis://127.0.0.1:${port}`);
    expect((await fetch(`${a.base}/readyz`)).status).toBe(503);
    const refused = await register(a.base, { service: 'web', host: '10.0.0.1', port: 80 });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: 'STORE_UNAVAILABLE' } });
    const server = await startRedis(port);
    servers.push(server);
    await until(async () => (await fetch(`${a.base}/readyz`)).status === 200);

    // Mid-run: Redis stopped, writes 503, then back; what was acknowledged is at B.
    expect((await register(a.base, { service: 'web', host: '10.0.0.2', port: 80 })).status).toBe(
      201,
    );
    server.proc.kill('SIGSTOP');
    expect((await register(a.base, { service: 'web', host: '10.0.0.3', port: 80 })).status).toBe(
      503,
    );
    expect((await fetch(`${a.base}/readyz`)).status).toBe(503);
    server.proc.kill('SIGCONT');
    await until(async () => (await fetch(`${a.base}/readyz`)).status === 200);
    const b = await startOperator(server.url);
    await until(async () => (await instancesOf(b.base, 'web')).length === 3);
  }, 90_000);
});
