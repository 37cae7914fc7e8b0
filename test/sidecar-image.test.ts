/**
 * The sidecar image ships only the sidecar: Dockerfile.sidecar copies common/ and sidecar/
 * (not operator/), and tsconfig.sidecar.json, which its build runs, compiles nothing else.
 * There is no Docker engine in CI, so this checks the two files the build is made of.
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('the sidecar image', () => {
  const dockerfile = readFileSync('Dockerfile.sidecar', 'utf8');
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
    (m[1] ?? '').split(/\s+/),
  );

  it('copies common/ and sidecar/ but not operator/', () => {
    expect(copied).toEqual(expect.arrayContaining(['common', 'sidecar', 'tsconfig.sidecar.json']));
    expect(copied.filter((source) => /operator|tsconfig\.build/.test(source))).toEqual([]);
    expect(dockerfile).toMatch(/RUN npm run build:sidecar/);
  });

  it('compiles from common/ and sidecar/ alone', async () => {
    const { stdout } = await run(
      process.execPath,
      ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.sidecar.json', '--listFilesOnly'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    const ours = stdout
      .split('\n')
      .filter((f) => f !== '' && !f.includes('/node_modules/'))
      .map((f) => f.slice(process.cwd().length + 1));
    expect(ours).toContain('sidecar/main.ts');
    expect(ours.filter((f) => !f.startsWith('common/') && !f.startsWith('sidecar/'))).toEqual([]);
  });
});
