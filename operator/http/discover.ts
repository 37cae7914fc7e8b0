/**
 * Discovery on the hot path: `GET /api/v1/discover/{namespace}/{name}` parsed with string
 * operations (names are DNS labels, so no decoding unless a `%` appears), the query parsed
 * with the shared zod schema only when there is one, and the answer is the pre-serialized
 * buffer the registry keeps per service (common/discovery.ts). Served by fast-path.ts.
 */
import type { IncomingMessage } from 'node:http';
import { MaxineError, validationError } from '../../common/errors.js';
import { DNS_LABEL_RE } from '../../common/names.js';
import { splitDiscoverQuery } from '../../common/discovery.js';
import type { KeySource, ParsedDiscover } from '../../common/discovery.js';
import { discoverQuerySchema } from '../../common/wire.js';
import type { DiscoverQuery } from '../../common/wire.js';
import type { Registry } from '../registry/registry.js';

export const DISCOVER_PREFIX = '/api/v1/discover/';

export function isDiscover(req: IncomingMessage): boolean {
  return (
    (req.method === 'GET' || req.method === 'HEAD') && (req.url ?? '').startsWith(DISCOVER_PREFIX)
  );
}

/** The answer bytes for a discovery request, or a thrown catalog error. */
export function discoverAnswer(registry: Registry, req: IncomingMessage): Buffer {
  return answer(registry, req.url ?? '', (source) => keyFromRequest(req, source));
}

/**
 * The hash key when the caller passes no `key=`: taken from the discovery request itself as
 * the service's `loadBalancing.hashKey` says (`header:NAME`, `cookie:NAME`, `source-ip`).
 */
function keyFromRequest(req: IncomingMessage, source: string): string | undefined {
  if (source === 'source-ip') return req.socket.remoteAddress;
  const colon = source.indexOf(':');
  const kind = source.slice(0, colon);
  const name = source.slice(colon + 1);
  if (kind === 'header') {
    const value = req.headers[name.toLowerCase()];
    return usableKey(Array.isArray(value) ? value[0] : value);
  }
  if (kind === 'cookie') {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      // Cookie names are case-sensitive (RFC 6265).
      if (eq > 0 && part.slice(0, eq).trim() === name) return usableKey(part.slice(eq + 1).trim());
    }
  }
  return undefined;
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

/**
 * Parsed queries by their text. Clients repeat the same few query strings, so a hit costs a
 * map lookup instead of URLSearchParams + zod (measured: ~20 µs per request on the bench
 * machine). Bounded, and only valid queries are kept.
 */
const queryCache = new Map<string, ParsedDiscover>();
const QUERY_CACHE_SIZE = 1024;
const NO_QUERY = splitDiscoverQuery({});

function parsedQuery(search: string): ParsedDiscover {
  let parsed = queryCache.get(search);
  if (parsed === undefined) {
    parsed = splitDiscoverQuery(parseQuery(search));
    if (queryCache.size >= QUERY_CACHE_SIZE) queryCache.clear();
    queryCache.set(search, parsed);
  }
  return parsed;
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

/** A key from a header or cookie obeys the same rule as `key=`: 1 to 1024 characters. */
function usableKey(value: string | undefined): string | undefined {
  return value === undefined || value === '' || value.length > 1024 ? undefined : value;
}
