/**
 * The exporting tracer: OpenTelemetry spans for each proxied call, exported over OTLP/HTTP in
 * batches. Loaded only by `createProxyTracer` (tracing.ts) with `await import()`, so a sidecar
 * without an endpoint never loads the SDK.
 *
 * Spans of one call, under the caller's context (its `traceparent`, or a new trace):
 *   `proxy <service>.<namespace>` (internal) — the whole call, retries included
 *     └ `<METHOD> <service>.<namespace>` (client) — one per try, sent upstream as `traceparent`
 * so in a → b → c, c's parent is b's try, whose parent is b's call, whose parent is the span
 * b's app received from a's try (b's app forwards its `traceparent`, or instruments itself).
 */
import type { Attributes, Context, Meter, MeterProvider, Span } from '@opentelemetry/api';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  createNoopMeter,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
} from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import { Counter } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { AttemptOutcome, OutboundRequest, TracedCall, TracedTry } from './hooks.js';
import type { ProxyTracer, TracerOptions } from './tracing.js';

/** Span attributes of Maxine's own (the rest are OpenTelemetry's HTTP semantic conventions). */
export const ATTR = {
  service: 'maxine.destination.service',
  namespace: 'maxine.destination.namespace',
  instance: 'maxine.instance.id',
  attempt: 'maxine.attempt',
  breaker: 'maxine.breaker.state',
  tries: 'maxine.tries',
} as const;

/**
 * Attribute values are cut at this length: a path can be as long as Node's header limit (16 KiB)
 * and the export queue holds up to `maxQueueSize` spans, so this bounds its memory.
 */
export const MAX_ATTRIBUTE_LENGTH = 1024;
/** How long stopping waits for the last export before giving up on it. */
const SHUTDOWN_TIMEOUT_MS = 5000;
/** A failing collector is logged at most this often. */
const EXPORT_FAILURE_LOG_MS = 60_000;

export interface OtelTracerOptions extends TracerOptions {
  /** The OTLP/HTTP traces URL. */
  readonly endpoint: string;
  /** Replaces the OTLP exporter (tests). */
  readonly exporter?: SpanExporter;
  /** Replaces the batch processor's scheduling (tests). */
  readonly scheduledDelayMillis?: number;
}

export function createOtelTracer(options: OtelTracerOptions): ProxyTracer {
  const { settings, logger } = options;
  const dropped = new Counter({
    name: 'maxine_sidecar_spans_dropped_total',
    help: 'Spans not exported: the export queue was full (queue_full) or the collector failed (export_failed)',
    labelNames: ['reason'] as const,
    registers: options.registers ?? [],
  });
  const exporter = loggingExporter(
    options.exporter ?? new OTLPTraceExporter({ url: options.endpoint }),
    logger,
  );
  // `selfObsMeterProvider` is the SDK's (experimental) self-observation hook; the shim passes
  // it through to the processor, which reports each dropped or failed span on it.
  const processorConfig: ConstructorParameters<typeof BatchSpanProcessor>[1] & {
    selfObsMeterProvider: MeterProvider;
  } = {
    maxQueueSize: settings.maxQueueSize,
    maxExportBatchSize: Math.min(512, settings.maxQueueSize),
    ...(options.scheduledDelayMillis !== undefined && {
      scheduledDelayMillis: options.scheduledDelayMillis,
    }),
    selfObsMeterProvider: droppedSpansMeterProvider(dropped),
  };
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      ...options.resource,
      [ATTR_SERVICE_NAME]: settings.serviceName,
    }),
    spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE_LENGTH },
    spanProcessors: [new BatchSpanProcessor(exporter, processorConfig)],
  });
  return new OtelCallTracer(provider, logger);
}

class OtelCallTracer implements ProxyTracer {
  readonly exporting = true;
  private readonly tracer;
  private readonly propagator = new W3CTraceContextPropagator();

  constructor(
    private readonly provider: BasicTracerProvider,
    private readonly logger: Logger,
  ) {
    this.tracer = provider.getTracer('maxine-sidecar-proxy');
  }

  startCall(request: OutboundRequest): TracedCall {
    const parent = this.propagator.extract(ROOT_CONTEXT, request.headers, defaultTextMapGetter);
    const destination = `${request.destination.name}.${request.destination.namespace}`;
    const common: Attributes = {
      [ATTR.service]: request.destination.name,
      [ATTR.namespace]: request.destination.namespace,
      [ATTR_HTTP_REQUEST_METHOD]: request.method,
      [ATTR_URL_PATH]: pathOnly(request.path),
    };
    const callSpan = this.tracer.startSpan(
      `proxy ${destination}`,
      { kind: SpanKind.INTERNAL, attributes: common },
      parent,
    );
    const callContext = trace.setSpan(parent, callSpan);
    let tries = 0;
    let ended = false;
    return {
      startTry: (info) => {
        tries += 1;
        const span = this.tracer.startSpan(
          `${request.method} ${destination}`,
          {
            kind: SpanKind.CLIENT,
            attributes: {
              ...common,
              [ATTR.instance]: info.instanceId,
              [ATTR_SERVER_ADDRESS]: info.host,
              [ATTR_SERVER_PORT]: info.port,
              [ATTR.attempt]: info.attempt,
              [ATTR.breaker]: info.breaker,
              ...(info.attempt > 1 && { [ATTR_HTTP_REQUEST_RESEND_COUNT]: info.attempt - 1 }),
            },
          },
          callContext,
        );
        return this.traced(span, trace.setSpan(callContext, span));
      },
      end: (status) => {
        if (ended) return;
        ended = true;
        callSpan.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
        callSpan.setAttribute(ATTR.tries, tries);
        if (status >= 400) {
          callSpan.setAttribute(ATTR_ERROR_TYPE, String(status));
          callSpan.setStatus({ code: SpanStatusCode.ERROR });
        }
        callSpan.end();
      },
    };
  }

  private traced(span: Span, context: Context): TracedTry {
    const headers: Record<string, string> = {};
    this.propagator.inject(context, headers, defaultTextMapSetter);
    let ended = false;
    return {
      headers,
      end: (outcome) => {
        if (ended) return;
        ended = true;
        endTrySpan(span, outcome);
      },
    };
  }

  async shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), SHUTDOWN_TIMEOUT_MS);
      timer.unref();
    });
    try {
      const result = await Promise.race([this.provider.shutdown().then(() => 'done'), timeout]);
      if (result === 'timeout')
        this.logger.warn(
          { timeoutMs: SHUTDOWN_TIMEOUT_MS },
          'tracing: spans still queued at stop were not all exported in time',
        );
    } catch (err) {
      this.logger.warn({ err }, 'tracing: exporting the last spans at stop failed');
    } finally {
      clearTimeout(timer);
    }
  }
}

function endTrySpan(span: Span, outcome: AttemptOutcome): void {
  if (outcome.kind === 'response') {
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, outcome.status);
    // Client spans: 4xx and 5xx are errors (OpenTelemetry HTTP semantic conventions).
    if (outcome.status >= 400) {
      span.setAttribute(ATTR_ERROR_TYPE, String(outcome.status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  } else {
    span.setAttribute(ATTR_ERROR_TYPE, outcome.kind);
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.message });
  }
  span.end();
}

const pathOnly = (path: string): string => {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
};

/** Logs a failing collector (at most once a minute); the processor counts the lost spans. */
function loggingExporter(inner: SpanExporter, logger: Logger): SpanExporter {
  let lastLogged = -Infinity;
  return {
    export: (spans, done) =>
      inner.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) {
          const now = Date.now();
          if (now - lastLogged >= EXPORT_FAILURE_LOG_MS) {
            lastLogged = now;
            logger.warn(
              { err: result.error, spans: spans.length },
              'tracing: exporting spans failed; they are dropped',
            );
          }
        }
        done(result);
      }),
    shutdown: () => inner.shutdown(),
    ...(inner.forceFlush && { forceFlush: () => inner.forceFlush!() }),
  };
}

/** The SDK counter of processed spans, by outcome (semantic convention of the SDK itself). */
const PROCESSED_SPANS = 'otel.sdk.processor.span.processed';

/**
 * A meter that turns the batch processor's `otel.sdk.processor.span.processed` reports with an
 * `error.type` into `maxine_sidecar_spans_dropped_total` (every other instrument is a no-op).
 */
function droppedSpansMeterProvider(dropped: Counter<'reason'>): MeterProvider {
  const noop = createNoopMeter();
  const meter: Meter = Object.create(noop) as Meter;
  meter.createCounter = (name, opts) => {
    if (name !== PROCESSED_SPANS) return noop.createCounter(name, opts);
    return {
      add: (value, attributes) => {
        const errorType = attributes?.[ATTR_ERROR_TYPE];
        if (errorType === undefined) return;
        dropped.inc({ reason: errorType === 'queue_full' ? 'queue_full' : 'export_failed' }, value);
      },
    };
  };
  return { getMeter: () => meter };
}
