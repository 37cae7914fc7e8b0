/**
 * The discovery hot path. It answers `GET /api/v1/discover/{namespace}/{name}` before the
 * request reaches express: no middleware, no per-request logging, and the body is the
 * pre-serialized answer the registry keeps per service (see common/discovery.ts). The raw
 * header array avoids the header-object bookkeeping of `setHeader`. Measured in
 * bench/RESULTS.md against a bare node:http server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { MaxineError, validationError } from '../../common/errors.js';
import { DNS_LABEL_RE } from '../../common/names.js';
import { discoverQuerySchema } from '../../common/wire.js';
import type { DiscoverQuery } from '../../common/wire.js';
import type { Registry } from '../registry/registry.js';
import { toMaxineError } from './errors.js';

export const DISCOVER_PREFIX = '/api/v1/discover/';
const EMPTY_QUERY: DiscoverQuery = Object.freeze({});

export interface DiscoverDeps {
  registry: Registry;
  observe: (status: number) => (seconds: number) => void;
}

/** Returns a handler that answers discovery requests and returns false for anything else. */
export function createDiscoverHandler(
  deps: DiscoverDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url ?? '';
    if (req.method !== 'GET' || !url.startsWith(DISCOVER_PREFIX)) return false;
    const started = performance.now();
    let status = 200;
    let body: Buffer;
    try {
      body = answer(deps.registry, url);
    } catch (err) {
      const e = toMaxineError(err);
      status = e.status;
      body = Buffer.from(JSON.stringify(e.toBody()));
    }
    res.writeHead(status, [
      'content-type',
      'application/json',
      'content-length',
      String(body.length),
    ]);
    res.end(body);
    deps.observe(status)((performance.now() - started) / 1000);
    return true;
  };
}

function answer(registry: Registry, url: string): Buffer {
  const q = url.indexOf('?', DISCOVER_PREFIX.length);
  const path = q === -1 ? url.slice(DISCOVER_PREFIX.length) : url.slice(DISCOVER_PREFIX.length, q);
  const slash = path.indexOf('/');
  if (slash <= 0 || path.indexOf('/', slash + 1) !== -1) {
    throw new MaxineError(
      'ROUTE_NOT_FOUND',
      'Discovery is GET /api/v1/discover/{namespace}/{name}',
    );
  }
  const namespace = segment(path.slice(0, slash), 'namespace');
  const name = segment(path.slice(slash + 1), 'name');
  return registry.discover(
    namespace,
    name,
    q === -1 || q === url.length - 1 ? EMPTY_QUERY : parseQuery(url.slice(q + 1)),
  );
}

function segment(raw: string, what: string): string {
  const value = raw.includes('%') ? decodeURIComponent(raw) : raw;
  if (value.length > 63 || !DNS_LABEL_RE.test(value)) {
    throw new MaxineError(
      'VALIDATION_FAILED',
      `Invalid ${what} "${value.slice(0, 64)}": must be a DNS-1123 label`,
      {
        issues: [{ path: what, message: 'must be a DNS-1123 label' }],
      },
    );
  }
  return value;
}

function parseQuery(search: string): DiscoverQuery {
  const raw = Object.create(null) as Record<string, string>;
  for (const [k, v] of new URLSearchParams(search)) {
    if (Object.hasOwn(raw, k)) {
      throw new MaxineError('VALIDATION_FAILED', `Query parameter "${k}" is given twice`, {
        issues: [{ path: k, message: 'given twice' }],
      });
    }
    raw[k] = v;
  }
  const parsed = discoverQuerySchema.safeParse(raw);
  if (!parsed.success) throw validationError('query', parsed.error);
  return parsed.data;
}
