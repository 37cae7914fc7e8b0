import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendWhole, readIfExists, replaceWith, syncAndClose } from './journal.js';

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
