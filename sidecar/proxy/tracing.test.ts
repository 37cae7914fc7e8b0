import { describe, expect, it } from '@jest/globals';
import type { IncomingHttpHeaders } from 'node:http';
import { SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { SidecarConfigError } from '../config.js';
import type { OutboundRequest } from './hooks.js';
import { parseTraceParent } from './trace-context.js';
import { ATTR, MAX_ATTRIBUTE_LENGTH, createOtelTracer } from './tracing-otel.js';
import type { ProxyTracer } from './tracing.js';
import { PropagatingTracer, createProxyTracer, loadTracingSettings } from './tracing.js';

const logger = createLogger('silent');
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

const request = (headers: IncomingHttpHeaders = {}): OutboundRequest => ({
  destination: { namespace: 'shop', name: 'orders' },
  method: 'GET',
  path: '/orders/42?secret=1',
  headers,
});
const tryInfo = (attempt = 1) => ({
  instanceId: `orders-${attempt}`,
  host: '10.0.0.7',
  port: 8080,
  attempt,
  breaker: 'closed' as const,
});

/** Keeps what it is given (InMemorySpanExporter forgets everything on shutdown). */
function collectingExporter(): SpanExporter & { spans: ReadableSpan[] } {
  const spans: ReadableSpan[] = [];
  return {
    spans,
    export: (batch, done) => {
      spans.push(...batch);
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: () => Promise.resolve(),
  };
}

const settings = { endpoint: 'http://127.0.0.1:1/v1/traces', serviceName: 'web', maxQueueSize: 64 };
function otel() {
  const exporter = collectingExporter();
  const tracer = createOtelTracer({
    settings,
    logger,
    endpoint: settings.endpoint,
    exporter,
    scheduledDelayMillis: 60_000,
  });
  return { tracer, exporter };
}

describe('loadTracingSettings', () => {
  const cases: [string, NodeJS.ProcessEnv, object][] = [
    [
      'nothing set: propagation only',
      {},
      { endpoint: undefined, serviceName: 'web', maxQueueSize: 2048 },
    ],
    [
      'empty endpoint: propagation only',
      { OTEL_EXPORTER_OTLP_ENDPOINT: ' ' },
      { endpoint: undefined },
    ],
    [
      'base endpoint gets /v1/traces',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' },
      { endpoint: 'http://collector:4318/v1/traces' },
    ],
    [
      'base endpoint with a trailing slash',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/otlp/' },
      { endpoint: 'http://collector:4318/otlp/v1/traces' },
    ],
    [
      'the traces endpoint is used as is and wins',
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/ingest',
      },
      { endpoint: 'https://traces.example/ingest' },
    ],
    [
      'OTEL_SDK_DISABLED=true turns export off',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' },
      { endpoint: undefined },
    ],
    [
      'OTEL_TRACES_EXPORTER=none turns export off',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' },
      { endpoint: undefined },
    ],
    [
      'OTEL_SERVICE_NAME is honoured',
      { OTEL_SERVICE_NAME: 'storefront' },
      { serviceName: 'storefront' },
    ],
    ['queue bound', { OTEL_BSP_MAX_QUEUE_SIZE: '100' }, { maxQueueSize: 100 }],
  ];
  it.each(cases)('%s', (_name, env, expected) => {
    expect(loadTracingSettings(env, 'web')).toMatchObject(expected);
  });

  const bad: [NodeJS.ProcessEnv, RegExp][] = [
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
      /OTEL_EXPORTER_OTLP_ENDPOINT: must be an http/,
    ],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://x' }, /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT/],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /OTEL_TRACES_EXPORTER: must be otlp or none/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '0' }, /OTEL_BSP_MAX_QUEUE_SIZE: must be at least 1/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: 'lots' }, /OTEL_BSP_MAX_QUEUE_SIZE: must be a whole number/],
  ];
  it.each(bad)('refuses %j naming the variable', (env, message) => {
    expect(() => loadTracingSettings(env, 'web')).toThrow(SidecarConfigError);
    expect(() => loadTracingSettings(env, 'web')).toThrow(message);
  });
});

describe('createProxyTracer', () => {
  it('without an endpoint, only propagates', async () => {
    const tracer = await createProxyTracer({ settings: loadTracingSettings({}, 'web'), logger });
    expect(tracer).toBeInstanceOf(PropagatingTracer);
    expect(tracer.exporting).toBe(false);
  });
  it('with an endpoint, exports', async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' };
    const tracer = await createProxyTracer({ settings: loadTracingSettings(env, 'web'), logger });
    expect(tracer.exporting).toBe(true);
    await tracer.shutdown();
  });
});

// The same caller headers through both tracers: what goes upstream must agree on the trace.
describe.each<[string, () => ProxyTracer]>([
  ['propagation only', () => new PropagatingTracer()],
  ['exporting', () => otel().tracer],
])('the %s tracer', (mode, make) => {
  const incoming: [string, IncomingHttpHeaders, 'continues' | 'new trace', number][] = [
    ['valid, sampled', { traceparent: `00-${TRACE}-${SPAN}-01` }, 'continues', 1],
    ['valid, not sampled', { traceparent: `00-${TRACE}-${SPAN}-00` }, 'continues', 0],
    ['future version', { traceparent: `01-${TRACE}-${SPAN}-01-more` }, 'continues', 1],
    ['absent', {}, 'new trace', 1],
    ['malformed', { traceparent: 'not-a-traceparent' }, 'new trace', 1],
    ['version ff', { traceparent: `ff-${TRACE}-${SPAN}-01` }, 'new trace', 1],
    ['all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-${SPAN}-01` }, 'new trace', 1],
    ['all-zero parent id', { traceparent: `00-${TRACE}-${'0'.repeat(16)}-01` }, 'new trace', 1],
  ];
  it.each(incoming)('caller header: %s', (_name, headers, expected, flags) => {
    const tracer = make();
    const call = tracer.startCall(request(headers));
    const sent = call.startTry(tryInfo());
    const tp = parseTraceParent(sent.headers.traceparent);
    expect(tp).toBeDefined();
    expect(tp!.flags).toBe(flags);
    if (expected === 'continues') expect(tp!.traceId).toBe(TRACE);
    else expect(tp!.traceId).not.toBe(TRACE);
    if (expected === 'continues' && mode === 'propagation only') expect(tp!.parentId).toBe(SPAN);
    else expect(tp!.parentId).not.toBe(SPAN);
    sent.end({ kind: 'response', status: 200 });
    call.end(200);
  });

  it('forwards a valid tracestate with a valid traceparent, and drops it with a malformed one', () => {
    const tracer = make();
    const withParent = tracer
      .startCall(request({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'rojo=1,congo=2' }))
      .startTry(tryInfo());
    expect(withParent.headers.tracestate).toBe('rojo=1,congo=2');
    const malformed = tracer
      .startCall(request({ traceparent: 'junk', tracestate: 'rojo=1' }))
      .startTry(tryInfo());
    expect(malformed.headers.tracestate).toBeUndefined();
  });
});

describe('exported spans', () => {
  it('a call span under the caller, a client span per try with its attributes and errors', async () => {
    const { tracer, exporter } = otel();
    const call = tracer.startCall(request({ traceparent: `00-${TRACE}-${SPAN}-01` }));
    const first = call.startTry(tryInfo(1));
    first.end({ kind: 'connect-failure', message: 'connect ECONNREFUSED 10.0.0.7:8080' });
    const second = call.startTry({ ...tryInfo(2), breaker: 'half-open' });
    second.end({ kind: 'response', status: 200 });
    call.end(200);
    await tracer.shutdown();

    const byName = (n: string) => exporter.spans.filter((s) => s.name === n);
    const [callSpan] = byName('proxy orders.shop');
    const tries = byName('GET orders.shop');
    expect(callSpan).toBeDefined();
    expect(tries).toHaveLength(2);
    expect(callSpan!.parentSpanContext?.spanId).toBe(SPAN);
    expect(callSpan!.spanContext().traceId).toBe(TRACE);
    expect(callSpan!.attributes).toMatchObject({
      [ATTR.service]: 'orders',
      [ATTR.namespace]: 'shop',
      [ATTR.tries]: 2,
      'http.response.status_code': 200,
      'url.path': '/orders/42',
    });
    expect(callSpan!.resource.attributes['service.name']).toBe('web');
    for (const s of tries) expect(s.parentSpanContext?.spanId).toBe(callSpan!.spanContext().spanId);
    const [a, b] = tries;
    expect(a!.attributes).toMatchObject({
      [ATTR.instance]: 'orders-1',
      [ATTR.attempt]: 1,
      [ATTR.breaker]: 'closed',
      'server.address': '10.0.0.7',
      'server.port': 8080,
      'error.type': 'connect-failure',
    });
    expect(a!.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: 'connect ECONNREFUSED 10.0.0.7:8080',
    });
    expect(b!.attributes).toMatchObject({
      [ATTR.attempt]: 2,
      [ATTR.breaker]: 'half-open',
      'http.request.resend_count': 1,
      'http.response.status_code': 200,
    });
    expect(b!.status.code).toBe(SpanStatusCode.UNSET);
    // What went upstream for each try names that try's span.
    expect(parseTraceParent(second.headers.traceparent)?.parentId).toBe(b!.spanContext().spanId);
  });

  it('a refused call (no try) and a 503 end as errors', async () => {
    const { tracer, exporter } = otel();
    tracer.startCall(request()).end(403);
    const call = tracer.startCall(request());
    call.startTry(tryInfo()).end({ kind: 'response', status: 503 });
    call.end(503);
    await tracer.shutdown();
    const calls = exporter.spans.filter((s) => s.name === 'proxy orders.shop');
    expect(
      calls.map((s) => [s.attributes[ATTR.tries], s.attributes['error.type'], s.status.code]),
    ).toEqual([
      [0, '403', SpanStatusCode.ERROR],
      [1, '503', SpanStatusCode.ERROR],
    ]);
    const tried = exporter.spans.find((s) => s.name === 'GET orders.shop');
    expect(tried?.attributes['error.type']).toBe('503');
  });

  it('a full export queue drops spans and counts them in maxine_sidecar_spans_dropped_total', async () => {
    const registry = new Registry();
    // The collector holds its first batch: the queue (3) fills behind it and the rest drop.
    const exported: ReadableSpan[] = [];
    let release: () => void = () => undefined;
    const exporter: SpanExporter = {
      export: (batch, done) => {
        exported.push(...batch);
        if (exported.length > batch.length) return done({ code: ExportResultCode.SUCCESS });
        release = () => done({ code: ExportResultCode.SUCCESS });
      },
      shutdown: () => Promise.resolve(),
    };
    const tracer = createOtelTracer({
      settings: { ...settings, maxQueueSize: 3 },
      logger,
      endpoint: settings.endpoint,
      exporter,
      scheduledDelayMillis: 60_000,
      registers: [registry],
    });
    for (let i = 0; i < 4; i++) {
      const call = tracer.startCall(request());
      call.startTry(tryInfo()).end({ kind: 'response', status: 200 });
      call.end(200);
    }
    release();
    await tracer.shutdown();
    expect(exported).toHaveLength(6);
    const text = await registry.metrics();
    expect(text).toContain('maxine_sidecar_spans_dropped_total{reason="queue_full"} 2');
  });

  it('a failing collector counts the lost spans as export_failed', async () => {
    const registry = new Registry();
    const tracer = createOtelTracer({
      settings,
      logger,
      endpoint: settings.endpoint,
      registers: [registry],
      exporter: {
        export: (_spans, done) => done({ code: ExportResultCode.FAILED, error: new Error('down') }),
        shutdown: () => Promise.resolve(),
      },
    });
    const call = tracer.startCall(request());
    call.startTry(tryInfo()).end({ kind: 'response', status: 200 });
    call.end(200);
    await tracer.shutdown();
    expect(await registry.metrics()).toContain(
      'maxine_sidecar_spans_dropped_total{reason="export_failed"} 2',
    );
  });

  it('cuts long attribute values (a 16 KiB path) to MAX_ATTRIBUTE_LENGTH', async () => {
    const { tracer, exporter } = otel();
    const call = tracer.startCall({ ...request(), path: `/${'p'.repeat(16 * 1024)}?q=1` });
    call.end(200);
    await tracer.shutdown();
    expect(exporter.spans[0]?.attributes['url.path']).toBe(
      `/${'p'.repeat(MAX_ATTRIBUTE_LENGTH - 1)}`,
    );
  });

  it('ending twice records once', async () => {
    const { tracer, exporter } = otel();
    const call = tracer.startCall(request());
    const t = call.startTry(tryInfo());
    t.end({ kind: 'response', status: 200 });
    t.end({ kind: 'timeout', message: 'late' });
    call.end(200);
    call.end(500);
    await tracer.shutdown();
    expect(exporter.spans).toHaveLength(2);
    expect(exporter.spans.map((s) => s.status.code)).toEqual([
      SpanStatusCode.UNSET,
      SpanStatusCode.UNSET,
    ]);
  });
});
