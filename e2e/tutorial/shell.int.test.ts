/**
 * The tutorial test's Shell (a real bash fed command after command): a command's status is
 * what decides, including a failure early in a pipeline, and an `export` lasts.
 */
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Shell } from './stand-ins.js';

const shell = new Shell(tmpdir(), { PATH: process.env.PATH });
afterAll(() => shell.close());

describe('the tutorial Shell', () => {
  it.each([
    ['true', 0],
    ['false', 1],
    ['false | cat', 1], // a failing command piped into one that succeeds still fails
    ['exit_code_7() { return 7; }; exit_code_7 | cat', 7],
    ['echo ok | cat', 0],
  ])('%s exits %i', async (command, code) => {
    expect((await shell.run(command, 10_000)).code).toBe(code);
  });

  it('keeps an export for the next command, and separates their outputs', async () => {
    await shell.run('export TOKEN=abc', 10_000);
    expect(await shell.run('echo "$TOKEN"', 10_000)).toEqual({
      code: 0,
      stdout: 'abc\n',
      stderr: '',
    });
  });
});
