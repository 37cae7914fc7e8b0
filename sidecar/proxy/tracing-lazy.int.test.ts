/**
 * An idle sidecar must not pay for the OpenTelemetry SDK: with no OTLP endpoint the tracer
 * propagates trace context without loading any `@opentelemetry/*` module. Checked in a real Node
 * process whose module resolutions are recorded by a loader hook; the exporting case is the
 * control that shows the hook sees them.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'maxine-tracing-lazy-'));

const hookFile = path.join(dir, 'hook.mjs');
writeFileSync(
  hookFile,
  `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.includes('/@opentelemetry/')) appendFileSync(process.env.LOADED_LOG, resolved.url + '\\\\n');
  return resolved;
}\`));
`,
);

const script = `
const { createProxyTracer, loadTracingSettings } = await import(${JSON.stringify(pathToFileURL(path.join(HERE, 'tracing.ts')).href)});
const { createLogger } = await import(${JSON.stringify(pathToFileURL(path.join(HERE, '../../common/logger.ts')).href)});
const tracer = await createProxyTracer({ settings: loadTracingSettings(process.env, 'web'), logger: createLogger('silent') });
const call = tracer.startCall({ destination: { namespace: 'shop', name: 'orders' }, method: 'GET', path: '/', headers: {} });
const sent = call.startTry({ instanceId: 'i', host: '127.0.0.1', port: 1, attempt: 1, breaker: 'closed' });
sent.end({ kind: 'response', status: 200 });
call.end(200);
await tracer.shutdown();
console.log(JSON.stringify({ exporting: tracer.exporting, traceparent: sent.headers.traceparent }));
`;

/** Runs the script with `env` added; what it printed, and the @opentelemetry modules resolved. */
function run(
  name: string,
  env: Record<string, string>,
): Promise<{ out: { exporting: boolean; traceparent: string }; loaded: string[] }> {
  const log = path.join(dir, `${name}.log`);
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--import', hookFile, '--input-type=module', '-e', script],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, LOADED_LOG: log, ...env },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        const loaded = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
        resolve({
          out: JSON.parse(stdout.trim()) as { exporting: boolean; traceparent: string },
          loaded,
        });
      },
    );
  });
}

describe('the tracer without an endpoint', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('propagates a new traceparent and loads no @opentelemetry module', async () => {
    const { out, loaded } = await run('idle', {});
    expect(out.exporting).toBe(false);
    expect(out.traceparent).toMatch(/^00-[\da-f]{32}-[\da-f]{16}-01$/);
    expect(loaded).toEqual([]);
  });

  it('(control) with an endpoint, loads the SDK and the OTLP exporter', async () => {
    const { out, loaded } = await run('exporting', {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1',
      // Nothing to export to the closed port (its retries would only slow the test down).
      OTEL_TRACES_SAMPLER: 'always_off',
    });
    expect(out.exporting).toBe(true);
    expect(loaded.some((u) => u.includes('/@opentelemetry/sdk-trace-base/'))).toBe(true);
    expect(loaded.some((u) => u.includes('/@opentelemetry/exporter-trace-otlp-http/'))).toBe(true);
  });
});
