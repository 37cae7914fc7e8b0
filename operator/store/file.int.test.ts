/**
 * The file store on real files, in process: compaction, coalesced renewals, write failures,
 * and the event sequence continuing across operators whose clocks disagree.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
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
    await new Promise((r) => setTimeout(r, 700));
    const text = await readFile(log, 'utf8');
    expect(text.split('\n').length).toBe(afterRegistrations + 3);
    await a.store.close();
    const b = await wired(dir);
    for (const id of ids)
      expect(b.registry.persisted(id)?.lastHeartbeat).toBe(a.registry.persisted(id)?.lastHeartbeat);
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
    await new Promise((r) => setTimeout(r, 500));
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
