/**
 * A real Jaeger v2 all-in-one for the tracing tests: the binary `e2e/jaeger/build.sh` builds
 * from Go modules into the cache, run with in-memory storage, an OTLP/HTTP receiver and the
 * query HTTP API on free ports of 127.0.0.1. Missing binary: the test fails, naming the command
 * that builds it (`.ci/run` runs it before the tests).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD_SH = 'e2e/jaeger/build.sh';
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

/** One span as Jaeger's query API (`/api/traces`) returns it. */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: { refType: string; traceID: string; spanID: string }[];
  tags?: { key: string; type: string; value: unknown }[];
  processID: string;
}
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string }>;
}

export interface Jaeger {
  /** OTLP/HTTP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); traces go to `<it>/v1/traces`. */
  readonly otlpEndpoint: string;
  /** The query service's HTTP base URL (`/api/traces/{id}`, `/api/traces?service=`). */
  readonly queryUrl: string;
  /** A trace by id, undefined while Jaeger has none. */
  trace(traceId: string): Promise<JaegerTrace | undefined>;
  /** Recent traces of a service. */
  traces(service: string): Promise<JaegerTrace[]>;
  /** What Jaeger wrote so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** The cached binary for the version `e2e/jaeger/go.mod` pins; throws when it is not built. */
export function jaegerBinary(): string {
  const gomod = readFileSync(path.join(ROOT, 'e2e/jaeger/go.mod'), 'utf8');
  const version = /^\s*github\.com\/jaegertracing\/jaeger (v\S+)/m.exec(gomod)?.[1];
  if (version === undefined) throw new Error('e2e/jaeger/go.mod does not require jaeger');
  const cache =
    process.env.MAXINE_CACHE_DIR ?? path.join(process.env.HOME ?? '/root', '.cache/maxine');
  const binary = path.join(cache, 'jaeger', version, 'jaeger');
  if (!existsSync(binary))
    throw new Error(
      `Jaeger ${version} is not built (no ${binary}). Build it once (10-20 min, cached): bash ${BUILD_SH}`,
    );
  return binary;
}

/** Starts Jaeger; a port taken between choosing and binding is retried with new ports. */
export async function startJaeger(): Promise<Jaeger> {
  const binary = jaegerBinary();
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(binary);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

function config(otlp: number, query: number, grpc: number): string {
  return `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    # No self-metrics listener on :8888 (it would clash between parallel runs).
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
`;
}

async function startOnce(binary: string): Promise<Jaeger> {
  const [otlp, query, grpc] = (await freePorts(3)) as [number, number, number];
  const dir = mkdtempSync(path.join(tmpdir(), 'maxine-jaeger-'));
  const configFile = path.join(dir, 'config.yaml');
  writeFileSync(configFile, config(otlp, query, grpc));
  const child = spawn(binary, ['--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  });
  const log: string[] = [];
  const take = (chunk: Buffer): void => {
    log.push(chunk.toString('utf8'));
    if (log.length > 2000) log.splice(0, log.length - 2000);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const output = (): string => log.join('').split('\n').slice(-60).join('\n');
  const otlpEndpoint = `http://127.0.0.1:${otlp}`;
  const queryUrl = `http://127.0.0.1:${query}`;

  const stop = async (): Promise<void> => {
    await stopProcess(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(child, otlpEndpoint, queryUrl, output);
  } catch (err) {
    await stop();
    throw err;
  }
  const getJson = async (url: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(url);
    return { status: res.status, body: await res.json().catch(() => undefined) };
  };
  return {
    otlpEndpoint,
    queryUrl,
    output,
    stop,
    async trace(traceId) {
      const { status, body } = await getJson(`${queryUrl}/api/traces/${traceId}`);
      if (status === 404) return undefined;
      if (status !== 200) throw new Error(`GET /api/traces/${traceId}: ${status}`);
      return (body as { data: JaegerTrace[] }).data[0];
    },
    async traces(service) {
      const url = `${queryUrl}/api/traces?service=${encodeURIComponent(service)}&lookback=1h&limit=100`;
      const { status, body } = await getJson(url);
      if (status !== 200) throw new Error(`GET /api/traces?service=${service}: ${status}`);
      return (body as { data: JaegerTrace[] | null }).data ?? [];
    },
  };
}

/** Ready when the query API answers and the OTLP receiver accepts an (empty) export. */
async function waitReady(
  child: ChildProcess,
  otlpEndpoint: string,
  queryUrl: string,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `jaeger exited (${child.exitCode ?? child.signalCode}) at start:\n${output()}`,
      );
    const ok = await Promise.all([
      fetch(`${queryUrl}/api/services`).then(
        (r) => r.ok,
        () => false,
      ),
      fetch(`${otlpEndpoint}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"resourceSpans":[]}',
      }).then(
        (r) => r.ok,
        () => false,
      ),
    ]);
    if (ok.every(Boolean)) return;
    if (Date.now() > deadline)
      throw new Error(`jaeger not ready within ${START_TIMEOUT_MS} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** Distinct free ports on 127.0.0.1: all are held open together, then released. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}
