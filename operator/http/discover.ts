/**
 * Discovery on the hot path: `GET /api/v1/discover/{namespace}/{name}` parsed with string
 * operations (names are DNS labels, so no decoding unless a `%` appears), the query parsed
 * with the shared zod schema only when there is one, and the answer is the pre-serialized
 * buffer the registry keeps per service (common/discovery.ts). Served by fast-path.ts.
 */
import type { IncomingMessage } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import { keySourceOf, NO_QUERY, parsedQuery, segment } from '../../common/discover-request.js';
import type { Registry } from '../registry/registry.js';
import type { Principal } from '../auth/authenticator.js';
import type { AccessControl } from '../policy/access.js';
import { callerOf, originOf } from './caller.js';

export const DISCOVER_PREFIX = '/api/v1/discover/';

export function isDiscover(req: IncomingMessage): boolean {
  return (
    (req.method === 'GET' || req.method === 'HEAD') && (req.url ?? '').startsWith(DISCOVER_PREFIX)
  );
}

export interface DiscoverDeps {
  registry: Registry;
  access: AccessControl;
}

/**
 * The answer bytes for a discovery request, or a thrown catalog error: synchronous when the
 * caller's identity is already known (no token, or a cached one), else a promise.
 */
export function discoverAnswer(deps: DiscoverDeps, req: IncomingMessage): Buffer | Promise<Buffer> {
  const principal = deps.access.principal(req, 'discover', originOf(req));
  if (principal instanceof Promise) return principal.then((p) => answer(deps, req, p));
  return answer(deps, req, principal);
}

function answer(deps: DiscoverDeps, req: IncomingMessage, principal: Principal): Buffer {
  const url = req.url ?? '';
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
  const service = { namespace, name };
  const caller = callerOf(req, principal);
  // Without percent-encoding the path already is the registry key `namespace/name`.
  const key = path.includes('%') ? `${namespace}/${name}` : path;
  deps.access.discover(caller, service, key);
  const query = q === -1 || q === url.length - 1 ? NO_QUERY : parsedQuery(url.slice(q + 1));
  let body: Buffer;
  try {
    body = deps.registry.discoverParsed(key, query, keySourceOf(req));
  } catch (err) {
    // A blocked service's refusal is audited here (what access.audited does, without a closure).
    deps.access.refused(caller, { action: 'discover', service }, err);
    throw err;
  }
  deps.access.allowedRead(caller, 'discover', service, key);
  return body;
}
