/**
 * Builds the sidecar as one minified ES module, `dist/sidecar/maxine-sidecar.mjs`: every
 * dependency bundled in by esbuild, `node:*` built-ins left to Node. An idle sidecar keeps the
 * source text of every module it loaded on its heap (decision 0027, session 10: 36% of the live
 * heap); one minified file holds far less of it. `npm run build:sidecar-bundle`; the path is
 * printed. Same approach as plugin/bundle.ts, but ESM with code splitting, so the OpenTelemetry
 * exporter (`await import()` in proxy/tracing.ts, only when spans are exported) stays in a
 * chunk of its own beside the entry and is read only when it is loaded.
 *
 * `createRequire(import.meta.url)` keeps working in the bundle: `node:http`
 * (common/node-http.ts) is a built-in, and yaml and re2js (required on first use by
 * common/mesh/format.ts and common/regex-safety.ts) are left external, so they still load from
 * node_modules only when first needed. The banner gives bundled CommonJS dependencies (pino,
 * ws, ...) a real `require` for the built-ins they load.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The file name of the bundle's entry, in its output folder. */
export const SIDECAR_BUNDLE_NAME = 'maxine-sidecar.mjs';

/** Bundles sidecar/main.ts into `outdir` (entry SIDECAR_BUNDLE_NAME); resolves with its path. */
export async function bundleSidecar(outdir = join(root, 'dist', 'sidecar')): Promise<string> {
  await mkdir(outdir, { recursive: true });
  // Chunks of an earlier build carry content hashes in their names: drop them first.
  for (const name of await readdir(outdir)) {
    if (/^chunk-[\w-]+\.mjs$/.test(name)) await rm(join(outdir, name));
  }
  await build({
    entryPoints: { 'maxine-sidecar': join(root, 'sidecar', 'main.ts') },
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    external: ['yaml', 're2js'],
    banner: {
      js: "import{createRequire as __maxineCreateRequire}from'node:module';const require=__maxineCreateRequire(import.meta.url);",
    },
  });
  return join(outdir, SIDECAR_BUNDLE_NAME);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${await bundleSidecar(process.argv[2])}\n`);
}
