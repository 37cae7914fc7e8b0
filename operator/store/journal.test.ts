import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { logSink } from '../../test/helpers/operator.js';
import { appendWhole, JournalFile, readIfExists, replaceWith, syncAndClose } from './journal.js';
import type { JournalFileOptions, JournalRewrite } from './journal.js';

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'maxine-journal.'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

describe('journal file mechanics', () => {
  it(
    'readIfExists: the bytes, or undefined when there is no file',
    withDir(async (dir) => {
      expect(await readIfExists(join(dir, 'none'))).toBeUndefined();
      writeFileSync(join(dir, 'f'), 'abc');
      expect((await readIfExists(join(dir, 'f')))?.toString()).toBe('abc');
      await expect(readIfExists(dir)).rejects.toThrow(/EISDIR/);
    }),
  );

  it.each([
    { wrote: 5, error: undefined },
    { wrote: 3, error: 'short write: 3 of 5' },
  ])('appendWhole: a write of $wrote of 5 bytes', ({ wrote, error }) => {
    const append = (): void => appendWhole(7, Buffer.from('hello'), () => wrote);
    if (error === undefined) expect(append).not.toThrow();
    else expect(append).toThrow(error);
  });

  it(
    'replaceWith: w writes afresh, a after what the temp file holds; the fd stays open at the end',
    withDir((dir) => {
      const path = join(dir, 'f');
      const tmp = `${path}.tmp`;
      writeFileSync(path, 'old');
      syncAndClose(replaceWith(tmp, 'w', 'one\n', path), false);
      expect(readFileSync(path, 'utf8')).toBe('one\n');
      writeFileSync(tmp, 'head\n');
      const fd = replaceWith(tmp, 'a', 'tail\n', path);
      appendWhole(fd, Buffer.from('more\n'));
      syncAndClose(fd, true);
      expect(readFileSync(path, 'utf8')).toBe('head\ntail\nmore\n');
      expect(existsSync(tmp)).toBe(false);
    }),
  );

  it(
    'replaceWith: a failed rename throws and leaves the file as it was',
    withDir((dir) => {
      const path = join(dir, 'sub', 'f'); // the folder does not exist: the rename fails
      const tmp = join(dir, 'f.tmp');
      expect(() => replaceWith(tmp, 'w', 'x', path)).toThrow(/ENOENT/);
      expect(existsSync(path)).toBe(false);
      expect(readFileSync(tmp, 'utf8')).toBe('x');
    }),
  );
});

/** A JournalFile on `dir/j`, the head `HEAD\n` plus what the test says; a failing append seam. */
function journal(dir: string, over: Partial<JournalFileOptions> = {}) {
  const { sink, logs } = logSink();
  const errors = new Counter({
    name: 'journal_test_errors',
    help: 'x',
    labelNames: ['op'],
    registers: [new PromRegistry()],
  });
  const state = { failNext: false, bound: Infinity, rewrites: 0, emptied: 0, restThrows: false };
  const path = join(dir, 'j');
  const file: JournalFile = new JournalFile({
    path,
    dir,
    logger: createLogger('debug', sink),
    errors,
    ops: { write: 'j-write', compact: 'j-compact' },
    messages: { writeFailed: 'write failed', compactFailed: 'rewrite failed' },
    retryMs: 20,
    appendSync: (fd, bytes) => {
      if (!state.failNext) return writeSync(fd, bytes);
      state.failNext = false;
      throw new Error('ENOSPC (test)');
    },
    needsRewrite: (): boolean => file.bytes > state.bound,
    rewrite: (): JournalRewrite => ({
      text: 'HEAD\n',
      rest: (pending) => {
        if (state.restThrows) throw new Error('moved on (test)');
        return pending.join('');
      },
      swapped: () => (state.rewrites += 1),
    }),
    emptied: () => (state.emptied += 1),
    ...over,
  });
  const count = async (op: string): Promise<number> =>
    (await errors.get()).values.find((v) => v.labels.op === op)?.value ?? 0;
  const text = (): string => readFileSync(path, 'utf8');
  return { file, state, logs, count, text, path };
}

const until = async (cond: () => boolean): Promise<void> => {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('JournalFile', () => {
  it.each([{ syncEach: true }, { syncEach: false }])(
    'start, then appends with one write each (syncEach $syncEach); close syncs and closes',
    ({ syncEach }) =>
      withDir(async (dir) => {
        const j = journal(dir, { syncEach });
        j.file.start('HEAD\n');
        expect(j.text()).toBe('HEAD\n');
        expect(j.file.append('a\n', {})).toBe(true);
        expect(j.file.append('bb\n', {})).toBe(true);
        expect(j.file.bytes).toBe(10);
        await j.file.sync();
        expect(j.text()).toBe('HEAD\na\nbb\n');
        await j.file.close(true);
        expect(j.file.append('late\n', {})).toBe(false);
        expect(j.text()).toBe('HEAD\na\nbb\n');
      })(),
  );

  it(
    'continueAt cuts a torn tail and appends after what is kept',
    withDir(async (dir) => {
      const j = journal(dir);
      writeFileSync(j.path, 'HEAD\na\ntor');
      j.file.continueAt(7);
      expect(j.file.append('b\n', {})).toBe(true);
      await j.file.close(false);
      expect(j.text()).toBe('HEAD\na\nb\n');
    }),
  );

  it(
    'past its bound it is rewritten: the head, then the lines appended while the temp file was written',
    withDir(async (dir) => {
      const j = journal(dir);
      j.file.start('HEAD\n');
      j.file.append('old1\n', {});
      j.state.bound = 5;
      j.file.maybeCompact(); // starts a rewrite; it yields at the temp file's write
      expect(j.file.append('during\n', {})).toBe(true);
      await until(() => j.state.rewrites === 1);
      await j.file.close(false);
      expect(j.text()).toBe('HEAD\nduring\n');
      expect(j.file.bytes).toBe(12);
    }),
  );

  it.each([
    { emptyOnFailure: false, after: 'HEAD\na\n', emptied: 0 },
    { emptyOnFailure: true, after: '', emptied: 1 },
  ])(
    'a failed append (emptyOnFailure $emptyOnFailure) breaks the file (no more writes) until a rewrite after retryMs replaces it',
    ({ emptyOnFailure, after, emptied }) =>
      withDir(async (dir) => {
        const j = journal(dir, { emptyOnFailure });
        j.file.start('HEAD\n');
        j.file.append('a\n', {});
        j.state.failNext = true;
        expect(j.file.append('lost\n', { seq: 9 })).toBe(false);
        expect(await j.count('j-write')).toBe(1);
        expect(j.logs.find((l) => l.msg === 'write failed')).toMatchObject({
          seq: 9,
          retryInMs: 20,
        });
        expect(j.text()).toBe(after);
        expect(j.state.emptied).toBe(emptied);
        // Broken: nothing more is appended (no write is even tried).
        expect(j.file.append('skipped\n', {})).toBe(false);
        expect(j.text()).toBe(after);
        await until(() => j.state.rewrites === 1);
        expect(j.text()).toBe('HEAD\n');
        expect(j.file.append('c\n', {})).toBe(true);
        await j.file.close(false);
        expect(j.text()).toBe('HEAD\nc\n');
      })(),
  );

  it(
    'a failed rewrite is counted, logged and tried again after retryMs',
    withDir(async (dir) => {
      const j = journal(dir);
      j.file.start('HEAD\n');
      j.file.append('a\n', {});
      j.state.restThrows = true;
      await j.file.compact();
      expect(await j.count('j-compact')).toBe(1);
      expect(j.logs.some((l) => l.msg === 'rewrite failed')).toBe(true);
      expect(j.text()).toBe('HEAD\na\n');
      j.state.restThrows = false;
      await until(() => j.state.rewrites === 1);
      await j.file.close(false);
      expect(j.text()).toBe('HEAD\n');
    }),
  );

  it.each([
    { repair: true, after: 'HEAD\n', rewrites: 1 },
    { repair: false, after: 'HEAD\na\n', rewrites: 0 },
  ])(
    'close($repair) with a failed append waiting for its retry: one last rewrite only when asked',
    ({ repair, after, rewrites }) =>
      withDir(async (dir) => {
        const j = journal(dir, { retryMs: 60_000 });
        j.file.start('HEAD\n');
        j.file.append('a\n', {});
        j.state.failNext = true;
        j.file.append('b\n', {});
        let closing = 0;
        await j.file.close(repair, () => (closing += 1));
        expect(closing).toBe(1);
        expect(j.state.rewrites).toBe(rewrites);
        expect(j.text()).toBe(after);
      })(),
  );
});
