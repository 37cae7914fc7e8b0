/** Reading a JSON request body on the fast paths: bounded, typed, and refused early when wrong. */
import type { IncomingMessage } from 'node:http';
import { MaxineError } from '../../common/errors.js';

const JSON_TYPE_RE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const CHARSET_RE = /;\s*charset\s*=\s*"?([^";\s]+)/i;

export function hasBody(req: IncomingMessage): boolean {
  return (
    req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0
  );
}

/**
 * Resolves with the parsed body (`undefined` when there is none), or rejects with a catalog
 * error: 413 past `limit` bytes, 408 when it has not all arrived within `timeoutMs` (a slow
 * sender would otherwise hold the request and its buffers for as long as it likes).
 */
export function readJsonBody(
  req: IncomingMessage,
  limit: number,
  timeoutMs = 10_000,
): Promise<unknown> {
  if (!hasBody(req)) return Promise.resolve(undefined);
  const refused = headRefusal(req, limit);
  if (refused !== undefined) return Promise.reject(refused);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // A body the parser already read whole (a small one arrives with its headers) cannot be
    // slow: no timer then (one Timeout less per heartbeat, issue 17).
    const timer = req.complete
      ? undefined
      : setTimeout(() => {
          req.removeAllListeners('data');
          req.pause();
          reject(
            new MaxineError(
              'REQUEST_TIMEOUT',
              `The request body did not arrive within ${timeoutMs} ms; the connection is closed`,
            ),
          );
        }, timeoutMs);
    timer?.unref();
    req.on('close', () => clearTimeout(timer));
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        clearTimeout(timer);
        req.removeAllListeners('data');
        reject(new MaxineError('BODY_TOO_LARGE'));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      clearTimeout(timer);
      if (size > limit) return;
      const text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size))?.toString(
        'utf8',
      );
      try {
        resolve(parseJsonText(text));
      } catch (err) {
        reject(err instanceof Error ? err : new MaxineError('MALFORMED_JSON'));
      }
    });
    req.on('error', () => reject(new MaxineError('VALIDATION_FAILED', 'The request was aborted')));
  });
}

/**
 * readJsonBody for a request whose body the parser already has whole (`req.complete`): the
 * same answers and refusals, read at once from the stream's buffer, without listeners, a timer
 * or a promise (the heartbeat's path, decision 39). Throws the catalog error.
 */
export function readCompleteJsonBody(req: IncomingMessage, limit: number): unknown {
  if (!hasBody(req)) return undefined;
  const refused = headRefusal(req, limit);
  if (refused !== undefined) throw refused;
  const data: unknown = req.read();
  if (!Buffer.isBuffer(data)) return undefined;
  if (data.length > limit) throw new MaxineError('BODY_TOO_LARGE');
  return parseJsonText(data.toString('utf8'));
}

/** What the head alone refuses: 415 for a type other than JSON in UTF-8, 413 for a declared length past `limit`. */
function headRefusal(req: IncomingMessage, limit: number): MaxineError | undefined {
  const type = req.headers['content-type'] ?? '';
  const charset = CHARSET_RE.exec(type)?.[1]?.toLowerCase();
  if (
    !JSON_TYPE_RE.test(type) ||
    (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
  )
    return new MaxineError('UNSUPPORTED_MEDIA_TYPE');
  if (Number(req.headers['content-length'] ?? 0) > limit) return new MaxineError('BODY_TOO_LARGE');
  return undefined;
}

/** The body's text as JSON: `undefined` when blank, else parsed, or MALFORMED_JSON. */
function parseJsonText(text: string | undefined): unknown {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new MaxineError('MALFORMED_JSON');
  }
}
