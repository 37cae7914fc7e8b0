/**
 * The `file` store's config history file (config-file.ts) on a real folder: each change is on
 * disk when the history announces it, a torn last line is dropped, damage before it stops the
 * start, and the file is rewritten to stay within twice what the history holds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { logSink } from '../../test/helpers/operator.js';
import { ManualClock } from '../registry/clock.js';
import { ConfigHistory } from '../registry/config-history.js';
import { StoreCorruptError } from './codec.js';
import { CONFIG_FILE, ConfigFile, decodeConfigFile } from './config-file.js';
import type { ConfigFileOptions } from './config-file.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'maxine-config-file-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function setup(dir: string, maxBytes?: number, seams: Partial<ConfigFileOptions> = {}) {
  const { sink, logs } = logSink();
  const errors = new Counter({
    name: 'test_errors',
    help: 'x',
    labelNames: ['op'],
    registers: [new PromRegistry()],
  });
  const file = new ConfigFile({ dir, logger: createLogger('debug', sink), errors, ...seams });
  const history = new ConfigHistory({
    clock: new ManualClock(1_700_000_000_000),
    limit: 10,
    maxServices: 1000,
    ...(maxBytes !== undefined && { maxBytes }),
  });
  return { file, history, logs, errors };
}

/** Records as JSON, by service (the file keeps no order among services). */
const plain = (records: { name: string }[]) =>
  JSON.parse(JSON.stringify([...records].sort((a, b) => a.name.localeCompare(b.name)))) as unknown;

describe('ConfigFile', () => {
  it('a change is in the file as the history announces it (before any event could leave)', async () => {
    const dir = await mkdtemp(join(root, 'sync-'));
    const { file, history } = setup(dir);
    file.attach(history);
    const onDisk: number[] = [];
    // A listener subscribed after the file's runs after it, as the registry's emit does.
    history.subscribe(() => {
      const kept = decodeConfigFile('f', readFileSync(join(dir, CONFIG_FILE)));
      onDisk.push(kept.records.find((r) => r.name === 'cart')?.version ?? 0);
    });
    for (let i = 1; i <= 3; i++) history.next('shop', 'cart', { A: String(i) });
    expect(onDisk).toEqual([1, 2, 3]);
    await file.close();
  });

  it('reads back what the history holds, after changes, evictions and drops', async () => {
    const dir = await mkdtemp(join(root, 'roundtrip-'));
    const { file, history } = setup(dir, 5_000);
    file.attach(history);
    for (let i = 0; i < 40; i++) history.next('shop', `svc-${i % 4}`, { A: 'x'.repeat(200 + i) });
    history.next('shop', 'svc-1', undefined);
    await file.close();
    const again = setup(dir).file;
    expect(plain(await again.load())).toEqual(plain([...history.all()]));
  });

  it('drops a torn last line with a warning; damage before it stops the start', async () => {
    const dir = await mkdtemp(join(root, 'torn-'));
    const { file, history } = setup(dir);
    file.attach(history);
    history.next('shop', 'cart', { A: '1' });
    await file.close();
    const path = join(dir, CONFIG_FILE);
    const good = await readFile(path);
    await appendFile(path, '0badc0de {"t":"put","namesp');
    const reader = setup(dir);
    expect(plain(await reader.file.load())).toEqual(plain([...history.all()]));
    expect(reader.logs.find((l) => l.msg.includes('torn change'))).toMatchObject({
      level: 'warn',
      offset: good.length,
    });
    // The same garbage followed by a valid line is damage, not a torn write.
    await writeFile(path, Buffer.concat([good, Buffer.from('garbage\n')]));
    await appendFile(path, `${good.toString('utf8').split('\n')[1]}\n`);
    await expect(setup(dir).file.load()).rejects.toBeInstanceOf(StoreCorruptError);
  });

  it('still reads a format-1 file (records only, from before the journal)', async () => {
    const dir = await mkdtemp(join(root, 'v1-'));
    const { history } = setup(dir);
    history.next('shop', 'cart', { A: '1' });
    const { encodeLine } = await import('./codec.js');
    const records = [...history.all()];
    await writeFile(
      join(dir, CONFIG_FILE),
      encodeLine({ t: 'config-history', format: 1, count: 1, writtenAt: 'x' }) +
        records.map((r) => encodeLine(r)).join(''),
    );
    expect(plain(await setup(dir).file.load())).toEqual(plain(records));
  });

  it('stays within twice what the history holds (plus a slack): rewritten as it grows', async () => {
    const dir = await mkdtemp(join(root, 'bound-'));
    const { file, history } = setup(dir, 100_000);
    file.attach(history);
    // 400 changes of ~20 KB: 8 MB appended in all.
    for (let i = 0; i < 400; i++) {
      history.next('shop', `svc-${i % 8}`, { BLOB: String(i).repeat(20_000 / String(i).length) });
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 50)); // let a rewrite finish
    }
    await file.close();
    const size = (await stat(join(dir, CONFIG_FILE))).size;
    expect(history.bytes).toBeLessThan(300_000);
    expect(size).toBeLessThan(2 * history.bytes + 1024 * 1024 + 50_000);
    expect(plain(await setup(dir).file.load())).toEqual(plain([...history.all()]));
  });

  it('is not rewritten on every change when its records outweigh their entries (long names)', async () => {
    // 8,000 services named with 240 characters, each with a small config: the file's records
    // (names, hashes, framing) weigh more than twice the entries' JSON plus the slack, so a
    // threshold on the history's bytes alone held right after each rewrite.
    const dir = await mkdtemp(join(root, 'overhead-'));
    const { file } = setup(dir);
    const history = new ConfigHistory({
      clock: new ManualClock(1_700_000_000_000),
      limit: 10,
      maxServices: 10_000,
    });
    const long = (i: number) => `${String(i).padStart(5, '0')}-${'x'.repeat(234)}`;
    for (let i = 0; i < 8000; i++) history.next('shop', long(i), { A: '1' });
    file.attach(history);
    const settle = () => new Promise((r) => setTimeout(r, 100));
    const inodes = new Set<number>([(await stat(join(dir, CONFIG_FILE))).ino]);
    for (let i = 0; i < 5; i++) {
      history.next('shop', long(i), { A: String(i + 2) });
      await settle();
      inodes.add((await stat(join(dir, CONFIG_FILE))).ino);
    }
    await file.close();
    expect(file.bytes).toBeGreaterThan(2 * history.bytes + 1024 * 1024);
    expect(inodes.size).toBe(1); // no rewrite: five small lines were appended
    expect(plain(await setup(dir).file.load())).toEqual(plain([...history.all()]));
  });

  it('a failed append is logged and counted, and the file is rewritten whole from memory', async () => {
    const dir = await mkdtemp(join(root, 'failed-'));
    let failNext = false;
    const appendSync = (fd: number, bytes: Buffer): number => {
      if (!failNext) return writeSync(fd, bytes);
      failNext = false;
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    };
    const { file, history, logs, errors } = setup(dir, undefined, { appendSync, retryMs: 50 });
    file.attach(history);
    history.next('shop', 'cart', { A: '1' });
    failNext = true;
    history.next('shop', 'cart', { A: '2' });
    history.next('shop', 'web', { B: '1' }); // while broken: not appended, kept in memory
    expect(logs.find((l) => l.msg.startsWith('config history write failed'))).toMatchObject({
      level: 'error',
      namespace: 'shop',
      name: 'cart',
    });
    expect((await errors.get()).values).toMatchObject([
      { labels: { op: 'config-write' }, value: 1 },
    ]);
    await new Promise((r) => setTimeout(r, 300));
    history.next('shop', 'cart', { A: '3' }); // appended again after the rewrite
    await file.close();
    expect(plain(await setup(dir).file.load())).toEqual(plain([...history.all()]));
  });
  it('a clean stop while a failed append awaits its retry rewrites the file first', async () => {
    const dir = await mkdtemp(join(root, 'failed-close-'));
    let failNext = false;
    const appendSync = (fd: number, bytes: Buffer): number => {
      if (!failNext) return writeSync(fd, bytes);
      failNext = false;
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    };
    const { file, history } = setup(dir, undefined, { appendSync, retryMs: 60_000 });
    file.attach(history);
    history.next('shop', 'cart', { A: '1' });
    failNext = true;
    history.next('shop', 'cart', { A: '2' }); // version 2 announced, not on disk
    await file.close(); // before the retry: the stop must not leave version 2 out
    const kept = await setup(dir).file.load();
    expect(kept.find((r) => r.name === 'cart')?.version).toBe(2);
    expect(plain(kept)).toEqual(plain([...history.all()]));
  });
  it('a change whose append fails while a rewrite is in flight goes into the rewritten file', async () => {
    const dir = await mkdtemp(join(root, 'failed-rewrite-'));
    let failNext = false;
    const appendSync = (fd: number, bytes: Buffer): number => {
      if (!failNext) return writeSync(fd, bytes);
      failNext = false;
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    };
    const { file, history } = setup(dir, 100_000, { appendSync, retryMs: 60_000 });
    file.attach(history);
    const before = (await stat(join(dir, CONFIG_FILE))).ino;
    // ~1.6 MB appended in one tick: past 2 × 100 KB + 1 MiB, a rewrite starts (and yields).
    for (let i = 0; i < 80; i++)
      history.next('shop', `svc-${i % 4}`, { BLOB: `${i}`.repeat(20_000) });
    failNext = true;
    history.next('shop', 'web', { B: '1' }); // announced as version 1; its append fails
    await new Promise((r) => setTimeout(r, 500)); // the rewrite finishes; the retry is far off
    expect((await stat(join(dir, CONFIG_FILE))).ino).not.toBe(before);
    // As a restart after kill -9 now would read it:
    const kept = await setup(dir).file.load();
    expect(kept.find((r) => r.name === 'web')?.version).toBe(1);
    expect(plain(kept)).toEqual(plain([...history.all()]));
    await file.close();
  });
});
