/**
 * The operator's REST API (everything except the discovery hot path): an express app built
 * without listening, so tests mount it on port 0.
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { MaxineError, validationError } from '../../common/errors.js';
import { dnsLabel, serviceRefString } from '../../common/names.js';
import { RESOURCE_KINDS } from '../../common/resources.js';
import { instanceIdSchema } from '../../common/wire.js';
import type { Reconciler } from '../reconciler.js';
import { instanceNotFound } from '../registry/registry.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../../common/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { sendError, toMaxineError } from './errors.js';
import { callerOf, originOf, requestId } from './caller.js';
import type { InstanceWriteGuard } from '../auth/instance-guard.js';
import type { AccessControl, Caller } from '../policy/access.js';
import { authorizeInstanceWrite, hideUnknowable } from './instances.js';
import type { KeptWrites } from './instances.js';
import { once } from 'node:events';
import { MESHES } from '../../common/mesh/model.js';
import {
  renderToJson,
  renderToYaml,
  wantsYaml,
  YAML_CONTENT_TYPE,
} from '../../common/mesh/format.js';
import type { MeshInputs } from '../mesh/inputs.js';
import { mountGraphRoutes } from './graph.js';
import { configHistoryOf } from './config-history.js';
import { wantsEventStream } from './event-sink.js';
import type { EventStreamServer } from './event-stream.js';
import type { GraphDeps } from './graph.js';

export interface AppDeps {
  registry: Registry;
  reconciler: Reconciler;
  resourceProblems: () => unknown[];
  isLeader: () => boolean;
  metrics: Metrics;
  logger: Logger;
  isReady: () => boolean;
  openapi: () => unknown;
  /** Which instances a pod's sidecar may write (open in standalone mode). */
  guard: InstanceWriteGuard;
  access: AccessControl;
  /** Istio/Linkerd objects of a declared service. */
  mesh: Pick<MeshInputs, 'render'>;
  /** Whether `/metrics` needs a principal with `read` on every service. */
  metricsAuth: boolean;
  /** Call reports from sidecars and the dependency graph (`operator/http/graph.ts`). */
  graph: GraphDeps;
  /** The audit log's export, for admins (absent when the audit log is off). */
  auditExport?: (range: { from?: number; to?: number }) => AsyncIterable<string>;
  /** Resolves once the changes so far are durable in the standalone store (operator/store/). */
  committed?: () => Promise<void>;
  /** Kubernetes mode: registrations from outside the cluster kept in the API server. */
  kept?: KeptWrites;
  /**
   * Optional parts reported by `/readyz` without deciding it (the MQTT bridge): a broker
   * that is away must not take the registry out of its Service.
   */
  readinessDetails?: () => Record<string, unknown>;
  /** Serves `GET /api/v1/events` with `Accept: text/event-stream` (event-stream.ts). */
  eventStream?: Pick<EventStreamServer, 'serveSse'>;
}

const QUIET_PATHS = new Set(['/metrics', '/healthz', '/readyz']);

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id: the caller's `x-request-id` when well-formed, else a new UUID. */
    id: string;
    /** A child logger that carries the request id. */
    log: Logger;
    /** The request and who made it (every /api route but the OpenAPI document). */
    caller: Caller;
  }
}

/**
 * Request id, a child logger and the latency histogram for every REST request; one log line
 * when it ends (debug for successes, info for 4xx with the error code, error for 5xx).
 */
function requestContext(logger: Logger, metrics: Metrics) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = performance.now();
    req.id = requestId(req) ?? randomUUID();
    req.log = logger.child({ reqId: req.id });
    res.setHeader('x-request-id', req.id);
    res.on('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      metrics.http.observe({ route, method: req.method, status: String(res.statusCode) }, seconds);
      const status = res.statusCode;
      const level = status >= 500 ? 'error' : status >= 400 ? 'info' : 'debug';
      if (QUIET_PATHS.has(req.path) || !req.log.isLevelEnabled(level)) return;
      req.log[level](
        {
          method: req.method,
          url: req.originalUrl.slice(0, 512),
          route,
          status,
          ms: Math.round(seconds * 10_000) / 10,
          ...(res.locals.errorCode !== undefined && { code: res.locals.errorCode as string }),
        },
        'request completed',
      );
    });
    next();
  };
}

function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(where, result.error);
  return result.data;
}

const serviceParams = z.object({ namespace: dnsLabel, name: dnsLabel });
const meshParams = serviceParams.extend({ mesh: z.enum(MESHES) });
const intentionCheckQuery = z.strictObject({
  source: serviceRefString,
  destination: serviceRefString,
  method: z
    .string()
    .regex(/^[A-Z]{1,16}$/, 'must be an upper-case HTTP method')
    .optional(),
  path: z.string().min(1).max(2048).regex(/^\//, 'must start with "/"').optional(),
});
const isoTime = z.iso
  .datetime({ offset: true })
  .transform((v) => Date.parse(v))
  .optional();
const auditQuery = z.strictObject({ from: isoTime, to: isoTime });
const idParams = z.object({ id: instanceIdSchema });
const servicesQuery = z.strictObject({ namespace: dnsLabel.optional() });
const resourcesQuery = z.strictObject({
  kind: z.enum(RESOURCE_KINDS as [string, ...string[]]).optional(),
});

function methodNotAllowed(allowed: string) {
  return (_req: Request, res: Response): void => {
    res.locals.errorCode = 'METHOD_NOT_ALLOWED';
    sendError(res, new MaxineError('METHOD_NOT_ALLOWED', `Allowed: ${allowed}`), {
      allow: allowed,
    });
  };
}

export function createApp(deps: AppDeps): express.Express {
  const { registry, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  // Paths are case-sensitive: `/API/V1/...` is no route (404), not another method of one (405).
  app.set('case sensitive routing', true);

  app.use(requestContext(deps.logger, metrics));
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(deps.openapi());
  });

  app.get('/healthz', (_req, res) => {
    res.json({
      status: 'ok',
      leader: deps.isLeader(),
      massExpiryGuard: registry.massExpiryGuardActive,
    });
  });
  app.get('/readyz', (_req, res) => {
    if (deps.isReady()) res.json({ status: 'ready', ...deps.readinessDetails?.() });
    else
      sendError(
        res,
        new MaxineError('NOT_READY', 'The initial sync of resources has not finished'),
      );
  });
  // Metrics name every service of every namespace: with `--metrics-auth` (kubernetes mode's
  // default) only a principal that may read all of them gets them.
  app.get('/metrics', async (req, res) => {
    if (deps.metricsAuth) {
      const principal = await deps.access.principal(req, 'GET /metrics', originOf(req));
      deps.access.authorize(
        callerOf(req, principal),
        'read',
        { namespace: '*', name: '*' },
        'metrics',
      );
    }
    res.type(metrics.prom.contentType).send(await metrics.prom.metrics());
  });

  // Everything under /api but the OpenAPI document needs a principal.
  app.use('/api', (req, _res, next) => {
    const p = deps.access.principal(
      req,
      `${req.method} ${req.originalUrl.split('?')[0]?.slice(0, 256) ?? ''}`,
      originOf(req),
    );
    if (p instanceof Promise) {
      p.then((principal) => {
        req.caller = callerOf(req, principal);
        next();
      }, next);
    } else {
      req.caller = callerOf(req, p);
      next();
    }
  });

  // POST is answered on the fast path (fast-path.ts) before express.
  app.all('/api/v1/instances', methodNotAllowed('POST'));

  // PUT is answered on the fast path (fast-path.ts) before express.
  app.all('/api/v1/instances/:id/heartbeat', methodNotAllowed('PUT'));

  app.get('/api/v1/instances/:id', (req, res) => {
    const { id } = parse(idParams, req.params, 'path');
    const instance = registry.getInstance(id);
    if (instance === undefined) throw instanceNotFound(id);
    hideUnknowable(deps.access, req.caller, instance, 'read');
    deps.access.authorize(req.caller, 'read', instance.service);
    res.json({ instance });
  });
  app.delete('/api/v1/instances/:id', async (req, res) => {
    const { id } = parse(idParams, req.params, 'path');
    authorizeInstanceWrite(deps, req.caller, id, 'deregister');
    if (deps.kept !== undefined) await deps.kept.deregistering(id);
    registry.deregister(id);
    deps.access.allowed(req.caller, 'deregister', `instance ${id}`);
    req.log.info({ instance: id, by: req.caller.principal.who }, 'instance deregistered');
    if (deps.committed !== undefined) await deps.committed();
    res.status(204).end();
  });
  app.all('/api/v1/instances/:id', methodNotAllowed('GET, DELETE'));

  app.get('/api/v1/services', (req, res) => {
    const { namespace } = parse(servicesQuery, req.query, 'query');
    const visible = deps.access.canRead(req.caller.principal);
    res.json({ services: registry.listServices(namespace).filter(visible) });
  });
  app.all('/api/v1/services', methodNotAllowed('GET'));
  app.get('/api/v1/services/:namespace/:name', (req, res) => {
    const { namespace, name } = parse(serviceParams, req.params, 'path');
    deps.access.authorize(req.caller, 'read', { namespace, name });
    const service = registry.getService(namespace, name);
    if (service === undefined)
      throw new MaxineError('SERVICE_NOT_FOUND', `Service ${namespace}/${name} is not registered`);
    res.json(service);
  });
  app.all('/api/v1/services/:namespace/:name', methodNotAllowed('GET'));
  app.get('/api/v1/services/:namespace/:name/config/history', (req, res) => {
    const { namespace, name } = parse(serviceParams, req.params, 'path');
    deps.access.authorize(req.caller, 'read', { namespace, name });
    const history = configHistoryOf(registry, namespace, name);
    if (history === undefined)
      throw new MaxineError('SERVICE_NOT_FOUND', `Service ${namespace}/${name} is not registered`);
    res.json(history);
  });
  app.all('/api/v1/services/:namespace/:name/config/history', methodNotAllowed('GET'));
  app.get('/api/v1/services/:namespace/:name/mesh/:mesh', (req, res) => {
    const { namespace, name, mesh } = parse(meshParams, req.params, 'path');
    deps.access.authorize(req.caller, 'read', { namespace, name });
    const render = deps.mesh.render(mesh, namespace, name);
    if (render === undefined)
      throw new MaxineError(
        'SERVICE_NOT_FOUND',
        `Service ${namespace}/${name} is not declared by a MaxineService, so there is nothing to render`,
      );
    if (wantsYaml(req.headers.accept)) {
      res.type(YAML_CONTENT_TYPE).send(renderToYaml(render));
      return;
    }
    const enabled = deps.reconciler.serviceSpec(namespace, name)?.mesh?.[mesh] === true;
    res.json(renderToJson(render, enabled));
  });
  app.all('/api/v1/services/:namespace/:name/mesh/:mesh', methodNotAllowed('GET'));
  // GET is answered by the hot path before express; anything reaching here is another method.
  app.all('/api/v1/discover/:namespace/:name', methodNotAllowed('GET, HEAD'));

  app.get('/api/v1/resources', (req, res) => {
    const { kind } = parse(resourcesQuery, req.query, 'query');
    const p = req.caller.principal;
    const items = deps.reconciler
      .list(kind as (typeof RESOURCE_KINDS)[number] | undefined)
      .filter((r) => deps.access.mayView(p, r));
    const admin = deps.access.mayAdminister(p, '*');
    res.json({ items, problems: admin ? deps.resourceProblems() : [] });
  });
  app.all('/api/v1/resources', methodNotAllowed('GET'));

  // May A call B (with this method and path), and which intention decides.
  app.get('/api/v1/intentions/check', (req, res) => {
    const q = parse(intentionCheckQuery, req.query, 'query');
    deps.access.authorize(req.caller, 'read', q.destination);
    const http =
      q.method !== undefined || q.path !== undefined
        ? { method: q.method ?? 'GET', path: q.path ?? '/', headers: {} }
        : undefined;
    const decision = deps.access.intention(q.source, q.destination, http);
    res.json({
      source: q.source,
      destination: q.destination,
      ...(http && { request: { method: http.method, path: http.path } }),
      ...decision,
    });
  });
  app.all('/api/v1/intentions/check', methodNotAllowed('GET'));

  // The audit log as NDJSON, for administrators of everything.
  app.get('/api/v1/audit', async (req, res) => {
    const range = parse(auditQuery, req.query, 'query');
    deps.access.authorize(req.caller, 'admin', { namespace: '*', name: '*' }, 'audit.export');
    if (deps.auditExport === undefined)
      throw new MaxineError(
        'ROUTE_NOT_FOUND',
        'The audit log is off: start the operator with --audit-dir',
      );
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
    for await (const line of deps.auditExport(range)) {
      if (!res.write(`${line}\n`)) await once(res, 'drain');
    }
    res.end();
  });
  app.all('/api/v1/audit', methodNotAllowed('GET'));

  mountGraphRoutes(app, deps.graph, methodNotAllowed);

  app.all('/api/v1/events', (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') methodNotAllowed('GET')(req, res);
    else next();
  });
  app.get('/api/v1/events', (req, res) => {
    // Server-Sent Events, for clients that cannot speak WebSocket (a WebSocket handshake
    // never reaches express: edge.ts hands it to the stream).
    if (
      req.method === 'GET' &&
      deps.eventStream !== undefined &&
      wantsEventStream(req.headers.accept)
    ) {
      deps.eventStream.serveSse(req, res, req.caller.principal);
      return;
    }
    res.locals.errorCode = 'UPGRADE_REQUIRED';
    sendError(
      res,
      new MaxineError(
        'UPGRADE_REQUIRED',
        'Connect with a WebSocket client, or ask for Server-Sent Events (Accept: text/event-stream)',
      ),
      { upgrade: 'websocket' },
    );
  });

  app.use((req, res) => {
    res.locals.errorCode = 'ROUTE_NOT_FOUND';
    sendError(
      res,
      new MaxineError('ROUTE_NOT_FOUND', `No endpoint ${req.method} ${req.path.slice(0, 256)}`),
    );
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toMaxineError(err);
    res.locals.errorCode = e.code;
    if (e.status >= 500) req.log.error({ err }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, e);
  });
  return app;
}
