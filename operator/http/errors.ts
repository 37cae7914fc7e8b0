/** Turns anything thrown at the HTTP edge into the catalog's JSON error. */
import type { ServerResponse } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import type { ErrorCode } from '../../common/errors.js';

/** Errors raised by body-parser / http-errors carry a `type` and a 4xx `status`. */
interface HttpLibError {
  status?: number;
  statusCode?: number;
  type?: string;
  expose?: boolean;
  message?: string;
}

const BY_TYPE: Record<string, ErrorCode> = {
  'entity.too.large': 'BODY_TOO_LARGE',
  'entity.parse.failed': 'MALFORMED_JSON',
  'entity.verify.failed': 'MALFORMED_JSON',
  'encoding.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
  'charset.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
  'request.aborted': 'VALIDATION_FAILED',
  'request.size.invalid': 'VALIDATION_FAILED',
  'stream.encoding.set': 'VALIDATION_FAILED',
};

export function toMaxineError(err: unknown): MaxineError {
  if (err instanceof MaxineError) return err;
  if (err instanceof URIError)
    return new MaxineError('VALIDATION_FAILED', 'The path is not valid percent-encoding');
  const e = (typeof err === 'object' && err !== null ? err : {}) as HttpLibError;
  const code = e.type !== undefined ? BY_TYPE[e.type] : undefined;
  if (code !== undefined) return new MaxineError(code);
  const status = e.status ?? e.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return new MaxineError(
      status === 413 ? 'BODY_TOO_LARGE' : 'VALIDATION_FAILED',
      e.expose === true ? e.message : undefined,
    );
  }
  return new MaxineError('INTERNAL');
}

export function sendError(
  res: ServerResponse,
  err: MaxineError,
  extraHeaders?: Record<string, string>,
): void {
  const body = JSON.stringify(err.toBody());
  res.writeHead(err.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...errorHeaders(err),
    ...extraHeaders,
  });
  res.end(body);
}

/**
 * The headers an error answer carries besides its body, on every path (express, the fast
 * paths, a refused WebSocket handshake): `WWW-Authenticate` with a 401, `Retry-After` with
 * a 429.
 */
export function errorHeaders(err: MaxineError): Record<string, string> {
  const d = err.details as { retryAfterSeconds?: unknown } | undefined;
  return {
    ...(err.status === 401 && { 'www-authenticate': 'Bearer realm="maxine"' }),
    ...((err.code === 'RATE_LIMITED' || err.code === 'NO_LEADER') &&
      typeof d?.retryAfterSeconds === 'number' && { 'retry-after': String(d.retryAfterSeconds) }),
  };
}
