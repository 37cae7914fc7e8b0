/**
 * The sidecar-injection admission webhook over HTTPS. The API server POSTs an
 * `admission.k8s.io/v1` AdmissionReview; the answer allows every request and, for a Pod CREATE
 * that `buildInjection` decides to inject, carries the JSON patch. A malformed review is a 400
 * with the validation issues, never a crash.
 *
 * Routes: `POST /inject` (the pod's namespace did not opt in), `POST /inject/namespace` or
 * `POST /inject?namespace=enabled` (it did: the webhook configuration routes namespaces labelled
 * `maxine.io/injection: enabled` there; `clientConfig.service.path` allows no query string, so
 * the manifest uses the path form), `GET /healthz`.
 *
 * The serving certificate is swapped at run time with `setWebhookTls` (`server.setSecureContext`):
 * new connections get the new certificate, open ones finish with the old one.
 */
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import { Counter } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { z } from 'zod';
import { issuesOf, MaxineError } from '../../common/errors.js';
import { readJsonBody } from '../http/body.js';
import type { Logger } from '../../common/logger.js';
import { applyJsonPatch } from './json-patch.js';
import { buildInjection } from '../../common/injection-patch.js';
import type {
  InjectablePod,
  InjectionConfig,
  InjectionResult,
  SelectingService,
} from '../../common/injection-patch.js';

export const DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024;
const REVIEW_API_VERSION = 'admission.k8s.io/v1';

export interface WebhookTls {
  cert: string;
  key: string;
}

export interface WebhookServerOptions {
  tls: WebhookTls;
  logger: Logger;
  /** The MaxineServices of a namespace (from the informer cache). */
  servicesIn: (namespace: string) => readonly SelectingService[];
  config: InjectionConfig;
  /** Larger request bodies are refused with 413. Default 5 MiB. */
  maxBodyBytes?: number;
  /** Where `maxine_webhook_reviews_total` and `maxine_webhook_tls_errors_total` register. */
  prom?: PromRegistry;
}

/** What became of one request to the webhook, as `maxine_webhook_reviews_total` counts it. */
export const REVIEW_OUTCOMES = [
  'injected',
  'not_injected',
  'unchanged',
  'refused',
  'error',
] as const;
export type ReviewOutcome = (typeof REVIEW_OUTCOMES)[number];

// ---- The wire shapes ----

const admissionRequestSchema = z.object({
  uid: z.string().min(1),
  kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }),
  subResource: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
  object: z.unknown().optional(),
  dryRun: z.boolean().optional(),
});

export const admissionReviewSchema = z.object({
  apiVersion: z.literal(REVIEW_API_VERSION),
  kind: z.literal('AdmissionReview'),
  request: admissionRequestSchema,
});
export type AdmissionReview = z.infer<typeof admissionReviewSchema>;
export type AdmissionRequest = AdmissionReview['request'];

const stringMap = z.record(z.string(), z.string());
const named = z.looseObject({ name: z.string() });
/** The pod fields injection reads; everything else passes through untouched. */
const podSchema = z.looseObject({
  metadata: z
    .looseObject({
      name: z.string().optional(),
      generateName: z.string().optional(),
      namespace: z.string().optional(),
      labels: stringMap.optional(),
      annotations: stringMap.optional(),
    })
    .optional(),
  spec: z
    .looseObject({
      initContainers: z.array(named).optional(),
      containers: z.array(named).optional(),
      volumes: z.array(named).optional(),
    })
    .optional(),
});

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  /** Base64 of the JSON patch. */
  patch?: string;
  warnings?: string[];
}

// ---- Answering a review (no I/O) ----

export interface Answer {
  response: AdmissionResponse;
  outcome: Exclude<ReviewOutcome, 'refused'>;
  /** What the log line says about this review. */
  log: { level: 'info' | 'warn' | 'debug' | 'error'; fields: Record<string, unknown>; msg: string };
}

export interface ReviewContext {
  namespaceOptIn: boolean;
  servicesIn: WebhookServerOptions['servicesIn'];
  config: InjectionConfig;
}

function isPodCreate(request: AdmissionRequest): boolean {
  return (
    request.kind.group === '' &&
    request.kind.kind === 'Pod' &&
    request.operation === 'CREATE' &&
    (request.subResource ?? '') === ''
  );
}

function podNameOf(pod: InjectablePod): string {
  const meta = pod.metadata;
  return meta?.name ?? (meta?.generateName === undefined ? '<unnamed>' : `${meta.generateName}*`);
}

/** Kubernetes shows warnings as `Warning: ...`; say who is speaking. */
const warningsOf = (result: InjectionResult): string[] | undefined =>
  result.warnings?.map((w) => `maxine: ${w}`);

/** The answer to a Pod CREATE whose object is already validated. */
function answerPod(request: AdmissionRequest, pod: InjectablePod, context: ReviewContext): Answer {
  const namespace = request.namespace ?? pod.metadata?.namespace ?? 'default';
  const fields = { uid: request.uid, namespace, pod: podNameOf(pod) };
  const where = `${namespace}/${fields.pod}`;
  const result = buildInjection({
    pod,
    namespace,
    namespaceOptIn: context.namespaceOptIn,
    services: context.servicesIn(namespace),
    config: context.config,
  });
  const warnings = warningsOf(result);
  const base = { uid: request.uid, allowed: true as const, ...(warnings && { warnings }) };
  if (!result.inject) {
    return {
      response: base,
      outcome: 'not_injected',
      log: {
        level: result.warnings === undefined ? 'debug' : 'warn',
        fields: { ...fields, reason: result.reason, warnings: result.warnings },
        msg: `sidecar not injected into ${where}: ${result.reason}`,
      },
    };
  }
  try {
    // The API server would refuse a patch that does not apply; check it here instead.
    applyJsonPatch(pod, result.patch);
  } catch (err) {
    return {
      response: {
        ...base,
        warnings: [...(warnings ?? []), 'maxine: internal error; not injected'],
      },
      outcome: 'error',
      log: { level: 'error', fields: { ...fields, err }, msg: `bad patch for ${where}` },
    };
  }
  return {
    response: {
      ...base,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(result.patch)).toString('base64'),
    },
    outcome: 'injected',
    log: {
      level: 'info',
      fields: { ...fields, service: result.service, warnings: result.warnings },
      msg: `sidecar injected into ${where} for service ${result.service}`,
    },
  };
}

/** The answer to any review, or the validation error of a malformed one. */
export function answerReview(body: unknown, context: ReviewContext): Answer | MaxineError {
  const review = admissionReviewSchema.safeParse(body);
  if (!review.success) return invalid('AdmissionReview', review.error.issues);
  const { request } = review.data;
  if (!isPodCreate(request)) {
    const { kind, operation, namespace, name } = request;
    return {
      response: { uid: request.uid, allowed: true },
      outcome: 'unchanged',
      log: {
        level: 'debug',
        fields: { uid: request.uid, kind: kind.kind, operation, namespace, name },
        msg: 'allowed unchanged: not a Pod CREATE',
      },
    };
  }
  const pod = podSchema.safeParse(request.object);
  if (!pod.success) {
    return invalid(
      'Pod in the AdmissionReview',
      pod.error.issues.map((i) => ({ ...i, path: ['request', 'object', ...i.path] })),
    );
  }
  return answerPod(request, pod.data, context);
}

function invalid(
  what: string,
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): MaxineError {
  const details = { issues: issuesOf({ issues }) };
  const first = details.issues[0];
  const summary = first === undefined ? 'invalid' : `${first.path || '(root)'}: ${first.message}`;
  return new MaxineError('VALIDATION_FAILED', `Invalid ${what}: ${summary}`, details);
}

// ---- HTTP ----

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function sendError(res: ServerResponse, error: MaxineError): void {
  // An unread body may still be arriving: do not keep reading it on this connection.
  if (error.code === 'BODY_TOO_LARGE') res.setHeader('connection', 'close');
  sendJson(res, error.status, error.toBody());
}

type Route = { kind: 'inject'; namespaceOptIn: boolean } | { kind: 'healthz' };
type Refusal = { error: MaxineError; allow?: string };

const ROUTES: Record<string, { methods: readonly string[]; route: (url: URL) => Route }> = {
  '/healthz': { methods: ['GET', 'HEAD'], route: () => ({ kind: 'healthz' }) },
  '/inject': {
    methods: ['POST'],
    route: (url) => ({
      kind: 'inject',
      namespaceOptIn: url.searchParams.get('namespace') === 'enabled',
    }),
  },
  '/inject/namespace': {
    methods: ['POST'],
    route: () => ({ kind: 'inject', namespaceOptIn: true }),
  },
};

function routeOf(req: IncomingMessage): Route | Refusal {
  const url = new URL(req.url ?? '/', 'https://webhook.invalid');
  const entry = Object.hasOwn(ROUTES, url.pathname) ? ROUTES[url.pathname] : undefined;
  if (entry === undefined) return { error: new MaxineError('ROUTE_NOT_FOUND') };
  if (!entry.methods.includes(req.method ?? '')) {
    const allow = entry.methods.join(', ');
    return {
      error: new MaxineError('METHOD_NOT_ALLOWED', `Use ${allow} on ${url.pathname}`),
      allow,
    };
  }
  return entry.route(url);
}

type Count = (outcome: ReviewOutcome) => void;

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: WebhookServerOptions,
  count: Count,
): Promise<void> {
  const route = routeOf(req);
  if ('error' in route) {
    if (route.allow !== undefined) res.setHeader('allow', route.allow);
    sendError(res, route.error);
    return;
  }
  if (route.kind === 'healthz') {
    sendJson(res, 200, { status: 'ok' });
    return;
  }
  const body = await readJsonBody(req, options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  const answer = answerReview(body, { ...options, namespaceOptIn: route.namespaceOptIn });
  if (answer instanceof MaxineError) {
    options.logger.warn({ details: answer.details }, answer.message);
    count('refused');
    sendError(res, answer);
    return;
  }
  options.logger[answer.log.level](answer.log.fields, answer.log.msg);
  count(answer.outcome);
  sendJson(res, 200, {
    apiVersion: REVIEW_API_VERSION,
    kind: 'AdmissionReview',
    response: answer.response,
  });
}

function tlsOptions(tls: WebhookTls): SecureContextOptions {
  return { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' };
}

/**
 * Swaps the serving certificate: new connections get it, open ones keep theirs. (A secure
 * context is replaced whole, so the other TLS options are given again.)
 */
export function setWebhookTls(server: Server, tls: WebhookTls): void {
  server.setSecureContext(tlsOptions(tls));
}

/** The webhook's HTTPS server, not listening yet. */
export function createWebhookServer(options: WebhookServerOptions): Server {
  const metrics = webhookMetrics(options.prom);
  const count: Count = (outcome) => metrics.reviews.inc({ outcome });
  const server = createServer(tlsOptions(options.tls), (req, res) => {
    handle(req, res, options, count).catch((err: unknown) => {
      const error = err instanceof MaxineError ? err : new MaxineError('INTERNAL');
      count(error.status < 500 ? 'refused' : 'error');
      if (!(err instanceof MaxineError)) options.logger.error({ err }, 'webhook request failed');
      if (res.headersSent) res.destroy();
      else sendError(res, error);
    });
  });
  // The API server's client keeps idle connections up to 90 s; closing them first races its
  // next request on that connection (a POST it will not retry), so let it close them.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.on('tlsClientError', (err) => {
    metrics.tlsErrors.inc();
    options.logger.debug({ err: err.message }, 'webhook TLS handshake failed');
  });
  return server;
}

function webhookMetrics(prom: PromRegistry | undefined) {
  const registers = prom === undefined ? [] : [prom];
  const reviews = new Counter({
    name: 'maxine_webhook_reviews_total',
    help: 'Requests to the injection webhook, by outcome (injected, not_injected, unchanged: not a Pod CREATE, refused: 4xx, error: 5xx or a patch that did not apply)',
    labelNames: ['outcome'],
    registers,
  });
  // Every outcome from the start, so a rate over them is defined before the first failure.
  for (const outcome of REVIEW_OUTCOMES) reviews.inc({ outcome }, 0);
  const tlsErrors = new Counter({
    name: 'maxine_webhook_tls_errors_total',
    help: 'TLS handshakes with the injection webhook that failed (an API server without the current CA in the caBundle fails here)',
    registers,
  });
  return { reviews, tlsErrors };
}
