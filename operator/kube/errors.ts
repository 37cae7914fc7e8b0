/**
 * Kubernetes errors as a person reads them (pure). client-node's ApiException carries the
 * response headers and the whole body in its message ("HTTP-Code: 404 Message: ... Body: ...
 * Headers: ..."), and a log line holding it is a dump. What matters is the API server's Status:
 * its HTTP code, its machine-readable reason (NotFound, Forbidden, Conflict, ...) and its
 * one-sentence message. Every log line and Event about a Kubernetes call uses these.
 */

export interface KubeErrorFields {
  /** HTTP status of the API server's answer; absent when there was no answer (network). */
  status?: number;
  /** The Status reason (`NotFound`, `Forbidden`, ...), or the network error code (`ECONNREFUSED`). */
  reason?: string;
  message: string;
}

/** Longest message kept: a Status message is one sentence; anything longer is a dump. */
export const MAX_MESSAGE_CHARS = 512;

/** The reason the API server gives for a status code when the body does not say it. */
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

interface StatusBody {
  reason?: unknown;
  message?: unknown;
}

export function kubeErrorFields(err: unknown): KubeErrorFields {
  if (typeof err !== 'object' || err === null) return { message: clip(firstLine(String(err))) };
  const e = err as {
    code?: unknown;
    statusCode?: unknown;
    body?: unknown;
    message?: unknown;
    cause?: unknown;
  };
  const status = httpStatusOf(e.code) ?? httpStatusOf(e.statusCode);
  const body = statusBodyOf(e.body);
  const raw = typeof e.message === 'string' ? e.message : 'unknown error';
  const reason =
    stringOf(body?.reason) ?? (status === undefined ? networkCodeOf(e) : REASONS[status]);
  const message =
    stringOf(body?.message) ??
    (typeof e.body === 'string' && e.body !== '' && body === undefined
      ? e.body
      : apiExceptionMessage(raw));
  return {
    ...(status !== undefined && { status }),
    ...(reason !== undefined && { reason }),
    message: clip(firstLine(message)),
  };
}

/** One line for an Event or a status condition: `404 NotFound: namespaces "x" not found`. */
export function describeKubeError(err: unknown): string {
  const { status, reason, message } = kubeErrorFields(err);
  const head = [status, reason].filter((p) => p !== undefined).join(' ');
  return head === '' ? message : `${head}: ${message}`;
}

/**
 * What a failed Kubernetes call means for the caller, as Kopf separates temporary and permanent
 * errors: `not-found` (the object or its namespace is gone: an idempotent clean-up or a create),
 * `conflict` (409: someone wrote meanwhile; read again and retry at once), `transient` (429,
 * 5xx, 408, 410, network errors, timeouts, aborts: the same call may succeed later, so back off and
 * retry) and `permanent` (400, 403, 422 and the other 4xx: the same call fails the same way
 * until a person changes something, so report it and stop retrying). An error without an
 * HTTP status (a network error, or a bug, a thrown string) counts as transient: retrying
 * with back-off is what the work queue always did with it.
 */
export type KubeErrorClass = 'not-found' | 'conflict' | 'transient' | 'permanent';

export function classifyKubeError(err: unknown): KubeErrorClass {
  const { status } = kubeErrorFields(err);
  // No answer at all (ECONNREFUSED, ETIMEDOUT, an AbortError, a socket reset): try again later.
  return status === undefined ? 'transient' : classOfStatus(status);
}

function classOfStatus(status: number): KubeErrorClass {
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  // 410 Expired: a watch's resourceVersion is too old; a fresh list answers it.
  if (status === 408 || status === 410 || status === 429 || status >= 500) return 'transient';
  if (status >= 400) return 'permanent';
  // 1xx-3xx as an error: the client could not use the answer; asking again may work.
  return 'transient';
}

export function isKubeNotFound(err: unknown): boolean {
  return classifyKubeError(err) === 'not-found';
}

export function isKubeConflict(err: unknown): boolean {
  return classifyKubeError(err) === 'conflict';
}

export function isKubePermanent(err: unknown): boolean {
  return classifyKubeError(err) === 'permanent';
}

function httpStatusOf(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599 ? v : undefined;
}

function statusBodyOf(body: unknown): StatusBody | undefined {
  if (typeof body === 'string') {
    try {
      const parsed: unknown = JSON.parse(body);
      return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
  return typeof body === 'object' && body !== null ? body : undefined;
}

/** `ECONNREFUSED` and the like, on the error or its cause (fetch wraps socket errors). */
function networkCodeOf(e: { code?: unknown; cause?: unknown }): string | undefined {
  if (typeof e.code === 'string' && e.code !== '') return e.code;
  const cause = e.cause as { code?: unknown } | undefined;
  return typeof cause?.code === 'string' && cause.code !== '' ? cause.code : undefined;
}

/** "HTTP-Code: 401\nMessage: Unauthorized\nBody: ...\nHeaders: ..." → "Unauthorized". */
function apiExceptionMessage(raw: string): string {
  const match = /^HTTP-Code: \d+\nMessage: ([^\n]*)/.exec(raw);
  return match?.[1] ?? raw;
}

function stringOf(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 3)}...` : text;
}
