/**
 * The `file` store with real processes: an operator killed with SIGKILL in the middle of a
 * registration burst comes back with every registration it acknowledged, its event sequence
 * continuing, and lapsed leases going the normal expiry way; a torn log tail is dropped with a
 * warning; a damaged snapshot stops the start with a clear message and a non-zero exit.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnListening } from '../helpers/spawn.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

let root: string;
let resources: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'maxine-store-'));
  resources = join(root, 'resources');
  await mkdir(resources);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function storeArgs(dir: string, fsync = 'always'): string[] {
  return [
    ...['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', resources],
    ...['--store', 'file', '--store-dir', dir, '--store-fsync', fsync, '--log-level', 'info'],
    ...['--address-rate-limit', '0', '--sweep-interval-ms', '100'],
  ];
}

async function startStore(dir: string, fsync?: string) {
  const started = await spawnListening(storeArgs(dir, fsync), { env: { ...process.env } });
  children.push(started.proc);
  return { ...started, base: `http://127.0.0.1:${started.port}` };
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
  const m = /^maxine_event_sequence (\d+)/m.exec(text);
  if (m === null) throw new Error('no maxine_event_sequence in /metrics');
  return Number(m[1]);
}

interface Item {
  id: string;
  health: { status: string; reason: string };
  lease?: { ttlSeconds: number; expiresAt: string };
  metadata: Record<string, string>;
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

describe('file store (real processes)', () => {
  // `interval` answers once the record is written to the kernel: a killed process loses nothing.
  it.each(['always', 'interval'])(
    'with --store-fsync %s, keeps every acknowledged registration through kill -9 mid-burst; the sequence continues; lapsed leases go critical',
    async (fsync) => {
      const dir = join(root, `burst-${fsync}`);
      const first = await startStore(dir, fsync);
      const lapsing = await register(first.base, {
        service: 'lapsing',
        host: '10.9.9.9',
        port: 1,
        ttlSeconds: 1,
        metadata: { kept: 'yes' },
      });
      expect(lapsing.status).toBe(201);
      const lapsingId = ((await lapsing.json()) as { instance: { id: string } }).instance.id;

      const acked = new Map<string, Item>();
      let killedAt = -1;
      let sent = 0;
      let seqRead: Promise<number> | undefined;
      const killAfter = 120;
      const worker = async (): Promise<void> => {
        while (sent < 2000 && killedAt < 0) {
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
          if (acked.size >= killAfter / 2 && seqRead === undefined)
            seqRead = sequenceOf(first.base);
          // At once, in the same tick as the answer: the writes of the other requests in flight
          // get no grace.
          if (acked.size >= killAfter && killedAt < 0) {
            killedAt = acked.size;
            first.proc.kill('SIGKILL');
          }
        }
      };
      await Promise.all(Array.from({ length: 24 }, () => worker()));
      await exited(first.proc);
      expect(first.proc.signalCode).toBe('SIGKILL');
      expect(acked.size).toBeGreaterThanOrEqual(killAfter);
      const seqBefore = (await seqRead) ?? 0;
      expect(seqBefore).toBeGreaterThan(0);

      const second = await startStore(dir, fsync);
      const present = new Map<string, Item>();
      for (let s = 0; s < 7; s++)
        for (const item of await instancesOf(second.base, `burst-${s}`)) present.set(item.id, item);
      const missing = [...acked.keys()].filter((id) => !present.has(id));
      expect(missing).toEqual([]);
      for (const [id, before] of acked) expect(present.get(id)?.lease).toEqual(before.lease);
      expect(await sequenceOf(second.base)).toBeGreaterThan(seqBefore);
      const restoredLine = second.lines.find(
        (l) => l.msg === 'registrations restored from the store',
      );
      expect(restoredLine).toMatchObject({ store: 'file', refused: 0 });
      expect(restoredLine?.restored).toBeGreaterThanOrEqual(acked.size + 1);

      // The lease that lapsed while the operator was down went the expiry way, not refreshed.
      const [lapsed] = await instancesOf(second.base, 'lapsing');
      expect(lapsed).toMatchObject({
        id: lapsingId,
        metadata: { kept: 'yes' },
        health: { status: 'critical', reason: 'lease-expired' },
      });
    },
    120_000,
  );

  it('drops a torn log tail with a warning naming file and offset, and keeps what was before it', async () => {
    const dir = join(root, 'torn');
    const first = await startStore(dir);
    const ok = await register(first.base, { service: 'torn', host: '10.1.1.1', port: 80 });
    expect(ok.status).toBe(201);
    first.proc.kill('SIGKILL');
    await exited(first.proc);
    const log = join(dir, 'log.0.jsonl');
    const size = (await readFile(log)).length;
    await appendFile(log, '0badc0de {"t":"put","seq":12,"instance":{"id":"half');

    const second = await startStore(dir);
    expect((await instancesOf(second.base, 'torn')).map((i) => i.id)).toHaveLength(1);
    expect(second.lines.find((l) => l.level === 'warn' && l.file === log)).toMatchObject({
      offset: size,
      reason: 'incomplete last record',
    });
    // The torn bytes are gone from the file: later records follow the valid ones.
    expect((await readFile(log)).length).toBeGreaterThanOrEqual(size);
    expect((await readFile(log, 'utf8')).includes('"id":"half')).toBe(false);
  }, 60_000);

  it('refuses to start on a damaged snapshot, naming the file and how to move it aside', async () => {
    const dir = join(root, 'damaged');
    const first = await startStore(dir);
    first.proc.kill('SIGKILL');
    await exited(first.proc);
    await writeFile(join(dir, 'snapshot.jsonl'), '12345678 {"t":"snapshot"}\n');
    expect(await readdir(dir)).toContain('snapshot.jsonl');

    const proc = spawn(process.execPath, storeArgs(dir), { stdio: ['ignore', 'pipe', 'pipe'] });
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
    expect(fatal).toMatchObject({
      file: join(dir, 'snapshot.jsonl'),
      offset: 0,
      advice: expect.stringContaining(`mv ${dir} ${dir}.damaged`) as unknown,
    });
    expect(String(fatal?.msg)).toContain('the store cannot be trusted');
    expect(output).not.toMatch(/\n\s+at /); // no stack trace
  }, 60_000);
});
