/**
 * The proxy's tracer (issue 14): W3C `traceparent`/`tracestate` propagation on every outbound
 * call, and OpenTelemetry spans exported over OTLP/HTTP when an endpoint is configured with the
 * standard variables.
 *
 * Without an endpoint the sidecar only propagates: the caller's valid context is forwarded as it
 * came (the sidecar records nothing, so it adds no span of its own to the chain), and a call
 * without one (or with a malformed one) gets a new trace. Nothing of OpenTelemetry is loaded
 * then: an import of the SDK and the exporter costs the sidecar about 15 MB of RSS, paid only
 * when spans are exported (`tracing-otel.ts`, loaded with `await import()`).
 */
import type { Registry as PromRegistry } from 'prom-client';
import { z } from 'zod';
import { formatPath } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { SidecarConfigError } from '../config.js';
import type { CallTracer, OutboundRequest, TracedCall, TracedTry } from './hooks.js';
import {
  SAMPLED,
  formatTraceParent,
  newSpanId,
  newTraceId,
  normalizeTraceState,
  parseTraceParent,
} from './trace-context.js';

export interface ProxyTracer extends CallTracer {
  /** Whether spans are recorded and exported (false: propagation only). */
  readonly exporting: boolean;
  /** Exports the spans still queued and stops; the sidecar calls it when it stops. */
  shutdown(): Promise<void>;
}

export interface TracingSettings {
  /** The OTLP/HTTP traces URL; undefined: propagation only. */
  readonly endpoint: string | undefined;
  /** `service.name` of the spans. */
  readonly serviceName: string;
  /** Spans waiting for export at most; more are dropped (and counted). */
  readonly maxQueueSize: number;
}

const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();
const otlpUrl = optionalText.refine(
  (v) => v === undefined || /^https?:\/\/[^/]/.test(v),
  'must be an http:// or https:// URL',
);

/** The standard OpenTelemetry variables the tracer reads. */
export const tracingEnvSchema = z.object({
  /** Base URL of an OTLP/HTTP collector; spans go to `<base>/v1/traces`. */
  OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
  /** Full traces URL, used as is; wins over the base one. */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpUrl,
  /** `service.name`; default: the pod's MaxineService. */
  OTEL_SERVICE_NAME: optionalText,
  /** `true`: no spans at all (propagation only). */
  OTEL_SDK_DISABLED: optionalText,
  /** `none`: no spans (propagation only); `otlp` (the default) is the only exporter. */
  OTEL_TRACES_EXPORTER: z
    .enum(['otlp', 'none', ''], { error: 'must be otlp or none (the sidecar exports only OTLP)' })
    .optional(),
  /** The export queue's bound (BatchSpanProcessor's maxQueueSize). */
  OTEL_BSP_MAX_QUEUE_SIZE: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.coerce
      .number({ error: 'must be a whole number of spans' })
      .int('must be a whole number of spans')
      .min(1, 'must be at least 1')
      .max(65_536, 'must be at most 65536')
      .default(2048),
  ),
});

/** Reads the tracer's settings; a bad value throws SidecarConfigError naming the variable. */
export function loadTracingSettings(env: NodeJS.ProcessEnv, podService: string): TracingSettings {
  const parsed = tracingEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new SidecarConfigError(
      parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '),
    );
  }
  const e = parsed.data;
  const off = e.OTEL_SDK_DISABLED?.toLowerCase() === 'true' || e.OTEL_TRACES_EXPORTER === 'none';
  const endpoint = off
    ? undefined
    : (e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
      (e.OTEL_EXPORTER_OTLP_ENDPOINT === undefined
        ? undefined
        : `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`));
  return {
    endpoint,
    serviceName: e.OTEL_SERVICE_NAME ?? podService,
    maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE,
  };
}

export interface TracerOptions {
  readonly settings: TracingSettings;
  readonly logger: Logger;
  /** Where `maxine_sidecar_spans_dropped_total` is registered (when spans are exported). */
  readonly registers?: PromRegistry[];
  /** Resource attributes beside `service.name` (e.g. `k8s.namespace.name`, `k8s.pod.name`). */
  readonly resource?: Readonly<Record<string, string>>;
}

/** The tracer the settings ask for; the OpenTelemetry SDK is imported only when exporting. */
export async function createProxyTracer(options: TracerOptions): Promise<ProxyTracer> {
  const { endpoint } = options.settings;
  if (endpoint === undefined) {
    options.logger.debug('tracing: no OTLP endpoint, propagating trace context only');
    return new PropagatingTracer();
  }
  const { createOtelTracer } = await import('./tracing-otel.js');
  const tracer = createOtelTracer({ ...options, endpoint });
  options.logger.info(
    { endpoint, serviceName: options.settings.serviceName },
    'tracing: exporting spans over OTLP/HTTP',
  );
  return tracer;
}

const NO_TRY: TracedTry['end'] = () => undefined;

/**
 * Propagation only: the caller's valid `traceparent` goes upstream unchanged (and its
 * `tracestate`, normalised); absent or malformed, a new sampled trace starts here, so services
 * further down that do export still record their part of it.
 */
export class PropagatingTracer implements ProxyTracer {
  readonly exporting = false;

  startCall(request: OutboundRequest): TracedCall {
    const caller = parseTraceParent(request.headers.traceparent);
    const headers: Record<string, string> = {};
    if (caller === undefined) {
      headers.traceparent = formatTraceParent({
        traceId: newTraceId(),
        parentId: newSpanId(),
        flags: SAMPLED,
      });
    } else {
      headers.traceparent = formatTraceParent(caller);
      const state = normalizeTraceState(request.headers.tracestate);
      if (state !== undefined) headers.tracestate = state;
    }
    const tried: TracedTry = { headers, end: NO_TRY };
    return { startTry: () => tried, end: () => undefined };
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
