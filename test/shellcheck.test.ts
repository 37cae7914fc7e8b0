/**
 * Every shell script in the repository (*.sh: the Go builders of e2e/, the kind script; and
 * .ci/run) is clean under Debian's shellcheck (.ci/run installs it). The kind script cannot run in CI (no Docker),
 * so this is what keeps it honest there.
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const SKIP = new Set(['node_modules', 'dist', '.git', '.maxine', 'coverage']);

function shellScripts(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (SKIP.has(e.name)) return [];
    const path = join(dir, e.name);
    if (e.isDirectory()) return shellScripts(path);
    return e.isFile() && e.name.endsWith('.sh') ? [relative(process.cwd(), path)] : [];
  });
}

function shellcheck(files: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile('shellcheck', ['--format=gcc', ...files], (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(new Error(`shellcheck could not run (apt-get install shellcheck): ${err.message}`));
        return;
      }
      resolve({ code: err === null ? 0 : (err.code as number), out: stdout + stderr });
    });
  });
}

describe('shell scripts', () => {
  const scripts = shellScripts(process.cwd()).sort();

  it('include the kind script and the Go builders', () => {
    expect(scripts).toEqual(
      expect.arrayContaining([
        'e2e/controlplane/build.sh',
        'e2e/helm/build.sh',
        'e2e/jaeger/build.sh',
        'e2e/kind/run.sh',
        'e2e/kind/smoke-test.sh',
      ]),
    );
  });

  it('are shellcheck-clean', async () => {
    expect(await shellcheck(scripts)).toEqual({ code: 0, out: '' });
  });

  it('.ci/run (no .sh ending, so not in the list above) is shellcheck-clean too', async () => {
    expect(await shellcheck(['.ci/run'])).toEqual({ code: 0, out: '' });
  });

  it('the check sees a problem (negative control: an unquoted expansion)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'maxine-shellcheck.'));
    const bad = join(dir, 'bad.sh');
    writeFileSync(bad, '#!/usr/bin/env bash\nrm -f $1\n');
    try {
      const r = await shellcheck([bad]);
      expect(r.code).toBe(1);
      expect(r.out).toContain('SC2086');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
