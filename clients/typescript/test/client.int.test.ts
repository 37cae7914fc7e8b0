/**
 * @maxine/client against a real operator process (standalone, started as `npm start` does, over
 * real sockets): heartbeats keep a short lease alive, a 404 heartbeat (an admin's deregister, an
 * operator restart) registers again, discovery answers from the cache the event stream fed,
 * typed events arrive through the async iterator, and a bad token is a typed error.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnListening } from '../../../test/helpers/spawn.js';
import { ClientError, MaxineClient } from '../src/index.js';
import type { MaxineEvent, Registration } from '../src/index.js';

interface RunningOperator {
  proc: ChildProcess;
  port: number;
  url: string;
}

let dir: string;
const running: ChildProcess[] = [];
const clients: MaxineClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-client-'));
});
afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  for (const proc of running.splice(0)) if (proc.exitCode === null) proc.kill('SIGKILL');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** Starts the operator as a process (`--port 0` unless given, so a restart can take the same port). */
async function startOperator(args: string[] = [], port = 0): Promise<RunningOperator> {
  const { proc, port: listening } = await spawnListening(
    [
      '--import',
      'tsx',
      'operator/main.ts',
      ...['--port', String(port), '--resources', dir, '--sweep-interval-ms', '100'],
      ...['--remove-after-seconds', '1', '--log-level', 'info'],
      ...args,
    ],
    { env: { ...process.env } },
  );
  running.push(proc);
  return { proc, port: listening, url: `http://127.0.0.1:${listening}` };
}

async function stop(op: RunningOperator, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (op.proc.exitCode !== null) return;
  const exited = new Promise((resolve) => op.proc.once('exit', resolve));
  op.proc.kill(signal);
  await exited;
}

function client(options: ConstructorParameters<typeof MaxineClient>[0]): MaxineClient {
  const c = new MaxineClient({ backoff: { baseMs: 50, maxMs: 500 }, ...options });
  clients.push(c);
  return c;
}

async function instanceStatus(url: string, id: string): Promise<number | string> {
  const res = await fetch(`${url}/api/v1/instances/${id}`);
  if (res.status !== 200) return res.status;
  return ((await res.json()) as { instance: { health: { status: string } } }).instance.health
    .status;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function next<T extends unknown[]>(
  on: (listener: (...args: T) => void) => void,
  ms = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms);
    on((...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('@maxine/client against a real operator', () => {
  it('heartbeats keep a 1 s lease alive for 3 s, where a bare registration lapses', async () => {
    const op = await startOperator();
    const c = client({ baseUrl: op.url });
    const bare = await c.rest.register({
      service: 'bare',
      namespace: 'shop',
      host: '10.0.0.9',
      port: 80,
      ttlSeconds: 1,
    });
    const registration = await c.register({
      service: 'web',
      namespace: 'shop',
      host: '10.0.0.1',
      port: 8080,
      ttlSeconds: 1,
    });
    let beats = 0;
    registration.on('heartbeat', () => (beats += 1));
    await sleep(3000);
    expect(await instanceStatus(op.url, registration.id)).toBe('passing');
    // Every ~333 ms (a third of the granted TTL); a loaded machine may lose a few.
    expect(beats).toBeGreaterThanOrEqual(5);
    // The control: without heartbeats the same lease lapsed and was removed.
    expect([404, 'critical']).toContain(await instanceStatus(op.url, bare.instance.id));
    await registration.close();
    expect(await instanceStatus(op.url, registration.id)).toBe(404);
  });

  it('registers again when a heartbeat answers 404 after an admin deregistered the instance', async () => {
    const op = await startOperator();
    const c = client({ baseUrl: op.url });
    const registration = await c.register(
      { service: 'web', namespace: 'shop', host: '10.0.0.2', port: 8080, ttlSeconds: 30 },
      { intervalMs: 200 },
    );
    const again = next<[unknown]>((l) => registration.once('reregistered', l));
    expect(
      (await fetch(`${op.url}/api/v1/instances/${registration.id}`, { method: 'DELETE' })).status,
    ).toBe(204);
    await again;
    expect(await instanceStatus(op.url, registration.id)).toBe('passing');
  });

  it('after an operator restart: re-registers, the cache resyncs, and discovery answers from it', async () => {
    const first = await startOperator();
    const watcher = client({ baseUrl: first.url, cache: { services: ['shop/*'] } });
    await watcher.synced();
    const registration = await client({ baseUrl: first.url }).register(
      { service: 'api', namespace: 'shop', host: '10.0.0.3', port: 9000, ttlSeconds: 3 },
      { intervalMs: 200 },
    );
    // The event stream delivered the registration: the cache answers.
    await until('the cache to hold shop/api', () => watcher.answersFromCache('shop/api'));
    expect((await watcher.discover('shop/api')).id).toBe(registration.id);
    expect(watcher.cacheSize).toEqual({ services: 1, instances: 1 });

    // A restart without a store forgets the instance: the next heartbeat is a 404.
    await stop(first);
    const again = next<[unknown]>((l) => registration.once('reregistered', l), 20_000);
    const second = await startOperator([], first.port);
    await again;
    expect(await instanceStatus(second.url, registration.id)).toBe('passing');
    // The cache's stream resumed with Last-Event-ID of another epoch: a snapshot, then deltas.
    await until(
      'the cache to hold shop/api again',
      async () => {
        try {
          return (
            watcher.answersFromCache('shop/api') &&
            (await watcher.discover('shop/api')).id === registration.id
          );
        } catch {
          return false;
        }
      },
      20_000,
    );

    // Proof that the answer is the cache's: with the operator gone, discovery still answers.
    await stop(second, 'SIGKILL');
    await registration.close().catch(() => undefined);
    expect(watcher.answersFromCache('shop/api')).toBe(true);
    const all = await watcher.discoverAll('shop/api');
    expect(all.map((i) => i.id)).toEqual([registration.id]);
    // A service the cache does not hold goes to the (gone) operator: a typed NETWORK error.
    const err = await watcher.discover('other/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('NETWORK');
  });

  it('delivers typed events through the async iterator', async () => {
    const op = await startOperator();
    const c = client({ baseUrl: op.url });
    const stream = c.events({ services: ['shop/*'], types: ['service_registered'] });
    await next<[unknown]>((l) => stream.once('open', l));
    await c.rest.register({ service: 'iter', namespace: 'shop', host: '10.0.0.4', port: 80 });
    const seen: MaxineEvent[] = [];
    for await (const event of stream) {
      seen.push(event);
      if (event.type === 'service_registered') {
        // Narrowed by the discriminated union: `instance` is typed.
        expect(event.instance.host).toBe('10.0.0.4');
        break;
      }
    }
    expect(seen.map((e) => e.type)).toEqual(['service_registered']);
    expect(stream.lastEventId).toMatch(/^[A-Za-z0-9_-]+:\d+$/);
    await stream.close();
  });

  it('answers a bad token with the typed UNAUTHENTICATED error, on REST and on the stream', async () => {
    const tokens = join(dir, 'tokens.yaml');
    await writeFile(tokens, 'tokens:\n  - { token: good-token-0123456789, user: root }\n');
    const op = await startOperator([
      ...['--anonymous', 'false', '--acl-default', 'deny'],
      ...['--bootstrap-admins', 'User:root', '--static-tokens-file', tokens],
    ]);
    const bad = client({ baseUrl: op.url, token: 'wrong-token-0123456789' });
    const err = await bad
      .register({ service: 'web', namespace: 'shop', host: '10.0.0.5', port: 80 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    const stream = bad.events({ services: ['shop/*'] });
    const [streamErr] = await next<[ClientError]>((l) => stream.once('error', l));
    expect(streamErr).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    await stream.close();

    // The same calls with the right token (a function, as a rotating token file would be).
    const good = client({ baseUrl: op.url, token: () => Promise.resolve('good-token-0123456789') });
    const registration: Registration = await good.register({
      service: 'web',
      namespace: 'shop',
      host: '10.0.0.5',
      port: 80,
    });
    expect((await good.discover('shop/web')).id).toBe(registration.id);
  });
});
