import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { createLogger } from '../common/logger.js';
import { lastResortCollector, MemoryTrim } from './memory-trim.js';

function logs(): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, logger: createLogger('info', sink, 'sidecar') };
}

describe('MemoryTrim', () => {
  it.each([
    ['one schedule: one collection after the delay', [0], 1],
    ['a burst of schedules (a resync after a resync): still one', [0, 10, 20], 1],
    ['two schedules further apart than the delay: two', [0, 400], 2],
  ])('%s', async (_name, at, expected) => {
    let runs = 0;
    const { lines, logger } = logs();
    const trim = new MemoryTrim({ delayMs: 150, logger, collect: () => (runs += 1) });
    let elapsed = 0;
    for (const t of at) {
      await sleep(t - elapsed);
      elapsed = t;
      trim.schedule();
    }
    expect(runs).toBe(expected - 1); // the last schedule's collection is still to come
    await sleep(500);
    expect(runs).toBe(expected);
    expect(trim.runs).toBe(expected);
    const logged = lines.filter((l) => l.msg === 'memory trimmed after the registry copy synced');
    expect(logged).toHaveLength(expected);
    expect(logged[0]).toMatchObject({
      rssBeforeMb: expect.any(Number),
      pauseMs: expect.any(Number),
    });
  });

  it('a collection that throws turns the trim off with a warning instead of ending the process', async () => {
    const { lines, logger } = logs();
    let calls = 0;
    const trim = new MemoryTrim({
      delayMs: 20,
      logger,
      collect: () => {
        calls += 1;
        throw new Error('refused by this V8');
      },
    });
    trim.schedule();
    await sleep(150);
    trim.schedule();
    await sleep(150);
    expect(calls).toBe(1);
    expect(trim.runs).toBe(0);
    expect(
      lines.filter((l) => l.msg === 'the memory-reducing collection failed: memory trim off'),
    ).toHaveLength(1);
  });

  it('does nothing with delay 0 (MAXINE_MEMORY_TRIM_SECONDS=0) or once stopped', async () => {
    let runs = 0;
    const { logger } = logs();
    const off = new MemoryTrim({ delayMs: 0, logger, collect: () => (runs += 1) });
    off.schedule();
    const stopped = new MemoryTrim({ delayMs: 20, logger, collect: () => (runs += 1) });
    stopped.schedule();
    stopped.stop();
    await sleep(80);
    expect(runs).toBe(0);
  });
});

describe('lastResortCollector', () => {
  it('collects without --expose-gc and leaves the flag off (no later context gets a gc)', async () => {
    const collect = lastResortCollector();
    expect(typeof collect).toBe('function');
    let garbage: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i }));
    const weak = new WeakRef(garbage[0] as object);
    garbage = undefined;
    await sleep(0); // a WeakRef keeps its target alive until the job that made it ends
    collect!();
    expect(garbage).toBeUndefined();
    expect(weak.deref()).toBeUndefined();
    // (This file's own global may have one: other test files in the worker set the flag.)
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });
});
