/**
 * @maxine/client as npm would publish it: `npm run build:client` emits dist/ (the client and the
 * common/ modules it imports, with declarations), `npm pack` lists exactly that, the package
 * imports by its name through its `exports`, and nothing in it reaches outside the package:
 * every relative import resolves to a packed file, every bare one is a declared dependency
 * or a Node built-in (no operator/ or sidecar/ code at run time).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from '@jest/globals';

const run = promisify(execFile);
const PACKAGE = join(import.meta.dirname, '..');
const ROOT = join(PACKAGE, '..', '..');
const manifest = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8')) as {
  name: string;
  exports: { '.': { types: string; import: string } };
  dependencies: Record<string, string>;
  license: string;
  type: string;
};

let packed: string[] = [];

beforeAll(async () => {
  await run('npm', ['run', 'build:client'], { cwd: ROOT });
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: PACKAGE,
  });
  packed = (JSON.parse(stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path);
}, 180_000);

describe('the @maxine/client package', () => {
  it('is an ESM package under Apache-2.0 whose exports name packed JS and types', () => {
    expect(manifest).toMatchObject({
      name: '@maxine/client',
      type: 'module',
      license: 'Apache-2.0',
    });
    for (const target of [manifest.exports['.'].import, manifest.exports['.'].types])
      expect(packed).toContain(normalize(target));
    expect(packed).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'LICENSE',
        'dist/common/wire.js',
        'dist/common/wire.d.ts',
      ]),
    );
  });

  it('packs no sources, tests or program code', () => {
    const stray = packed.filter(
      (p) =>
        /\.test\.|\.map$/.test(p) ||
        (p.endsWith('.ts') && !p.endsWith('.d.ts')) ||
        /^dist\/(operator|sidecar|plugin|test)\//.test(p),
    );
    expect(stray).toEqual([]);
  });

  it('imports nothing outside itself but its dependencies and Node built-ins', () => {
    const allowed = new Set([...Object.keys(manifest.dependencies), ...builtinModules]);
    const problems: string[] = [];
    for (const file of packed.filter((p) => p.endsWith('.js') || p.endsWith('.d.ts'))) {
      const text = readFileSync(join(PACKAGE, file), 'utf8');
      for (const [, spec = ''] of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        if (spec.startsWith('.')) {
          const target = normalize(join(dirname(file), spec));
          const candidates = file.endsWith('.d.ts') ? [target.replace(/\.js$/, '.d.ts')] : [target];
          if (!candidates.some((c) => packed.includes(c))) problems.push(`${file}: ${spec}`);
        } else if (!allowed.has(spec.replace(/^node:/, '').split('/')[0]!))
          problems.push(`${file}: ${spec}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('imports by its name in a fresh Node process, schemas and client included', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        [
          "import { MaxineClient, maxineEventSchema, ClientError } from '@maxine/client';",
          "const ok = maxineEventSchema.safeParse({ seq: 1, type: 'resync_end', time: 't', data: { services: 0, chunks: 0, instances: 0 } }).success;",
          "console.log(typeof MaxineClient, ok, new ClientError(401, 'UNAUTHENTICATED', 'x').code);",
        ].join('\n'),
      ],
      { cwd: PACKAGE },
    );
    expect(stdout.trim()).toBe('function true UNAUTHENTICATED');
  });
});
