/**
 * The package's examples run as written (tsx, `@maxine/client` resolved to the sources by the
 * repository's tsconfig `paths`) against a real operator process.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnListening } from '../../../test/helpers/spawn.js';

const run = promisify(execFile);
const EXAMPLES = 'clients/typescript/examples';
let dir: string;
let operator: ChildProcess;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-client-examples-'));
  const started = await spawnListening(
    ['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', dir],
    { env: { ...process.env } },
  );
  operator = started.proc;
  url = `http://127.0.0.1:${started.port}`;
});
afterAll(async () => {
  operator.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

async function instancesOf(service: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/services/${service}`);
  if (res.status === 404) return 0;
  return ((await res.json()) as { instances: unknown[] }).instances.length;
}

describe('clients/typescript/examples', () => {
  it('register-and-discover.ts registers, discovers itself from the cache, deregisters', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', `${EXAMPLES}/register-and-discover.ts`, url],
      { timeout: 60_000 },
    );
    const [registered, discovered] = stdout.trim().split('\n');
    const id = /^registered (\S+), heartbeating every 5 s$/.exec(registered ?? '')?.[1];
    expect(id).toMatch(/^web-[0-9a-f]{16}$/);
    expect(discovered).toBe(`discovered ${id} at 127.0.0.1:8080 (from the cache: true)`);
    expect(await instancesOf('shop/web')).toBe(0); // close() deregistered it
  });

  it('watch.ts prints the snapshot, then typed events as they happen, and stops on SIGINT', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', `${EXAMPLES}/watch.ts`, url, 'shop/*'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const until = async (pattern: RegExp): Promise<void> => {
      for (let i = 0; i < 600 && !pattern.test(out); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(pattern);
    };
    try {
      await until(/resync_end\s+snapshot: \d+ services, \d+ instances/);
      await fetch(`${url}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service: 'cart', namespace: 'shop', host: '10.0.0.7', port: 8080 }),
      });
      await until(/\d+ service_registered shop\/cart cart-[0-9a-f]{16} 10\.0\.0\.7:8080/);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
