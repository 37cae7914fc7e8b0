import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { createLogger } from '../common/logger.js';
import { lastResortCollector, mallocTrimmer, MemoryTrim } from './memory-trim.js';

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

  it.each([
    ['gave pages back', () => true, true],
    ['had none to give', () => false, false],
  ])(
    'runs malloc_trim after the collection and logs whether it %s',
    async (_name, mallocTrim, released) => {
      const order: string[] = [];
      const { lines, logger } = logs();
      const trim = new MemoryTrim({
        delayMs: 20,
        logger,
        collect: () => order.push('collect'),
        mallocTrim: () => (order.push('malloc_trim'), mallocTrim()),
      });
      trim.schedule();
      await sleep(150);
      expect(order).toEqual(['collect', 'malloc_trim']);
      expect(
        lines.find((l) => l.msg === 'memory trimmed after the registry copy synced'),
      ).toMatchObject({ cHeapReleased: released });
    },
  );

  it('without malloc_trim (Node 20, 24; musl) the collection still runs and the log says nothing of the C heap', async () => {
    const { lines, logger } = logs();
    let runs = 0;
    const trim = new MemoryTrim({
      delayMs: 20,
      logger,
      collect: () => (runs += 1),
      mallocTrim: null,
    });
    trim.schedule();
    await sleep(150);
    expect(runs).toBe(1);
    const line = lines.find((l) => l.msg === 'memory trimmed after the registry copy synced');
    expect(line).toBeDefined();
    expect(line).not.toHaveProperty('cHeapReleased');
  });

  it('a malloc_trim that throws turns the C-heap trim off with a warning; the collections go on', async () => {
    const { lines, logger } = logs();
    let runs = 0;
    let trims = 0;
    const trim = new MemoryTrim({
      delayMs: 20,
      logger,
      collect: () => (runs += 1),
      mallocTrim: () => {
        trims += 1;
        throw new Error('no such symbol');
      },
    });
    trim.schedule();
    await sleep(120);
    trim.schedule();
    await sleep(120);
    expect(runs).toBe(2);
    expect(trims).toBe(1);
    expect(
      lines.filter((l) => l.msg === 'malloc_trim failed: the C heap is no longer trimmed'),
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

describe('mallocTrimmer', () => {
  /** A stand-in for node:ffi: records what was opened, answers malloc_trim with `result`. */
  function fakeFfi(result: number, calls: unknown[][]) {
    return {
      dlopen: (path: string, definitions: unknown) => {
        calls.push(['dlopen', path, definitions]);
        return {
          functions: { malloc_trim: (pad: unknown) => (calls.push(['malloc_trim', pad]), result) },
        };
      },
    };
  }

  it.each([
    ['malloc_trim gave pages back', 1, true],
    ['malloc_trim had none to give', 0, false],
  ])('calls libc malloc_trim(0) through node:ffi: %s', (_name, result, expected) => {
    const calls: unknown[][] = [];
    const trim = mallocTrimmer('libc.so.6', () => fakeFfi(result, calls));
    expect(trim?.()).toBe(expected);
    expect(calls).toEqual([
      ['dlopen', 'libc.so.6', { malloc_trim: { arguments: ['uint64'], return: 'int32' } }],
      ['malloc_trim', 0n],
    ]);
  });

  it.each([
    ['a Node without node:ffi (20, 24)', () => undefined],
    [
      'FFI turned off or refused (--no-experimental-ffi, the permission model)',
      () => {
        throw new Error('ERR_ACCESS_DENIED');
      },
    ],
    [
      'a C library without malloc_trim (musl)',
      () => ({
        dlopen: () => {
          throw new Error('undefined symbol: malloc_trim');
        },
      }),
    ],
  ])('is undefined on %s', (_name, load) => {
    expect(mallocTrimmer('libc.so.6', load)).toBeUndefined();
  });

  it("keeps node:ffi's ExperimentalWarning out of the output, passes other warnings on, and restores emitWarning", () => {
    const descriptor = Object.getOwnPropertyDescriptor(process, 'emitWarning')!;
    const seen: unknown[] = [];
    const recorder = (warning: string | Error) => {
      seen.push(warning);
    };
    Object.defineProperty(process, 'emitWarning', { ...descriptor, value: recorder });
    try {
      mallocTrimmer('libc.so.6', () => {
        process.emitWarning(
          'FFI is an experimental feature and might change at any time',
          'ExperimentalWarning',
        );
        process.emitWarning('something else', 'Warning');
        return fakeFfi(1, []);
      });
      expect(seen).toEqual(['something else']);
      expect(Object.getOwnPropertyDescriptor(process, 'emitWarning')?.value).toBe(recorder);
    } finally {
      Object.defineProperty(process, 'emitWarning', descriptor);
    }
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
