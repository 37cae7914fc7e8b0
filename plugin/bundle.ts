/**
 * Builds `kubectl maxine` as one executable file (krew-style): `dist/kubectl-maxine`, every
 * dependency bundled in by esbuild, a `#!/usr/bin/env node` line, CommonJS (so it runs under
 * any name, with no package.json or node_modules beside it), mode 0755. `npm run build:plugin`;
 * the path is printed. Needs Node >= 20 where it runs.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Bundles plugin/kubectl-maxine.ts into `outfile`; resolves with its path. */
export async function bundlePlugin(
  outfile = join(root, 'dist', 'kubectl-maxine'),
): Promise<string> {
  await mkdir(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [join(root, 'plugin', 'kubectl-maxine.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    // The entry's own `#!/usr/bin/env node` line stays the first line of the bundle.
  });
  await chmod(outfile, 0o755);
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${await bundlePlugin(process.argv[2])}\n`);
}
