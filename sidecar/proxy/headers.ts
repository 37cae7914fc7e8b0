/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy removes them
 * — the fixed list and every name the `Connection` header lists — before forwarding a request
 * or a response. Works on node's raw header list, so names keep their case and repeated
 * headers stay repeated.
 */
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The names a `Connection` header value lists (lower-case), besides the fixed ones. */
function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // The usual `keep-alive` or `close` names only a header removed anyway: no set to build.
  if (typeof value === 'string' && !value.includes(',')) {
    const name = value.trim().toLowerCase();
    if (name === '' || HOP_BY_HOP.has(name)) return undefined;
  }
  const listed = new Set<string>();
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') listed.add(name);
    }
  }
  return listed;
}

/**
 * End-to-end headers of a message as `[name, value, name, value, ...]`, the form
 * `writeHead`/`request` accept without re-joining repeated headers.
 */
export function endToEndRaw(
  raw: readonly string[],
  connection: string | string[] | undefined,
): string[] {
  const listed = connectionListed(connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower) === true) continue;
    out.push(name, raw[i + 1] as string);
  }
  return out;
}

/** The same filter over node's parsed headers (for hooks that read `req.headers`). */
export function endToEndHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const listed = connectionListed(headers.connection);
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed?.has(name) === true) continue;
    out[name] = headers[name];
  }
  return out;
}

/**
 * The headers of a request sent upstream, in one pass: the end-to-end ones, without `Expect`
 * (this server answered `100-continue` already) and without the names `set` replaces, then
 * `set` (the proxy's `Host`, the try's `traceparent`).
 */
export function upstreamRequestHeaders(
  raw: readonly string[],
  connection: string | string[] | undefined,
  set: Readonly<Record<string, string>>,
): string[] {
  const listed = connectionListed(connection);
  const names = Object.keys(set);
  // One to three names (host, traceparent, tracestate): a list beats a set per call.
  const replaced = names.map((n) => n.toLowerCase());
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'expect' || replaced.includes(lower)) continue;
    if (listed?.has(lower) === true) continue;
    out.push(name, raw[i + 1] as string);
  }
  for (const name of names) out.push(name, set[name] as string);
  return out;
}
