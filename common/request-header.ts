/**
 * One request header by its lower-case name, read from the request's `rawHeaders` without
 * building `req.headers`: Node builds that whole object (every header, lower-cased and merged)
 * on its first read, ~0.2 µs per request, which the discovery hot path paid for one header
 * (decision 0026, session 12). The answer is the one `req.headers[name]` gives: of repeated
 * headers, those Node keeps once (`authorization`, `host`, …) keep the first, the others are
 * joined with `, ` (what Node does for every header Maxine reads this way but `authorization`).
 * A request without `rawHeaders` (a test's stand-in) is read from `headers`.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The headers Node keeps once when repeated (node:_http_incoming's `matchKnownFields`). */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

export interface HeaderSource {
  readonly rawHeaders?: readonly string[];
  readonly headers: IncomingHttpHeaders;
}

/**
 * `req.headers[name]` for a lower-case `name` other than `set-cookie` and `cookie` (which Node
 * merges in ways of their own).
 */
export function headerOf(req: HeaderSource, name: string): string | undefined {
  const raw = req.rawHeaders;
  if (raw === undefined) {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  let found: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i] as string;
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    const value = raw[i + 1] as string;
    if (found === undefined) {
      found = value;
      if (FIRST_ONLY.has(name)) return found;
    } else {
      found = `${found}, ${value}`;
    }
  }
  return found;
}
