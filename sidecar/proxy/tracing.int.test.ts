/**
 * The proxy's spans in a real trace backend: three node:http services a → b → c, each hop's
 * outbound call made through its own service's tracer exactly as the proxy engine uses it
 * (`startCall` from the caller's headers, `startTry` per try with the try's headers sent
 * upstream, `end`), exporting over OTLP/HTTP to a real Jaeger (e2e/jaeger/build.sh), whose
 * query API must then show one trace with the right parent links.
 *
 * `outboundCall` stands in for "the app calls through its sidecar"; switching the chain to real
 * sidecars replaces only it (with a request to the sidecar's `/v1/proxy/{service}/...`).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../common/logger.js';
import {
  type Jaeger,
  type JaegerSpan,
  type JaegerTrace,
  startJaeger,
} from '../../test/helpers/jaeger.js';
import type { AttemptOutcome } from './hooks.js';
import { parseTraceParent } from './trace-context.js';
import { type ProxyTracer, createProxyTracer, loadTracingSettings } from './tracing.js';

const logger = createLogger('silent');

interface Upstream {
  readonly instanceId: string;
  readonly port: number;
}

/** One proxied call: tries the instances in order until one answers (a retry per failure). */
async function outboundCall(
  tracer: ProxyTracer,
  callerHeaders: http.IncomingHttpHeaders,
  destination: string,
  instances: readonly Upstream[],
): Promise<{ status: number; body: string }> {
  const call = tracer.startCall({
    destination: { namespace: 'shop', name: destination },
    method: 'GET',
    path: '/work?x=1',
    headers: callerHeaders,
  });
  for (const [i, instance] of instances.entries()) {
    const tried = call.startTry({
      instanceId: instance.instanceId,
      host: '127.0.0.1',
      port: instance.port,
      attempt: i + 1,
      breaker: 'closed',
    });
    try {
      const res = await get(instance.port, '/work?x=1', tried.headers);
      tried.end({ kind: 'response', status: res.status });
      call.end(res.status);
      return res;
    } catch (err) {
      const outcome: AttemptOutcome = { kind: 'connect-failure', message: (err as Error).message };
      tried.end(outcome);
    }
  }
  call.end(502);
  return { status: 502, body: '' };
}

function get(
  port: number,
  path: string,
  headers: Readonly<Record<string, string>>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A service's app: answers with what it received, after its own outbound call if it has one. */
function service(
  next?: (headers: http.IncomingHttpHeaders) => Promise<{ status: number; body: string }>,
) {
  return http.createServer((req, res) => {
    const received = { traceparent: req.headers.traceparent, tracestate: req.headers.tracestate };
    // The app propagates the context it received to its own outbound call.
    const forwarded: http.IncomingHttpHeaders = {
      ...(req.headers.traceparent !== undefined && { traceparent: req.headers.traceparent }),
      ...(req.headers.tracestate !== undefined && { tracestate: req.headers.tracestate }),
    };
    const reply = (status: number, body: object): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (next === undefined) return reply(200, { received });
    next(forwarded).then(
      (downstream) =>
        reply(downstream.status, { received, downstream: JSON.parse(downstream.body) as unknown }),
      (err: unknown) => reply(500, { error: String(err) }),
    );
  });
}

const listen = (server: http.Server): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
const close = (server: http.Server): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

const tag = (span: JaegerSpan, key: string): unknown =>
  span.tags?.find((t) => t.key === key)?.value;
const parentOf = (span: JaegerSpan): string | undefined =>
  span.references?.find((r) => r.refType === 'CHILD_OF')?.spanID;

describe('tracing a → b → c into a real Jaeger', () => {
  let jaeger: Jaeger;
  const servers: http.Server[] = [];

  beforeAll(async () => {
    jaeger = await startJaeger();
  });
  afterAll(async () => {
    await Promise.all(servers.map(close));
    await jaeger?.stop();
  });

  it('one trace: c was called by b`s try, under b`s call, under a`s try, under a`s call', async () => {
    // Each service's "sidecar" tracer, configured as a pod would be (standard OTEL_* variables).
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpEndpoint };
    const tracerFor = (svc: string) =>
      createProxyTracer({
        settings: loadTracingSettings(env, svc),
        logger,
        resource: { 'k8s.namespace.name': 'shop' },
      });
    const [tracerA, tracerB] = await Promise.all([tracerFor('a'), tracerFor('b')]);
    expect(tracerA.exporting && tracerB.exporting).toBe(true);

    const c = service();
    const cPort = await listen(c);
    // A port nothing listens on: b's first try fails to connect and it retries on c.
    const dead = http.createServer();
    const deadPort = await listen(dead);
    await close(dead);
    const b = service((h) =>
      outboundCall(tracerB, h, 'c', [
        { instanceId: 'c-gone', port: deadPort },
        { instanceId: 'c-1', port: cPort },
      ]),
    );
    const bPort = await listen(b);
    const a = service((h) => outboundCall(tracerA, h, 'b', [{ instanceId: 'b-1', port: bPort }]));
    const aPort = await listen(a);
    servers.push(a, b, c);

    // The first caller sends no traceparent: a's sidecar starts the trace.
    const res = await get(aPort, '/', {});
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body) as {
      received: { traceparent?: string };
      downstream: {
        received: { traceparent?: string };
        downstream: { received: { traceparent?: string } };
      };
    };
    expect(body.received.traceparent).toBeUndefined();
    const atB = parseTraceParent(body.downstream.received.traceparent);
    const atC = parseTraceParent(body.downstream.downstream.received.traceparent);
    expect(atB).toBeDefined();
    expect(atC?.traceId).toBe(atB?.traceId);

    // Stopping the sidecars flushes their queued spans.
    await Promise.all([tracerA.shutdown(), tracerB.shutdown()]);

    const trace = await eventually(
      async () => {
        const t = await jaeger.trace(atC!.traceId);
        return t !== undefined && t.spans.length >= 5 ? t : undefined;
      },
      () => jaeger.output(),
    );
    const serviceOf = (s: JaegerSpan) => trace.processes[s.processID]?.serviceName;
    const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
    expect(trace.spans).toHaveLength(5);

    // Walk up from the span named in the traceparent c received.
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
    expect(parentOf(chain[3]!)).toBeUndefined();
    // b received a's try span as its parent.
    expect(chain[2]!.spanID).toBe(atB!.parentId);

    const [bTry, bCall, aTry] = chain as [JaegerSpan, JaegerSpan, JaegerSpan, JaegerSpan];
    expect(tag(bTry, 'maxine.destination.service')).toBe('c');
    expect(tag(bTry, 'maxine.destination.namespace')).toBe('shop');
    expect(tag(bTry, 'maxine.instance.id')).toBe('c-1');
    expect(tag(bTry, 'maxine.attempt')).toBe(2);
    expect(tag(bTry, 'maxine.breaker.state')).toBe('closed');
    expect(tag(bTry, 'server.port')).toBe(cPort);
    expect(tag(bTry, 'http.response.status_code')).toBe(200);
    expect(tag(bCall, 'maxine.tries')).toBe(2);
    expect(tag(aTry, 'maxine.instance.id')).toBe('b-1');
    expect(tag(aTry, 'span.kind')).toBe('client');

    // The failed first try: a sibling of the good one, marked as an error.
    const failed = trace.spans.find((s) => tag(s, 'maxine.instance.id') === 'c-gone');
    expect(failed).toBeDefined();
    expect(parentOf(failed!)).toBe(bCall.spanID);
    expect(tag(failed!, 'error.type')).toBe('connect-failure');
    expect(tag(failed!, 'error')).toBe(true);
    expect(tag(failed!, 'maxine.attempt')).toBe(1);

    // The search API finds it by service too.
    const ofB = await jaeger.traces('b');
    expect(ofB.map((t: JaegerTrace) => t.traceID)).toContain(atC!.traceId);
  });
});

async function eventually<T>(
  probe: () => Promise<T | undefined>,
  output: () => string,
): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`Jaeger never showed the trace; its log:\n${output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
