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
import type { Plugin } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * ws requires `https` and `tls` at load, for `wss://` URLs only, and prom-client `https` for
 * its Pushgateway, which the sidecar does not use; a sidecar whose operator URL is plain http
 * (the webhook's default) never needs them, yet loading them costs ~4 MB of private memory on
 * Node 26 (OpenSSL's contexts; decision 0027, session 11). In the bundle, those requires get a
 * stand-in that requires the real module on the first property read (ws reads `https.request`
 * and `tls.connect` only when it connects to a `wss://` URL). The sidecar's own https use goes
 * through common/node-http.ts's `https()`, required on first call.
 */
const LAZY_BUILTINS = /^(?:node:)?(https|tls)$/;
const LAZY_IN = /[\\/]node_modules[\\/](?:ws|prom-client)[\\/]/;
export const lazyBuiltins: Plugin = {
  name: 'maxine-lazy-builtins',
  setup(b) {
    b.onResolve({ filter: LAZY_BUILTINS }, (args) =>
      LAZY_IN.test(args.importer)
        ? { path: LAZY_BUILTINS.exec(args.path)![1]!, namespace: 'maxine-lazy-builtin' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'maxine-lazy-builtin' }, (args) => ({
      loader: 'js',
      contents: `let m; const load = () => (m ??= require('node:${args.path}'));
module.exports = new Proxy({}, {
  get: (_t, key) => load()[key],
  has: (_t, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_t, key) => {
    const d = Reflect.getOwnPropertyDescriptor(load(), key);
    return d === undefined ? undefined : { ...d, configurable: true };
  },
});`,
    }));
  },
};

/**
 * zod re-exports all of its ~60 message locales (`z.locales`, `z.core.locales`): 264 KB of the
 * bundle's 723 KB, source text an idle sidecar keeps on its heap and V8 parses at start
 * (decision 0027, session 12). The sidecar uses zod's default English messages only (zod's
 * schemas import `locales/en.js` themselves and configure it), and never reads `z.locales`,
 * so in the bundle the locales index is a module with `en` alone.
 */
const ZOD_LOCALES_INDEX = /^\.\.\/locales\/index\.js$/;
const ZOD_IMPORTER = /[\\/]node_modules[\\/]zod[\\/]v4[\\/](?:classic|core)[\\/]/;
export const englishZodLocales: Plugin = {
  name: 'maxine-english-zod-locales',
  setup(b) {
    b.onResolve({ filter: ZOD_LOCALES_INDEX }, (args) =>
      ZOD_IMPORTER.test(args.importer)
        ? {
            path: join(dirname(args.importer), '..', 'locales', 'index.js'),
            namespace: 'maxine-zod-locales',
          }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'maxine-zod-locales' }, (args) => ({
      loader: 'js',
      resolveDir: dirname(args.path),
      contents: `export { default as en } from './en.js';`,
    }));
  },
};

/**
 * The packages left out of the bundle, required on first use from `node_modules` beside it:
 * all the sidecar image copies of `node_modules` (Dockerfile.sidecar; test/dockerfiles.test.ts).
 */
export const SIDECAR_BUNDLE_EXTERNALS = ['yaml', 're2js'] as const;

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
    external: [...SIDECAR_BUNDLE_EXTERNALS],
    plugins: [lazyBuiltins, englishZodLocales],
    banner: {
      js: "import{createRequire as __maxineCreateRequire}from'node:module';const require=__maxineCreateRequire(import.meta.url);",
    },
  });
  return join(outdir, SIDECAR_BUNDLE_NAME);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${await bundleSidecar(process.argv[2])}\n`);
}
