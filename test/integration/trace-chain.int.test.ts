/**
 * A proxied call chain traced end to end through REAL sidecars into a real Jaeger: the app of
 * `a` calls `b` through a's sidecar (`/v1/proxy/b/...`), b's app calls `c` through b's sidecar,
 * each app only passing on the `traceparent` it received (as any W3C-aware HTTP client does).
 * The sidecars export over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT); Jaeger's query API must then
 * hold one trace whose parent links run c ← b's try ← b's call ← a's try ← a's call.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { parseTraceParent } from '../../sidecar/proxy/trace-context.js';
import { loadTracingSettings } from '../../sidecar/proxy/tracing.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { startJaeger } from '../helpers/jaeger.js';
import type { Jaeger, JaegerSpan } from '../helpers/jaeger.js';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const services = ['a', 'b', 'c']
  .map(
    (name) => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ${name}, namespace: shop }
spec: {}
`,
  )
  .join('---\n');

let jaeger: Jaeger;
let op: TestOperator;
const sidecars = new Map<string, Sidecar>();
const sidecarPorts = new Map<string, number>();
const apps: Server[] = [];

function get(
  port: number,
  path: string,
  headers: IncomingHttpHeaders,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** An app: records the traceparent it got and, for a `next` service, calls it via its sidecar. */
async function app(self: string, next?: string): Promise<number> {
  const server = createServer((req, res) => {
    const received = req.headers.traceparent;
    const reply = (body: unknown) =>
      res.end(JSON.stringify({ service: self, received, ...(body as object) }));
    if (next === undefined) return reply({});
    get(sidecarPorts.get(self)!, `/v1/proxy/${next}/work`, {
      ...(received !== undefined && { traceparent: received }),
    }).then(
      (r) => {
        // The downstream's status goes back up, so the caller sees a chain that is not whole.
        res.statusCode = r.status;
        reply({ downstream: JSON.parse(r.body) as unknown });
      },
      (err: unknown) => {
        res.statusCode = 500;
        reply({ error: String(err) });
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  apps.push(server);
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  jaeger = await startJaeger();
  op = await startOperator({ files: { 'shop.yaml': services } });
  const sink = new Writable({ write: (_c, _e, done) => done() });
  // Sidecars first (apps need their ports), then the apps, then the registrations.
  for (const name of ['a', 'b']) {
    const sidecar = createSidecar(
      loadSidecarConfig({
        // Written for a copy of the whole registry (the default scope is `pod` since issue 15).
        MAXINE_DISCOVERY_SCOPE: 'cluster',
        MAXINE_SERVICE: name,
        MAXINE_POD_NAMESPACE: 'shop',
        MAXINE_POD_IP: '127.0.0.1',
        MAXINE_APP_PORT: '1',
        MAXINE_OPERATOR_URL: op.url,
        MAXINE_LISTEN_PORT: '0',
        MAXINE_PROXY_LISTEN: 'off',
        MAXINE_REPORT_INTERVAL_SECONDS: '0',
      }),
      createLogger('warn', sink, 'sidecar'),
      {
        tracing: loadTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint }, name),
      },
    );
    sidecarPorts.set(name, (await sidecar.start()).port);
    sidecars.set(name, sidecar);
  }
  const ports = { c: await app('c'), b: await app('b', 'c'), a: await app('a', 'b') };
  for (const [service, port] of Object.entries(ports)) {
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service,
      namespace: 'shop',
      host: '127.0.0.1',
      port,
      ttlSeconds: 3600,
    });
    expect(r.status).toBe(201);
  }
  for (const sidecar of sidecars.values()) await sidecar.mirror.synchronised();
}, 60_000);

afterAll(async () => {
  for (const sidecar of sidecars.values()) await sidecar.stop();
  for (const server of apps) server.close();
  await op?.stop();
  await jaeger?.stop();
});

describe('a → b → c through real sidecars, traced into a real Jaeger', () => {
  it('one trace, each hop a child of the try that called it', async () => {
    const appA = apps[2]!.address() as AddressInfo;
    const res = await eventually(async () => {
      const r = await get(appA.port, '/start', {});
      return r.status === 200 && r;
    }, 5000);
    const body = JSON.parse(res.body) as {
      received?: string;
      downstream: { received?: string; downstream: { received?: string } };
    };
    expect(body.received).toBeUndefined();
    const atB = parseTraceParent(body.downstream.received);
    const atC = parseTraceParent(body.downstream.downstream.received);
    expect(atB).toBeDefined();
    expect(atC?.traceId).toBe(atB?.traceId);

    // Stopping a sidecar exports the spans it still holds.
    for (const sidecar of sidecars.values()) await sidecar.stop();
    sidecars.clear();

    const trace = await eventually(async () => {
      const t = await jaeger.trace(atC!.traceId);
      return t !== undefined && t.spans.length >= 4 && t;
    }, 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${jaeger.output().slice(-2000)}`);
    });
    const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
    const parentOf = (s: JaegerSpan) => s.references?.find((r) => r.refType === 'CHILD_OF')?.spanID;
    const serviceOf = (s: JaegerSpan) => trace.processes[s.processID]?.serviceName;
    const chain: JaegerSpan[] = [];
    for (let id: string | undefined = atC!.parentId; id !== undefined;) {
      const span = byId.get(id);
      if (span === undefined) break;
      chain.push(span);
      id = parentOf(span);
    }
    expect(chain.map((s) => [serviceOf(s), s.operationName])).toEqual([
      ['b', 'GET c.shop'],
      ['b', 'proxy c.shop'],
      ['a', 'GET b.shop'],
      ['a', 'proxy b.shop'],
    ]);
    // b's sidecar continued the trace a's sidecar started, under a's try.
    expect(chain[2]!.spanID).toBe(atB!.parentId);
  });
});
