/**
 * The config files on a real filesystem: what a previous run left is replaced, a file someone
 * else put in the directory stays, keys that are not safe file names are left out, and the
 * files of removed keys go.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configHash } from '../../common/config-version.js';
import { createLogger } from '../../common/logger.js';
import { ConfigFiles } from './files.js';

let dir: string;
const logs: { msg: string; keys?: string[] }[] = [];
const logger = createLogger(
  'info',
  new Writable({
    write: (chunk: Buffer, _e, done) => {
      for (const line of chunk.toString().split('\n'))
        if (line.trim() !== '') logs.push(JSON.parse(line) as { msg: string });
      done();
    },
  }),
  'sidecar',
);
const snapshot = (config: Record<string, string>, version: number) => ({
  service: { namespace: 'ns', name: 'app' },
  config,
  version,
  hash: configHash(config),
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-files-'));
  logs.length = 0;
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('ConfigFiles', () => {
  it('replaces a previous run, keeps foreign files, skips unsafe keys, removes gone keys', async () => {
    // What a previous sidecar left: its set and a key link of a key that no longer exists.
    await mkdir(join(dir, '..old_set'));
    await writeFile(join(dir, '..old_set', 'stale'), 'x');
    await symlink('..old_set', join(dir, '..data'));
    await symlink('..data/stale', join(dir, 'stale'));
    await writeFile(join(dir, 'README'), 'not ours');

    const files = new ConfigFiles({ dir, logger });
    files.write(snapshot({ a: '1', b: '2', '..data': 'evil', '.': 'dot' }, 1));
    await files.idle();
    expect((await readdir(dir)).filter((n) => !n.startsWith('..')).sort()).toEqual([
      'README',
      'a',
      'b',
    ]);
    expect(await readFile(join(dir, 'a'), 'utf8')).toBe('1');
    expect(await readFile(join(dir, 'README'), 'utf8')).toBe('not ours');
    expect(await readlink(join(dir, 'a'))).toBe('..data/a');
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'config keys that are not safe file names are not written as files',
        keys: ['..data', '.'],
      }),
    );

    files.write(snapshot({ b: 'two' }, 2));
    files.write(snapshot({ b: 'three' }, 3)); // coalesced behind the one running
    await files.idle();
    const names = await readdir(dir);
    expect(names.filter((n) => !n.startsWith('..')).sort()).toEqual(['README', 'b']);
    expect(names.filter((n) => n.startsWith('..') && n !== '..data')).toHaveLength(1);
    expect(await readFile(join(dir, 'b'), 'utf8')).toBe('three');
  });

  it('logs and counts a failure, never throws', async () => {
    await writeFile(join(dir, 'blocked'), 'a file where the directory should be');
    let failed = 0;
    const files = new ConfigFiles({
      dir: join(dir, 'blocked'),
      logger,
      onFailed: () => (failed += 1),
    });
    files.write(snapshot({ a: '1' }, 1));
    await files.idle();
    expect(failed).toBe(1);
    expect(logs.map((l) => l.msg)).toContain('config files not written');
  });
});
