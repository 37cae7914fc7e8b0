/** The kept event log on real files, in process: continue, append, compact, new epoch. */
import { writeSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { Counter, Registry as PromRegistry } from 'prom-client';
import { pino } from 'pino';
import type { RegistryEventDraft } from '../../common/wire.js';
import { EventLog } from '../events/log.js';
import { ManualClock } from '../registry/clock.js';
import { EventFile } from './event-file.js';
import type { EventFileOptions } from './event-file.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function eventFile(dir: string, appendSync?: EventFileOptions['appendSync']) {
  const prom = new PromRegistry();
  const errors = new Counter({ name: 'e', help: 'e', labelNames: ['op'], registers: [prom] });
  const compactions = new Counter({ name: 'c', help: 'c', registers: [prom] });
  return {
    file: new EventFile({
      dir,
      logger: pino({ level: 'silent' }),
      errors,
      compactions,
      ...(appendSync && { appendSync }),
    }),
    compactions,
    errors,
  };
}

const draft = (n: number): RegistryEventDraft => ({
  type: 'service_deleted',
  service: { namespace: 'ns', name: `s${n}` },
  data: { declared: true },
});

const lines = async (dir: string) =>
  (await readFile(join(dir, 'events.jsonl'), 'utf8')).split('\n').slice(0, -1);

describe('EventFile', () => {
  it("a restarted log continues the file: the start's own events are appended, not the file rewritten", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maxine-events-'));
    dirs.push(dir);
    const a = eventFile(dir);
    expect(await a.file.load()).toBeUndefined();
    const first = new EventLog(100, new ManualClock(), 1000);
    a.file.attach(first);
    for (let i = 0; i < 3; i++) first.append(draft(i));
    await a.file.close();
    const header = (await lines(dir))[0];

    const b = eventFile(dir);
    const kept = await b.file.load();
    expect(kept).toMatchObject({ epoch: first.epoch, after: 1000, lastSeq: 1003 });
    const second = new EventLog(100, new ManualClock(), 5_000_000);
    second.restore(kept!.epoch, kept!.after, kept!.events);
    second.append(draft(9)); // before attach, as the start's own events are
    b.file.attach(second);
    second.append(draft(10));
    await b.file.close();
    const now = await lines(dir);
    expect(now[0]).toBe(header);
    expect(now.map((l) => (JSON.parse(l.slice(9)) as { seq?: number }).seq)).toEqual([
      undefined,
      1001,
      1002,
      1003,
      1004,
      1005,
    ]);
  });

  it('stays within twice the log bounds by rewriting; a log of another epoch starts the file afresh', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maxine-events-'));
    dirs.push(dir);
    const a = eventFile(dir);
    await a.file.load();
    const log = new EventLog(16, new ManualClock(), 0);
    a.file.attach(log);
    let most = 0;
    for (let i = 0; i < 200; i++) {
      log.append(draft(i));
      most = Math.max(most, (await lines(dir)).length - 1);
      await new Promise((r) => setTimeout(r, 1));
    }
    await a.file.close();
    // Past 32 lines a rewrite starts; the events of the few turns it takes land in the old file.
    expect(most).toBeLessThan(3 * 16);
    expect((await lines(dir)).length - 1).toBeLessThanOrEqual(2 * 16);
    expect((await a.compactions.get()).values[0]!.value).toBeGreaterThanOrEqual(200 / 32);
    const b = eventFile(dir);
    const kept = await b.file.load();
    expect(kept?.lastSeq).toBe(200);
    const other = new EventLog(16, new ManualClock(), 7);
    b.file.attach(other);
    await b.file.close();
    const afresh = await lines(dir);
    expect(afresh).toHaveLength(1);
    expect(JSON.parse(afresh[0]!.slice(9))).toMatchObject({ epoch: other.epoch, after: 7 });
  });

  it('a failed write empties the file (the next start cannot continue past a hole) until a rewrite restores it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maxine-events-'));
    dirs.push(dir);
    let failNext = false;
    const a = eventFile(dir, (fd, bytes) => {
      if (failNext) {
        failNext = false;
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      }
      return writeSync(fd, bytes);
    });
    await a.file.load();
    const log = new EventLog(100, new ManualClock(), 0);
    a.file.attach(log);
    log.append(draft(1));
    failNext = true;
    log.append(draft(2)); // sent to clients, not kept
    log.append(draft(3)); // not written while the file is broken
    expect(await readFile(join(dir, 'events.jsonl'), 'utf8')).toBe('');
    expect(await eventFile(dir).file.load()).toBeUndefined();
    // The rewrite (normally on a timer) brings back everything the log holds.
    await a.file.compact();
    log.append(draft(4));
    await a.file.close();
    const kept = await eventFile(dir).file.load();
    expect(kept?.events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(kept?.epoch).toBe(log.epoch);
  });
});
