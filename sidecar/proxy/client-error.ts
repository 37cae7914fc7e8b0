/**
 * Answers for requests node's HTTP parser refuses before any handler runs (`clientError`):
 * headers over `maxHeaderSize` → 431, ambiguous framing (Transfer-Encoding with Content-Length,
 * repeated Content-Length, unknown transfer codings: the request-smuggling shapes) → 400
 * `AMBIGUOUS_MESSAGE_LENGTH`, anything else unparsable → 400 `MALFORMED_REQUEST`. Always a
 * well-formed HTTP/1.1 answer with the catalog's JSON body, and the connection closed: after a
 * parse error the rest of the bytes cannot be trusted.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { MaxineError } from '../../common/errors.js';

const FRAMING = new Set([
  'HPE_INVALID_CONTENT_LENGTH',
  'HPE_UNEXPECTED_CONTENT_LENGTH',
  'HPE_INVALID_TRANSFER_ENCODING',
  'HPE_INVALID_CHUNK_SIZE',
]);

export function clientErrorAnswer(err: NodeJS.ErrnoException): MaxineError {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return new MaxineError(
      'HEADERS_TOO_LARGE',
      'The request line and headers are larger than the sidecar accepts (node maxHeaderSize, 16 KiB by default)',
    );
  }
  if (err.code !== undefined && FRAMING.has(err.code)) {
    return new MaxineError(
      'AMBIGUOUS_MESSAGE_LENGTH',
      `The request's length is ambiguous or malformed (${err.message.slice(0, 120)}); it was not forwarded`,
    );
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new MaxineError('REQUEST_TIMEOUT', 'The request did not arrive in time');
  }
  return new MaxineError(
    'MALFORMED_REQUEST',
    `The request is not valid HTTP/1.1 (${(err.code ?? err.message).slice(0, 120)})`,
  );
}

/** Writes the answer for a parser error and closes the connection. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const answer = rawAnswer(clientErrorAnswer(err));
  // A pipelined request that does not parse, behind one still being answered: its answer must
  // not cut into the one in progress, so it follows it (node's own handler writes at once).
  const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending && !pending.writableFinished) {
    pending.once('close', () => {
      if (pending.writableFinished && socket.writable) socket.end(answer);
      else socket.destroy();
    });
    return;
  }
  socket.end(answer);
}

/** A complete HTTP/1.1 answer carrying a catalog error, for sockets without a response. */
export function rawAnswer(error: MaxineError, extra = ''): string {
  const body = JSON.stringify(error.toBody());
  return (
    `HTTP/1.1 ${error.status} ${REASONS[error.status] ?? 'Error'}\r\n` +
    'content-type: application/json\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    extra +
    'connection: close\r\n\r\n' +
    body
  );
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};
