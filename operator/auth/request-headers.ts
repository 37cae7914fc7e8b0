/**
 * The two headers access control reads on every request — `Authorization` and
 * `x-maxine-source` — taken from the parser's `rawHeaders` array. Reading `req.headers` makes
 * Node build the whole lower-cased headers object (one `_addHeaderLine` per header, the
 * largest share of what the two extra headers of a secured discovery cost the operator beyond
 * an anonymous one: issue 17's profile); the discovery hot path reads nothing else. The
 * answers are those `req.headers` would give: a repeated `Authorization` keeps the first, a
 * repeated other header is joined with `, `.
 */
import type { IncomingMessage } from 'node:http';

/** `req`'s header `name` (lower case), as `req.headers[name]` would give it (not set-cookie). */
export function requestHeader(
  req: Pick<IncomingMessage, 'headers'> & { rawHeaders?: string[] },
  name: string,
): string | undefined {
  const raw = req.rawHeaders;
  // Objects made by hand (tests) have only `headers`.
  if (raw === undefined) {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  const firstWins = name === 'authorization';
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i] as string;
    if (field.length !== name.length || (field !== name && field.toLowerCase() !== name)) continue;
    const value = raw[i + 1] as string;
    if (firstWins) return value;
    found = found === undefined ? value : `${found}, ${value}`;
  }
  return found;
}
