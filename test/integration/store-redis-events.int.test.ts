/**
 * The event log kept by the `redis` store, with real operator processes and a real
 * redis-server: after a clean restart (SIGTERM) a client resuming with `since=&epoch=` gets a
 * replay, byte for byte; after a kill -9 (events may have been sent that Redis never got) the
 * next process starts a new epoch and the same resume gets a snapshot, never a replay with a
 * hole.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type WebSocket from 'ws';
import { startRedis } from '../helpers/redis.js';
import type { RedisServer } from '../helpers/redis.js';
import { spawnListening } from '../helpers/spawn.js';
import { exited, subscribe, until } from '../helpers/stream-subscriber.js';

const children: ChildProcess[] = [];
const sockets: WebSocket[] = [];
let server: RedisServer;
let resources: string;
beforeAll(async () => {
  server = await startRedis();
  resources = await mkdtemp(join(tmpdir(), 'maxine-redis-events-'));
});
afterEach(() => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});
afterAll(async () => {
  await server.stop();
  await rm(resources, { recursive: true, force: true });
});

async function start(prefix: string) {
  const started = await spawnListening(
    [
      ...['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', resources],
      ...['--store', 'redis', '--store-redis-url', server.url, '--store-redis-prefix', prefix],
      ...['--address-rate-limit', '0', '--log-level', 'info'],
    ],
    { env: { ...process.env } },
  );
  children.push(started.proc);
  return { ...started, base: `http://127.0.0.1:${started.port}` };
}

async function registerAndDrop(base: string, n: number): Promise<void> {
  const res = await fetch(`${base}/api/v1/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'shop', service: 'cart', host: `10.0.0.${n}`, port: 80 }),
  });
  expect(res.status).toBe(201);
  const { instance } = (await res.json()) as { instance: { id: string } };
  // Gone again: a restart restores nothing (and announces nothing) of it.
  const gone = await fetch(`${base}/api/v1/instances/${instance.id}`, { method: 'DELETE' });
  expect(gone.status).toBe(204);
}

describe('the event log kept by the redis store (real processes)', () => {
  it('a clean restart continues the epoch: since=&epoch= replays what the client missed', async () => {
    const first = await start('clean');
    const sub = await subscribe(sockets, first.base);
    for (let n = 1; n <= 2; n++) await registerAndDrop(first.base, n);
    await until(() => sub.messages.length === 2);
    sub.ws.close();
    for (let n = 3; n <= 4; n++) await registerAndDrop(first.base, n);
    first.proc.kill('SIGTERM');
    await exited(first.proc);

    const second = await start('clean');
    const seen = sub.messages[1]!.parsed.seq;
    const resumed = await subscribe(sockets, second.base, `&since=${seen}&epoch=${sub.epoch}`);
    expect(resumed.epoch).toBe(sub.epoch);
    await until(() => resumed.messages.length >= 2, 10_000, 'the replay');
    expect(resumed.messages.map((m) => (m.parsed.instance as { host: string }).host)).toEqual([
      '10.0.0.3',
      '10.0.0.4',
    ]);
    expect(resumed.messages[0]!.parsed.seq).toBeGreaterThan(seen);
  }, 60_000);

  it('after kill -9 a new epoch starts: the same resume gets a snapshot', async () => {
    const first = await start('killed');
    const sub = await subscribe(sockets, first.base);
    for (let n = 1; n <= 2; n++) await registerAndDrop(first.base, n);
    await until(() => sub.messages.length === 2);
    first.proc.kill('SIGKILL');
    await exited(first.proc);

    const second = await start('killed');
    expect(
      second.lines.find((l) => String(l.msg).startsWith('kept event log cannot be continued')),
    ).toMatchObject({ reason: 'the previous process did not stop cleanly' });
    const resumed = await subscribe(
      sockets,
      second.base,
      `&since=${sub.messages[0]!.parsed.seq}&epoch=${sub.epoch}`,
    );
    expect(resumed.epoch).not.toBe(sub.epoch);
    await until(() => resumed.messages.some((m) => m.parsed.type === 'resync_end'));
    expect(resumed.messages[0]!.parsed.type).toBe('resync_begin');
  }, 60_000);
});
