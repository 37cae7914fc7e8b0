/**
 * The leftovers issue 13 retired stay retired: bench/ is type-checked by `npm test`, the shell
 * smoke script is gone and nothing points at it, one helper reads a process's listening line,
 * and the README carries no test count that goes stale with every commit.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const ROOT = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && ext.test(e.name) && !e.parentPath.includes('node_modules'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

describe('leftovers', () => {
  it('npm test type-checks bench/ with its own tsconfig (plain JS, checkJs)', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> })
      .scripts;
    expect(scripts.typecheck).toContain('tsc -p bench/tsconfig.json --noEmit');
    expect(scripts.test).toMatch(/^npm run typecheck && /);
  });

  it('e2e/controlplane/smoke.sh is gone and nothing refers to it', () => {
    expect(existsSync(join(ROOT, 'e2e/controlplane/smoke.sh'))).toBe(false);
    const readers = [
      'README.md',
      'package.json',
      '.ci/run',
      'e2e/controlplane/README.md',
      ...files('docs', /\.md$/),
      ...files('e2e', /\.ts$/),
    ];
    expect(readers.filter((f) => read(f).includes('smoke.sh'))).toEqual([]);
  });

  it('only test/helpers/spawn.js reads a listening line out of a process output', () => {
    const mine = new Set(['test/helpers/spawn.js', 'test/integration/spawn-helper.int.test.ts']);
    const own = [
      ...files('test', /\.[jt]s$/),
      ...files('e2e', /\.ts$/),
      ...files('bench', /\.[jt]s$/),
    ]
      .filter((f) => !mine.has(f) && f !== 'test/leftovers.test.ts')
      .filter((f) =>
        /listening\/|includes\('listening'\)|startsWith\('maxine operator listening'\)/.test(
          read(f),
        ),
      );
    expect(own).toEqual([]);
  });

  it('the README states no test count', () => {
    expect(read('README.md')).not.toMatch(/\b\d+ (tests|passed|suites)\b/);
  });
});
