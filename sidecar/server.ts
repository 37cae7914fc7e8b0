/**
 * The sidecar's HTTP server on localhost:7711. Discovery is its hot path: every application
 * call asks it first, so it is answered straight from the local copy's pre-serialized bytes
 * with no framework, no per-request log line and no allocation beyond the answer
 * (bench/RESULTS.md compares it with a bare node:http server). `/healthz` is open to kubelet;
 * everything under `/v1/` answers only the pod's own containers (loopback).
 */
import { http } from '../common/node-http.js';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { keySourceOf, NO_QUERY, parsedQuery, segment } from '../common/discover-request.js';
import type { DiscoverySource } from '../common/discover-request.js';
import { MaxineError } from '../common/errors.js';
import { wantsYaml, YAML_CONTENT_TYPE } from '../common/mesh/format.js';
import { MESHES } from '../common/mesh/model.js';
import type { MeshName } from '../common/mesh/model.js';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import type { MeshAnswer } from './mesh.js';
import { answerConfig } from './app-config/http.js';
import type { AppConfigState } from './app-config/state.js';
import { answerClientError } from './proxy/client-error.js';
import type { ProxyEngine } from './proxy/engine.js';
import { parseProxyPath, PROXY_PREFIX } from './proxy/target.js';

export interface SidecarServerDeps {
  source: DiscoverySource;
  /** The pod's namespace: `/v1/discover/{name}` looks there. */
  namespace: string;
  /** The pod's service's config (`GET /v1/config`, with its ETag, version and long-poll). */
  config: AppConfigState;
  /** The longest `?wait=` honoured (a longer one is cut to it). Default 60 s. */
  configMaxWaitMs?: number;
  health: () => { ok: boolean; [k: string]: unknown };
  /** The last answer of the operator's render of the pod's service for `mesh`, if any yet. */
  mesh: (mesh: MeshName) => MeshAnswer | undefined;
  logger: Logger;
  /** Served at `GET /metrics` in the Prometheus text format (open like /healthz); absent: 404. */
  metrics?: Pick<PromRegistry, 'metrics' | 'contentType'>;
  /** The outbound proxy behind `ANY /v1/proxy/{service}[.{namespace}]/{path}`; absent: 404. */
  proxy?: ProxyEngine;
  /**
   * The refusal of a service the copy does not hold because it is outside the pod's discovery
   * scope (sidecar/scope.ts), asked only when the copy has no such service.
   */
  outsideScope?: (
    service: { namespace: string; name: string },
    fallback: MaxineError,
  ) => MaxineError | undefined;
  /**
   * The refusal of a discovery the intentions forbid (`MAXINE_DISCOVERY_CHECK_INTENTIONS`), or
   * undefined to answer it; absent: discovery does not check intentions.
   */
  discoveryRefusal?: (namespace: string, name: string) => MaxineError | undefined;
}

const DISCOVER = '/v1/discover/';
const MESH = '/v1/mesh/';

export function createSidecarServer(deps: SidecarServerDeps): Server {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    try {
      if (!proxied(deps, req, res)) route(deps, req, res);
    } catch (err) {
      fail(deps, res, err, req.method === 'HEAD');
    }
  });
  // 431 for headers over maxHeaderSize, 400 with the reason for the rest (proxy/client-error.ts).
  server.on('clientError', answerClientError);
  return server;
}

function route(deps: SidecarServerDeps, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const read = req.method === 'GET' || req.method === 'HEAD';
  if (url.startsWith(DISCOVER)) {
    if (!read) throw methodNotAllowed(res, 'GET, HEAD');
    localOnly(req);
    send(res, 200, discover(deps, url, req), req.method === 'HEAD');
    return;
  }
  const path = url.split('?', 1)[0];
  if (path === '/healthz') {
    if (!read) throw methodNotAllowed(res, 'GET, HEAD');
    const health = deps.health();
    // kubelet (from the node) learns only whether we live; the details are the pod's own.
    const body = isLoopback(req.socket.remoteAddress) ? health : { ok: health.ok };
    send(res, health.ok ? 200 : 503, JSON.stringify(body), req.method === 'HEAD');
    return;
  }
  if (path === '/metrics') {
    answerMetrics(deps, req, res);
    return;
  }
  if (path === '/v1/config') {
    configRoute(deps, req, res);
    return;
  }
  const mesh = meshOf(path);
  if (mesh !== undefined) {
    if (!read) throw methodNotAllowed(res, 'GET, HEAD');
    localOnly(req);
    answerMesh(res, deps.mesh(mesh), req);
    return;
  }
  throw new MaxineError(
    'ROUTE_NOT_FOUND',
    `No such endpoint: ${req.method} ${path?.slice(0, 128)}; see GET /v1/discover/{name}, ANY /v1/proxy/{service}/{path}, GET /v1/config, GET /v1/mesh/{${MESHES.join('|')}}, GET /healthz, GET /metrics`,
  );
}

/** `GET /v1/config` (sidecar/app-config/http.ts); a long-poll's failure is answered too. */
function configRoute(deps: SidecarServerDeps, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(res, 'GET, HEAD');
  localOnly(req);
  answerConfig(deps.config, req, res, deps.configMaxWaitMs ?? 60_000)?.catch((err: unknown) =>
    fail(deps, res, err, req.method === 'HEAD'),
  );
}

/** `GET /metrics`: the Prometheus text, open like /healthz (Prometheus scrapes the pod IP). */
function answerMetrics(deps: SidecarServerDeps, req: IncomingMessage, res: ServerResponse): void {
  const registry = deps.metrics;
  if (registry === undefined) throw new MaxineError('ROUTE_NOT_FOUND', 'No metrics here');
  const head = req.method === 'HEAD';
  if (!head && req.method !== 'GET') throw methodNotAllowed(res, 'GET, HEAD');
  registry.metrics().then(
    (text) => {
      res.writeHead(200, [
        'content-type',
        registry.contentType,
        'content-length',
        String(Buffer.byteLength(text)),
      ]);
      res.end(head ? undefined : text);
    },
    (err: unknown) => fail(deps, res, err, head),
  );
}

/** Hands `/v1/proxy/...` to the outbound proxy; false for any other path. */
function proxied(deps: SidecarServerDeps, req: IncomingMessage, res: ServerResponse): boolean {
  const url = req.url ?? '/';
  if (deps.proxy === undefined || !url.startsWith(PROXY_PREFIX)) return false;
  localOnly(req);
  deps.proxy.handle(req, res, parseProxyPath(url, deps.namespace), 'path');
  return true;
}

/** The mesh of `/v1/mesh/{mesh}`; undefined for any other path (an unknown mesh: no route). */
function meshOf(path: string | undefined): MeshName | undefined {
  if (path?.startsWith(MESH) !== true) return undefined;
  const name = path.slice(MESH.length);
  return MESHES.find((m) => m === name);
}

/** The operator's render, as it answered it: JSON, or the YAML stream when Accept asks. */
function answerMesh(
  res: ServerResponse,
  answer: MeshAnswer | undefined,
  req: IncomingMessage,
): void {
  if (answer === undefined) {
    res.setHeader('retry-after', '1');
    throw new MaxineError(
      'MESH_NOT_READY',
      'The mesh configuration has not been fetched from the operator yet; retry shortly',
    );
  }
  if (answer.kind === 'undeclared') {
    throw new MaxineError(
      'SERVICE_NOT_DECLARED',
      'The service is not declared by a MaxineService, so there is no mesh configuration',
    );
  }
  const yaml = wantsYaml(req.headers.accept);
  const body = yaml ? answer.yaml : answer.json;
  res.writeHead(200, [
    'content-type',
    yaml ? YAML_CONTENT_TYPE : 'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'vary',
    'accept',
  ]);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** `/v1/discover/{name}` (the pod's namespace) or `/v1/discover/{namespace}/{name}`. */
function discover(deps: SidecarServerDeps, url: string, req: IncomingMessage): Buffer {
  const q = url.indexOf('?', DISCOVER.length);
  const path = q === -1 ? url.slice(DISCOVER.length) : url.slice(DISCOVER.length, q);
  const parts = path.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw new MaxineError(
      'ROUTE_NOT_FOUND',
      'Discovery is GET /v1/discover/{name} or /v1/discover/{namespace}/{name}',
    );
  }
  const name = segment(parts.at(-1) ?? '', 'name');
  const namespace = parts.length === 2 ? segment(parts[0] ?? '', 'namespace') : deps.namespace;
  const query = q === -1 || q === url.length - 1 ? NO_QUERY : parsedQuery(url.slice(q + 1));
  refuseByIntention(deps, namespace, name);
  try {
    return deps.source.discoverParsed(`${namespace}/${name}`, query, keySourceOf(req));
  } catch (err) {
    // Not in the copy: say so when it is because the pod's scope leaves it out.
    if (err instanceof MaxineError && err.code === 'SERVICE_NOT_FOUND')
      throw deps.outsideScope?.({ namespace, name }, err) ?? err;
    throw err;
  }
}

/** Throws the refusal of a discovery the mirrored intentions forbid (when checked). */
function refuseByIntention(deps: SidecarServerDeps, namespace: string, name: string): void {
  const refusal = deps.discoveryRefusal?.(namespace, name);
  if (refusal !== undefined) throw refusal;
}

/** The sidecar speaks for its pod: other pods must not use it to look around. */
function localOnly(req: IncomingMessage): void {
  if (isLoopback(req.socket.remoteAddress)) return;
  throw new MaxineError('FORBIDDEN', "Only the pod's own containers may use its sidecar");
}

export function isLoopback(address: string | undefined): boolean {
  return (
    address !== undefined &&
    (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'))
  );
}

function methodNotAllowed(res: ServerResponse, allow: string): MaxineError {
  res.setHeader('allow', allow);
  return new MaxineError('METHOD_NOT_ALLOWED', `Use ${allow}`);
}

function fail(deps: SidecarServerDeps, res: ServerResponse, err: unknown, head: boolean): void {
  const e =
    err instanceof MaxineError ? err : new MaxineError('INTERNAL', 'The sidecar failed to answer');
  if (!(err instanceof MaxineError)) deps.logger.error({ err }, 'sidecar request failed');
  send(res, e.status, JSON.stringify(e.toBody()), head);
}

function send(res: ServerResponse, status: number, body: string | Buffer, head: boolean): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  res.writeHead(status, ['content-type', 'application/json', 'content-length', String(length)]);
  if (head) res.end();
  else res.end(body);
}
