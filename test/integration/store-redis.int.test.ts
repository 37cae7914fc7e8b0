/**
 * The `redis` store with real processes and a real redis-server: the operator killed with
 * SIGKILL mid-burst comes back with every acknowledged registration and its sequence
 * continuing; Redis unreachable at start stops the start with a clear message; Redis stopped
 * mid-run makes writes 503 and readiness false, and both come back with it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
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
  resources = await mkdtemp(join(tmpdir(), 'maxine-redis-res-'));
});
afterAll(async () => {
  await rm(resources, { recursive: true, force: true });
});

function storeArgs(url: string): string[] {
  return [
    ...['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', resources],
    ...['--store', 'redis', '--store-redis-url', url, '--store-redis-timeout-ms', '500'],
    ...['--address-rate-limit', '0', '--sweep-interval-ms', '100', '--log-level', 'info'],
  ];
}

async function startOperator(url: string) {
  const started = await spawnListening(storeArgs(url), { env: { ...process.env } });
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
  lease?: unknown;
}

async function instancesOf(base: string, service: string): Promise<Item[]> {
  const res = await fetch(`${base}/api/v1/services/shop/${service}`);
  if (res.status === 404) return [];
  return ((await res.json()) as { items: Item[] }).items;
}

function exited(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
}

async function until(cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

describe('redis store (real processes, real redis-server)', () => {
  it('keeps every acknowledged registration through kill -9 mid-burst; the sequence continues; lapsed leases go critical', async () => {
    const server = await redis();
    const first = await startOperator(server.url);
    expect(
      (await register(first.base, { service: 'lapsing', host: '10.9.9.9', port: 1, ttlSeconds: 1 }))
        .status,
    ).toBe(201);
    const acked = new Map<string, Item>();
    let killed = false;
    let sent = 0;
    let seqRead: Promise<number> | undefined;
    const killAfter = 120;
    const worker = async (): Promise<void> => {
      while (sent < 2000 && !killed) {
        const n = sent++;
        try {
          const res = await register(first.base, {
            service: `burst-${n % 7}`,
            host: `10.0.${Math.floor(n / 250)}.${n % 250}`,
            port: 8080,
            ttlSeconds: 600,
          });
          if (res.status === 201) {
            const { instance } = (await res.json()) as { instance: Item };
            acked.set(instance.id, instance);
          }
        } catch {
          // the connection died with the process
        }
        if (acked.size >= killAfter / 2 && seqRead === undefined) seqRead = sequenceOf(first.base);
        if (acked.size >= killAfter && !killed) {
          killed = true;
          first.proc.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 24 }, () => worker()));
    await exited(first.proc);
    const seqBefore = (await seqRead) ?? 0;
    expect(seqBefore).toBeGreaterThan(0);

    await new Promise((r) => setTimeout(r, 1200)); // the 1 s lease lapses while down
    const second = await startOperator(server.url);
    const present = new Map<string, Item>();
    for (let s = 0; s < 7; s++)
      for (const item of await instancesOf(second.base, `burst-${s}`)) present.set(item.id, item);
    expect([...acked.keys()].filter((id) => !present.has(id))).toEqual([]);
    for (const [id, before] of acked) expect(present.get(id)?.lease).toEqual(before.lease);
    expect(await sequenceOf(second.base)).toBeGreaterThan(seqBefore);
    const [lapsed] = await instancesOf(second.base, 'lapsing');
    expect(lapsed?.health).toEqual({ status: 'critical', reason: 'lease-expired' });
  }, 120_000);

  it('refuses to start when Redis cannot be reached, saying where and why, without a stack', async () => {
    const server = await redis();
    const url = server.url;
    await server.stop();
    const proc = spawn(process.execPath, storeArgs(url), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    let output = '';
    proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    expect(code).toBe(1);
    const fatal = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.level === 'fatal');
    expect(fatal).toMatchObject({ store: url, reason: expect.stringContaining('ECONNREFUSED') });
    expect(output).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('answers 503 STORE_UNAVAILABLE and is not ready while Redis does not answer, then recovers', async () => {
    const server = await redis();
    const op = await startOperator(server.url);
    expect((await register(op.base, { service: 'web', host: 'a', port: 1 })).status).toBe(201);
    server.proc.kill('SIGSTOP');
    const refused = await register(op.base, { service: 'web', host: 'b', port: 1 });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: 'STORE_UNAVAILABLE' } });
    expect((await fetch(`${op.base}/readyz`)).status).toBe(503);
    server.proc.kill('SIGCONT');
    await until(async () => (await fetch(`${op.base}/readyz`)).status === 200);
    expect((await fetch(`${op.base}/readyz`)).status).toBe(200);
    await until(() => Promise.resolve(op.lines.some((l) => l.msg === 'store writes recovered')));
    expect(op.lines.find((l) => l.msg === 'store writes recovered')).toMatchObject({
      redis: `127.0.0.1:${server.port}`,
    });

    // What was refused was kept in memory and written once Redis answered again.
    op.proc.kill('SIGKILL');
    await exited(op.proc);
    const again = await startOperator(server.url);
    expect((await instancesOf(again.base, 'web')).length).toBe(2);
  }, 60_000);
});
