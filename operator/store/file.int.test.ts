/**
 * The file store on real files, in process: compaction, coalesced renewals, write failures,
 * and the event sequence continuing across operators whose clocks disagree.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Registry as PromRegistry } from 'prom-client';
import { pino } from 'pino';
import { EventLog } from '../events/log.js';
import { ManualClock } from '../registry/clock.js';
import { Registry } from '../registry/registry.js';
import { FileStore } from './file.js';
import type { FileStoreOptions } from './file.js';
import { loadConfig } from '../config.js';
import type { OperatorConfig } from '../config.js';
import { createOperator } from '../operator.js';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'maxine-filestore-'));
  dirs.push(dir);
  return dir;
}

/** A registry and event log wired as the operator wires them, with a file store attached. */
async function wired(dir: string, options: Partial<FileStoreOptions> = {}) {
  const clock = new ManualClock();
  const events = new EventLog(1000, clock);
  const registry = new Registry({
    clock,
    emit: (e) => void events.append(e),
    allowUndeclared: true,
    defaultTtlSeconds: 30,
    defaultRemoveAfterSeconds: 60,
    massExpiryThreshold: 0.5,
    massExpiryMinInstances: 10,
  });
  const prom = new PromRegistry();
  const store = new FileStore({
    dir,
    fsync: 'always',
    fsyncIntervalMs: 1000,
    renewIntervalMs: 60_000,
    compactBytes: 1024 * 1024,
    logger: silent,
    prom,
    ...options,
  });
  const kept = await store.load();
  events.continueAfter(kept.seq);
  registry.restore(kept.instances);
  store.attach(registry, events);
  cleanups.push(() => store.close());
  return { clock, events, registry, store, prom, kept };
}

function register(registry: Registry, n: number) {
  return registry.register({
    namespace: 'shop',
    service: `svc-${n % 3}`,
    host: `10.0.0.${n}`,
    port: 8080,
    weight: 1,
    metadata: { n: String(n), pad: 'x'.repeat(100) },
  }).instance;
}

/** Waits (up to 10 s) for `cond`: on a loaded machine an fsync may take a while. */
async function until(cond: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await cond()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

async function metric(prom: PromRegistry, name: string): Promise<number> {
  const m = (await prom.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

describe('FileStore', () => {
  it('compacts the log into a snapshot past its bound, and a new store reads the same state', async () => {
    const dir = await tempDir();
    const a = await wired(dir, { compactBytes: 4096 });
    for (let n = 0; n < 60; n++) {
      register(a.registry, n);
      if (n % 4 === 0) a.registry.deregister(register(a.registry, 1000 + n).id);
      await a.store.committed?.();
    }
    expect(await metric(a.prom, 'maxine_store_compactions_total')).toBeGreaterThan(0);
    const files = await readdir(dir);
    expect(files).toContain('snapshot.jsonl');
    expect(files.filter((f) => f.startsWith('log.'))).toHaveLength(1);
    expect(
      (await stat(join(dir, files.find((f) => f.startsWith('log.')) ?? ''))).size,
    ).toBeLessThan(4096 + 1024);
    const expected = [...a.registry.persistedAll()];
    await a.store.close();

    const b = await wired(dir);
    expect(b.kept.instances).toHaveLength(60);
    expect([...b.registry.persistedAll()].sort((x, y) => x.id.localeCompare(y.id))).toEqual(
      expected.sort((x, y) => x.id.localeCompare(y.id)),
    );
    expect(b.kept.seq).toBe(a.events.lastSeq);
  });

  it('keeps writing when compaction fails, and does not retry it on every write', async () => {
    const dir = await tempDir();
    const a = await wired(dir, { compactBytes: 4096 });
    // The snapshot's temporary file cannot be created: a directory holds its name.
    await mkdir(join(dir, 'snapshot.jsonl.tmp'));
    for (let n = 0; n < 60; n++) {
      register(a.registry, n);
      await a.store.committed?.();
    }
    expect(await metric(a.prom, 'maxine_store_compactions_total')).toBe(0);
    expect(await metric(a.prom, 'maxine_store_errors_total')).toBe(1);
    expect(a.store.available()).toBe(true);
    await a.store.close();
    await rm(join(dir, 'snapshot.jsonl.tmp'), { recursive: true });
    expect((await wired(dir)).kept.instances).toHaveLength(60);
  });

  it('compacts at start a log already past its bound, with no change needed', async () => {
    const dir = await tempDir();
    const a = await wired(dir);
    for (let n = 0; n < 40; n++) register(a.registry, n);
    await a.store.committed?.();
    await a.store.close();
    const b = await wired(dir, { compactBytes: 4096 });
    await until(async () => (await metric(b.prom, 'maxine_store_compactions_total')) > 0);
    expect(await metric(b.prom, 'maxine_store_errors_total')).toBe(0);
    expect(await metric(b.prom, 'maxine_store_compactions_total')).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['log.1.jsonl', 'snapshot.jsonl']);
    await b.store.close();
    const c = await wired(dir);
    expect(c.kept.instances).toHaveLength(40);
  });

  it('writes heartbeats coalesced: one record per instance per renewal interval', async () => {
    const dir = await tempDir();
    const a = await wired(dir, { renewIntervalMs: 300 });
    const ids = [0, 1, 2].map((n) => register(a.registry, n).id);
    await a.store.committed?.();
    const log = join(dir, 'log.0.jsonl');
    const afterRegistrations = (await readFile(log, 'utf8')).split('\n').length;
    for (let beat = 0; beat < 20; beat++) {
      a.clock.advance(1000);
      for (const id of ids) a.registry.heartbeat(id, {});
    }
    // Nothing yet: renewals wait for the interval.
    expect((await readFile(log, 'utf8')).split('\n').length).toBe(afterRegistrations);
    const grown = async () => (await readFile(log, 'utf8')).split('\n').length > afterRegistrations;
    await until(grown);
    await new Promise((r) => setTimeout(r, 400)); // one more interval: nothing more is written
    const text = await readFile(log, 'utf8');
    expect(text.split('\n').length).toBe(afterRegistrations + 3);
    await a.store.close();
    const b = await wired(dir);
    for (const id of ids)
      expect(b.registry.persisted(id)?.lastHeartbeat).toBe(a.registry.persisted(id)?.lastHeartbeat);
  });

  it('with fsync interval, answers after the write and fsyncs on the interval', async () => {
    const dir = await tempDir();
    const a = await wired(dir, { fsync: 'interval', fsyncIntervalMs: 300 });
    register(a.registry, 1);
    await a.store.committed?.();
    expect(await a.prom.getSingleMetricAsString('maxine_store_fsync_seconds')).toContain(
      'maxine_store_fsync_seconds_count 0',
    );
    expect((await readFile(join(dir, 'log.0.jsonl'), 'utf8')).split('\n')).toHaveLength(2);
    const fsyncs = async (): Promise<number> => {
      const text = await a.prom.getSingleMetricAsString('maxine_store_fsync_seconds');
      return Number(/^maxine_store_fsync_seconds_count (\d+)/m.exec(text)?.[1] ?? 0);
    };
    await until(async () => (await fsyncs()) > 0);
    expect(await fsyncs()).toBe(1);
    await new Promise((r) => setTimeout(r, 700)); // nothing new written: no more fsyncs
    expect(await fsyncs()).toBe(1);
  });

  it('writes the pending renewals when it closes', async () => {
    const dir = await tempDir();
    const a = await wired(dir, { renewIntervalMs: 600_000 });
    const { id } = register(a.registry, 1);
    await a.store.committed?.();
    a.clock.advance(7000);
    a.registry.heartbeat(id, { status: 'warning', output: 'slow' });
    await a.store.close();
    const b = await wired(dir);
    expect(b.registry.persisted(id)).toMatchObject({
      lastHeartbeat: a.registry.persisted(id)?.lastHeartbeat,
      check: { status: 'warning', output: 'slow' },
    });
  });

  it('answers STORE_UNAVAILABLE while the log cannot be written, then recovers without a torn record', async () => {
    const dir = await tempDir();
    const a = await wired(dir, { retryMs: 200 });
    register(a.registry, 1);
    await a.store.committed?.();
    // The log's handle closed behind the store's back: the next write fails (EBADF).
    await (a.store as unknown as { handle: { close(): Promise<void> } }).handle.close();
    register(a.registry, 2);
    await expect(a.store.committed?.()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(a.store.available()).toBe(false);
    expect(await metric(a.prom, 'maxine_store_errors_total')).toBe(1);
    await expect(a.store.committed?.()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await until(() => a.store.available());
    expect(a.store.available()).toBe(true);
    register(a.registry, 3);
    await a.store.committed?.();
    await a.store.close();
    const b = await wired(dir);
    expect(b.kept.instances.map((i) => i.host).sort()).toEqual([
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.3',
    ]);
  });

  it('drops from the store what the configuration now refuses, and reports not ready while it cannot write', async () => {
    const dir = await tempDir();
    const resources = await tempDir();
    const args = ['--port', '0', '--resources', resources, '--store', 'file', '--store-dir', dir];
    const first = createOperator(loadConfig(args, {}) as OperatorConfig, silent);
    const { port } = await first.start();
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'shop', service: 'web', host: 'h', port: 1 }),
    });
    expect(res.status).toBe(201);
    await first.stop();

    const strict = loadConfig([...args, '--disallow-undeclared'], {}) as OperatorConfig;
    const second = createOperator(strict, silent);
    const { port: port2 } = await second.start();
    expect(second.registry.stats().instances.total).toBe(0);
    const base = `http://127.0.0.1:${port2}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await second.stop();
    const third = await wired(dir);
    expect(third.kept.instances).toEqual([]);
  });

  it('answers a registration only once it is written: 503 STORE_UNAVAILABLE and not ready when the write fails', async () => {
    const dir = await tempDir();
    const resources = await tempDir();
    const config = loadConfig(
      ['--port', '0', '--resources', resources, '--store', 'file', '--store-dir', dir],
      {},
    ) as OperatorConfig;
    const op = createOperator(config, silent);
    const { port } = await op.start();
    cleanups.push(() => op.stop());
    const base = `http://127.0.0.1:${port}`;
    const registerOne = (host: string) =>
      fetch(`${base}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace: 'shop', service: 'web', host, port: 1 }),
      });
    expect((await registerOne('a')).status).toBe(201);
    await (op.store as unknown as { handle: { close(): Promise<void> } }).handle.close();
    const refused = await registerOne('b');
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: 'STORE_UNAVAILABLE' } });
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    // A second later the log is reopened and the pending change written: ready again.
    await until(async () => (await fetch(`${base}/readyz`)).status === 200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await registerOne('b')).status).toBe(200); // renewed: it was kept in memory
  });

  it('continues the event sequence above the stored one, even when the new clock is behind', async () => {
    const dir = await tempDir();
    const resources = await tempDir();
    const config = loadConfig(
      ['--port', '0', '--resources', resources, '--store', 'file', '--store-dir', dir],
      {},
    ) as OperatorConfig;
    const first = createOperator(
      config,
      silent,
      new ManualClock(Date.parse('2026-06-01T00:00:00Z')),
    );
    const { port } = await first.start();
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'shop', service: 'web', host: 'h', port: 1 }),
    });
    expect(res.status).toBe(201);
    const seqBefore = first.events.lastSeq;
    await first.stop();

    // An hour behind: numbering from its own clock would restart below what clients saw.
    const second = createOperator(
      config,
      silent,
      new ManualClock(Date.parse('2026-05-31T23:00:00Z')),
    );
    await second.start();
    cleanups.push(() => second.stop());
    expect(second.events.lastSeq).toBeGreaterThan(seqBefore);
    expect(second.registry.getService('shop', 'web')?.items).toHaveLength(1);
  });
});
