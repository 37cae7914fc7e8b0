/**
 * Discovery on the hot path: `GET /api/v1/discover/{namespace}/{name}` parsed with string
 * operations (names are DNS labels, so no decoding unless a `%` appears), the query parsed
 * with the shared zod schema only when there is one, and the answer is the pre-serialized
 * buffer the registry keeps per service (common/discovery.ts). Served by fast-path.ts.
 */
import type { IncomingMessage } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import type { KeySource } from '../../common/discovery.js';
import { keySourceOf, NO_QUERY, parsedQuery, segment } from '../../common/discover-request.js';
import type { Registry } from '../registry/registry.js';

export const DISCOVER_PREFIX = '/api/v1/discover/';

export function isDiscover(req: IncomingMessage): boolean {
  return (
    (req.method === 'GET' || req.method === 'HEAD') && (req.url ?? '').startsWith(DISCOVER_PREFIX)
  );
}

/** The answer bytes for a discovery request, or a thrown catalog error. */
export function discoverAnswer(registry: Registry, req: IncomingMessage): Buffer {
  return answer(registry, req.url ?? '', keySourceOf(req));
}

function answer(registry: Registry, url: string, keyFrom: KeySource): Buffer {
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
  // Without percent-encoding the path already is the registry key `namespace/name`.
  const key = path.includes('%') ? `${namespace}/${name}` : path;
  const query = q === -1 || q === url.length - 1 ? NO_QUERY : parsedQuery(url.slice(q + 1));
  return registry.discoverParsed(key, query, keyFrom);
}
