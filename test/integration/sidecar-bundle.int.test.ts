/**
 * The bundled sidecar (`npm run build:sidecar-bundle`, sidecar/bundle.ts), the file
 * Dockerfile.sidecar runs: built here with esbuild, started as its own process (`node
 * maxine-sidecar.mjs`, no tsx, no dist/ beside it) against a real standalone operator, it
 * registers itself and answers one discovery from its copy. This is what proves the bundle's
 * `createRequire` paths (node:http in common/node-http.ts, the CommonJS dependencies' built-ins)
 * still work once everything is one file.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { createServer as createHttpsServer } from 'node:https';
import { mkdir, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import type { Plugin } from 'esbuild';
import { WebSocketServer } from 'ws';
import { generateCa, generateServingCert } from '../../operator/webhook/certs.js';
import {
  bundleSidecar,
  englishZodLocales,
  lazyBuiltins,
  SIDECAR_BUNDLE_NAME,
} from '../../sidecar/bundle.js';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { spawnListening } from '../helpers/spawn.js';
import type { Listening } from '../helpers/spawn.js';

// Inside the tree, so that yaml and re2js (left external, required on first use) resolve from
// its node_modules as they do in the image's /app.
const outdir = join(process.cwd(), 'dist', `sidecar-bundle-test-${process.pid}`);
/** Preloaded into the bundle: on SIGUSR2, one JSON line naming which of tls / https are loaded. */
const LOADED_HOOK = `data:text/javascript,${encodeURIComponent(
  "process.on('SIGUSR2', () => process.stdout.write(JSON.stringify({ loadedBuiltins: process.moduleLoadList.filter((m) => /^NativeModule (tls|https)$/.test(m)) }) + '\\n'));",
)}`;
let op: TestOperator;
let sidecar: Listening | undefined;
let entry: string;

beforeAll(async () => {
  entry = await bundleSidecar(outdir);
  op = await startOperator();
  const res = await api(op.url, 'POST', '/api/v1/instances', {
    service: 'api',
    namespace: 'shop',
    host: '10.0.0.7',
    port: 8080,
    version: 'v1',
  });
  expect(res.status).toBeLessThan(300);
}, 60_000);

afterAll(async () => {
  sidecar?.proc.kill('SIGKILL');
  await op?.stop();
  await rm(outdir, { recursive: true, force: true });
});

describe('the bundled sidecar', () => {
  it('is one ES module that imports only node: built-ins and the two lazily required packages', async () => {
    expect(entry).toBe(join(outdir, SIDECAR_BUNDLE_NAME));
    const text = await readFile(entry, 'utf8');
    const specifiers = [...text.matchAll(/\bfrom\s*["']([^"']+)["']/g)].map((m) => m[1]);
    expect(specifiers.filter((s) => !s!.startsWith('node:') && !s!.startsWith('./chunk-'))).toEqual(
      [],
    );
    expect(text).not.toMatch(/operator\//);
    expect(text).not.toContain('maxine operator listening');
  });

  it('starts as its own process against a standalone operator and answers a discovery', async () => {
    sidecar = await spawnListening(['--import', LOADED_HOOK, entry], {
      env: {
        PATH: process.env.PATH,
        MAXINE_SERVICE: 'web',
        MAXINE_POD_NAMESPACE: 'shop',
        MAXINE_POD_NAME: 'web-0',
        MAXINE_POD_IP: '127.0.0.1',
        MAXINE_OPERATOR_URL: op.url,
        MAXINE_LISTEN_PORT: '0',
        MAXINE_PROXY_LISTEN: 'off',
        MAXINE_DISCOVERY_SCOPE: 'cluster',
        MAXINE_LOG_LEVEL: 'info',
        MAXINE_MEMORY_TRIM_SECONDS: '1',
      },
    });
    const url = `http://127.0.0.1:${sidecar.port}`;
    let body: any;
    await eventually(
      async () => {
        const res = await api(url, 'GET', '/v1/discover/api');
        body = res.body;
        return res.status === 200;
      },
      10_000,
      'the bundled sidecar answers GET /v1/discover/api',
    ).catch((err: unknown) => {
      throw new Error(
        `${String(err)}; last answer ${JSON.stringify(body)}; output:\n${sidecar?.output()}`,
      );
    });
    expect(JSON.stringify(body)).toContain('10.0.0.7');
    // It registered its own service with the operator, as the unbundled sidecar does.
    await eventually(
      async () => (await api(op.url, 'GET', '/api/v1/services/shop/web')).status === 200,
      10_000,
      'the sidecar registered web',
    );
    expect(existsSync(entry)).toBe(true);
    // Once the copy synced and went quiet, the memory trim ran in the bundle (sidecar/memory-trim.ts):
    // the collector was made there, without --expose-gc.
    await eventually(
      () =>
        Promise.resolve(
          sidecar!.output().includes('memory trimmed after the registry copy synced'),
        ),
      10_000,
      'the bundled sidecar trimmed its memory after the sync',
    );
    expect(sidecar.output()).not.toContain('memory trim off');
    // Its operator is plain http: node:tls and node:https (~4 MB private on Node 26) were never
    // loaded, not by ws, prom-client or the sidecar's own clients (sidecar/bundle.ts).
    sidecar.proc.kill('SIGUSR2');
    let loaded: unknown;
    await eventually(
      () =>
        Promise.resolve((loaded = sidecar!.lines.find((l) => 'loadedBuiltins' in l)) !== undefined),
      5000,
      'the hook answered SIGUSR2',
    );
    expect(loaded).toEqual({ loadedBuiltins: [] });
  }, 30_000);

  it("bundles ws so that tls is required on a wss:// connection's first use, and works", async () => {
    const probe = await bundleProbe(
      'wss-probe',
      [
        "import WebSocket from 'ws';",
        "const tlsAtStart = process.moduleLoadList.includes('NativeModule tls');",
        'const ws = new WebSocket(process.argv[2]!, { ca: process.env.PROBE_CA });',
        "ws.on('message', (m) => { process.stdout.write(JSON.stringify({ tlsAtStart, message: String(m) })); ws.close(); });",
        "ws.on('error', (err) => { process.stderr.write(String(err)); process.exit(1); });",
      ],
      [lazyBuiltins],
    );
    const ca = await generateCa();
    const leaf = await generateServingCert({ ca, dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const server = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (socket) => socket.send('hello over tls'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [probe, `wss://127.0.0.1:${port}`],
        { env: { PATH: process.env.PATH, PROBE_CA: ca.certPem }, timeout: 15_000 },
      );
      expect(JSON.parse(stdout)).toEqual({ tlsAtStart: false, message: 'hello over tls' });
    } finally {
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 30_000);

  it("keeps zod's English messages only: z.locales is { en } and a failed parse still says why in English", async () => {
    const text = await readFile(entry, 'utf8');
    // zod's German message (esbuild writes it ASCII-escaped): gone; its English one stays.
    expect(text).not.toContain('Eingabe: erwartet');
    expect(text).toContain('Invalid input: expected');
    const probe = await bundleProbe(
      'zod-probe',
      [
        "import { z } from 'zod';",
        'const r = z.object({ port: z.int() }).safeParse({ port: "80" });',
        'process.stdout.write(JSON.stringify({ locales: Object.keys(z.locales), core: Object.keys(z.core.locales), message: r.error?.issues[0]?.message }));',
      ],
      [englishZodLocales],
    );
    const { stdout } = await promisify(execFile)(process.execPath, [probe], {
      timeout: 15_000,
    });
    expect(JSON.parse(stdout)).toEqual({
      locales: ['en'],
      core: ['en'],
      message: 'Invalid input: expected number, received string',
    });
  }, 30_000);
});

/**
 * Writes a probe program under the bundle's output folder and bundles it with `plugins` and the
 * sidecar bundle's `require` banner; returns the bundle's path.
 */
async function bundleProbe(name: string, lines: string[], plugins: Plugin[]): Promise<string> {
  const dir = join(outdir, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'probe.ts'), lines.join('\n'));
  const outfile = join(dir, 'probe.mjs');
  await build({
    entryPoints: [join(dir, 'probe.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    logLevel: 'warning',
    plugins,
    banner: {
      js: "import{createRequire as __c}from'node:module';const require=__c(import.meta.url);",
    },
  });
  return outfile;
}
