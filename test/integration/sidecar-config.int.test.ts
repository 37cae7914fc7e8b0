/**
 * Config delivery over real sockets: an in-process operator reading a resource folder, two
 * sidecars of the service, a real application HTTP server and a real child process. A change
 * of the folder's `spec.config` reaches `GET /v1/config` (ETag, version, long-poll), the files
 * in MAXINE_CONFIG_DIR (switched atomically), the HTTP reload endpoint and the signalled process.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configHash } from '../../common/config-version.js';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { EventClient, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let work: string;
let app: Server;
let reloads = 0;
let child: ChildProcess;
let httpSide: { sidecar: Sidecar; url: string; dir: string };
let signalSide: { sidecar: Sidecar; url: string; dir: string };
// Short and unique: a process's comm is cut at 15 characters, and only this one may match.
const processName = `mxrl${process.pid}`.slice(0, 15);
const hupFile = () => join(work, 'hups');

const web = (config: Record<string, string>) => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  config: ${JSON.stringify(config)}
`;

async function startSide(env: Record<string, string>): Promise<typeof httpSide> {
  const dir = join(work, `config-${Object.keys(env).join('-').length}-${Math.random()}`);
  const appPort = (app.address() as { port: number }).port;
  const config = loadSidecarConfig({
    MAXINE_SERVICE: 'web',
    MAXINE_POD_NAMESPACE: 'shop',
    MAXINE_POD_NAME: 'web-0',
    MAXINE_POD_IP: '127.0.0.1',
    MAXINE_APP_PORT: String(appPort),
    MAXINE_OPERATOR_URL: op.url,
    MAXINE_LISTEN_PORT: '0',
    MAXINE_PROXY_LISTEN: 'off',
    MAXINE_CONFIG_DIR: dir,
    ...env,
  });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const sidecar = createSidecar(config, createLogger('warn', sink, 'sidecar'));
  const url = `http://127.0.0.1:${(await sidecar.start()).port}`;
  await sidecar.mirror.synchronised();
  return { sidecar, url, dir };
}

const versionOf = (res: Response) => Number(res.headers.get('x-maxine-config-version'));

/** Reads every key of the set `..data` points at, the way an application reading it would. */
async function readSet(dir: string): Promise<Record<string, string>> {
  const target = await readlink(join(dir, '..data'));
  const out: Record<string, string> = {};
  for (const key of await readdir(join(dir, target)))
    out[key] = await readFile(join(dir, target, key), 'utf8');
  return out;
}

async function settle(side: typeof httpSide, version: number): Promise<void> {
  await eventually(
    async () => versionOf(await fetch(`${side.url}/v1/config`)) === version,
    3000,
    `config version ${version}`,
  );
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-config-'));
  app = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/reload') reloads += 1;
    res.end('ok');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const script = join(work, processName);
  await writeFile(
    script,
    `#!/bin/sh\ntrap 'echo hup >> ${hupFile()}' HUP\nwhile :; do sleep 0.05; done\n`,
  );
  await chmod(script, 0o755);
  child = spawn(script, { stdio: 'ignore' });
  op = await startOperator({ files: { 'web.yaml': web({ greeting: 'hello', mode: 'a' }) } });
  httpSide = await startSide({ MAXINE_CONFIG_RELOAD: 'http:POST:/reload' });
  signalSide = await startSide({
    MAXINE_CONFIG_RELOAD: `signal:HUP:${processName}`,
    MAXINE_CONFIG_MAX_WAITERS: '2',
  });
});

afterAll(async () => {
  await httpSide?.sidecar.stop();
  await signalSide?.sidecar.stop();
  child?.kill('SIGKILL');
  await op?.stop();
  await new Promise((r) => app.close(r));
  await rm(work, { recursive: true, force: true });
});

describe('GET /v1/config', () => {
  it('answers the config with its hash as ETag and its version; If-None-Match → 304', async () => {
    const res = await fetch(`${httpSide.url}/v1/config`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      service: { namespace: 'shop', name: 'web' },
      config: { greeting: 'hello', mode: 'a' },
    });
    const etag = res.headers.get('etag');
    expect(etag).toBe(`"${configHash({ greeting: 'hello', mode: 'a' })}"`);
    expect(versionOf(res)).toBe(1);
    const again = await fetch(`${httpSide.url}/v1/config`, {
      headers: { 'if-none-match': etag ?? '' },
    });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    // Both sidecars agree on the hash.
    expect((await fetch(`${signalSide.url}/v1/config`)).headers.get('etag')).toBe(etag);
    // /healthz says which config the sidecar holds.
    expect(await (await fetch(`${httpSide.url}/healthz`)).json()).toMatchObject({
      config: { version: 1, hash: configHash({ greeting: 'hello', mode: 'a' }) },
    });
  });

  it.each([
    ['wait=soon&version=1', 'wait'],
    ['wait=5s', 'version'],
    ['wait=5s&version=-2', 'version'],
  ])('refuses ?%s with 400 naming %s', async (query, param) => {
    const res = await fetch(`${httpSide.url}/v1/config?${query}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { code: 'VALIDATION_FAILED', details: { issues: [{ path: param }] } },
    });
  });

  it('a long-poll on an old version answers at once; on the current one, 304 when the wait ends', async () => {
    const stale = await fetch(`${httpSide.url}/v1/config?wait=30s&version=0`);
    expect(stale.status).toBe(200);
    const started = Date.now();
    const idle = await fetch(`${httpSide.url}/v1/config?wait=300ms&version=1`);
    expect(idle.status).toBe(304);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(versionOf(idle)).toBe(1);
  });

  it('bounds the waiters: 503 past the bound, counted in maxine_sidecar_config_waiters', async () => {
    const aborts = [new AbortController(), new AbortController()];
    const held = aborts.map((a) =>
      fetch(`${signalSide.url}/v1/config?wait=30s&version=1`, { signal: a.signal }).catch(
        () => undefined,
      ),
    );
    const metric = async () =>
      /^maxine_sidecar_config_waiters (\d+)$/m.exec(
        await (await fetch(`${signalSide.url}/metrics`)).text(),
      )?.[1];
    await eventually(async () => (await metric()) === '2', 2000, 'two waiters');
    const refused = await fetch(`${signalSide.url}/v1/config?wait=30s&version=1`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: { code: 'CONFIG_WAITERS_FULL' } });
    for (const a of aborts) a.abort();
    await Promise.all(held);
    await eventually(async () => (await metric()) === '0', 2000, 'no waiter left');
  });
});

describe('a config change', () => {
  it('writes the files at start, runs no reload for the first load', async () => {
    expect(await readSet(httpSide.dir)).toEqual({ greeting: 'hello', mode: 'a' });
    expect(await readFile(join(httpSide.dir, 'greeting'), 'utf8')).toBe('hello');
    expect(reloads).toBe(0);
  });

  it('wakes the long-poll, carries version, hash and changed keys, rewrites the files, reloads once', async () => {
    const events = await EventClient.connect(`${op.wsUrl}/api/v1/events?types=config_changed`);
    const poll = fetch(`${httpSide.url}/v1/config?wait=30s&version=1`);
    let answered = false;
    void poll.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(false);

    const next = { greeting: 'hi', extra: 'x' };
    const changedAt = Date.now();
    await op.write('web.yaml', web(next));
    const res = await poll;
    expect(Date.now() - changedAt).toBeLessThan(2000);
    expect(res.status).toBe(200);
    expect(versionOf(res)).toBe(2);
    expect(res.headers.get('etag')).toBe(`"${configHash(next)}"`);
    expect(((await res.json()) as { config: unknown }).config).toEqual(next);

    const [event] = await events.until((e) => e.length > 0);
    expect(event).toMatchObject({
      type: 'config_changed',
      data: {
        config: next,
        version: 2,
        hash: configHash(next),
        changes: { added: ['extra'], changed: ['greeting'], removed: ['mode'] },
      },
    });
    await events.close();

    await eventually(
      async () =>
        JSON.stringify(await readSet(httpSide.dir)) ===
        JSON.stringify({ extra: 'x', greeting: 'hi' }),
      2000,
      'new files',
    );
    const names = await readdir(httpSide.dir);
    expect(names.filter((n) => !n.startsWith('..')).sort()).toEqual(['extra', 'greeting']);
    // One timestamped directory: the previous one is gone.
    expect(names.filter((n) => n.startsWith('..') && n !== '..data')).toHaveLength(1);
    await eventually(() => Promise.resolve(reloads === 1), 2000, 'the reload call');
    await eventually(
      async () => (await readFile(hupFile(), 'utf8').catch(() => '')) === 'hup\n',
      2000,
      'the HUP in the child process',
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(reloads).toBe(1);
  });

  it('switches the file set atomically: a reader never sees a mix or a missing ..data', async () => {
    let stop = false;
    const seen: string[] = [];
    const problems: string[] = [];
    const reader = (async () => {
      while (!stop) {
        try {
          const set = await readSet(signalSide.dir);
          if (set.a !== set.b) problems.push(`mixed ${JSON.stringify(set)}`);
          if (set.a !== undefined && seen.at(-1) !== set.a) seen.push(set.a);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // A set replaced between readlink and read: its directory is gone (ENOENT under it).
          // `..data` itself must always be there.
          try {
            await readlink(join(signalSide.dir, '..data'));
          } catch {
            problems.push(`..data missing (${code})`);
          }
        }
      }
    })();
    for (let i = 1; i <= 8; i++) {
      await op.write('web.yaml', web({ a: String(i), b: String(i) }));
      await settle(signalSide, 2 + i);
      await eventually(
        async () => (await readSet(signalSide.dir)).a === String(i),
        2000,
        `set ${i}`,
      );
    }
    stop = true;
    await reader;
    expect(problems).toEqual([]);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.map(Number)).toEqual([...seen.map(Number)].sort((x, y) => x - y));
  });
});
