/**
 * A typed client of the operator's REST API, for the sidecar, tools and tests. Errors come back
 * as `ClientError` carrying the catalog's stable `code`, so callers branch on codes (a
 * heartbeat's INSTANCE_NOT_FOUND means "register again") rather than on messages.
 */
import type { ErrorCode } from './errors.js';
import { instanceSchema } from './wire.js';
import type {
  DiscoveredInstance,
  DiscoverQuery,
  HeartbeatRequest,
  Instance,
  RegisterInput,
  ServiceSummary,
} from './wire.js';

/**
 * What a client error says: a catalog code the server answered, or one of the client's own:
 * `NETWORK` (no answer), `BAD_RESPONSE` (an answer that is not what the API promises),
 * `BUFFER_FULL` (a bounded client-side buffer or cache refused more), `CLOSED` (the client or
 * stream was closed).
 */
export type ClientErrorCode = ErrorCode | 'NETWORK' | 'BAD_RESPONSE' | 'BUFFER_FULL' | 'CLOSED';

export class ClientError extends Error {
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  retryAfterMs: number | undefined;

  constructor(
    readonly status: number,
    readonly code: ClientErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** A bearer token: fixed, or read on each request (e.g. a projected token file that rotates). */
export type TokenSource =
  string | (() => string | undefined | Promise<string | undefined>) | undefined;

/** The `Authorization` header of `token`, if any. */
export async function authorizationOf(token: TokenSource): Promise<string | undefined> {
  const value = typeof token === 'function' ? await token() : token;
  return value === undefined ? undefined : `Bearer ${value}`;
}

/** `Retry-After` (seconds, or an HTTP date) in milliseconds; undefined when absent or unreadable. */
export function retryAfterMsOf(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The ClientError of a non-2xx answer: the catalog body's code, message and details. */
export function errorOfAnswer(
  status: number,
  body: unknown,
  retryAfter: string | null,
): ClientError {
  const error = (
    body as { error?: { code?: ErrorCode; message?: string; details?: unknown } } | undefined
  )?.error;
  const answer = new ClientError(
    status,
    error?.code ?? 'BAD_RESPONSE',
    error?.message ?? `HTTP ${status}`,
    error?.details,
  );
  answer.retryAfterMs = retryAfterMsOf(retryAfter);
  return answer;
}

export interface ClientOptions {
  /** e.g. `http://127.0.0.1:7710` */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when set; a function is asked before each request. */
  token?: TokenSource;
  /** Per request, the token source's answer included (default 5000). */
  timeoutMs?: number;
  /** The largest answer body read; a longer one is refused with BUFFER_FULL (default 32 MiB). */
  maxAnswerBytes?: number;
}

/** The default bound on an answer body: far above the largest answer an operator sends. */
export const DEFAULT_MAX_ANSWER_BYTES = 32 * 1024 * 1024;

type Query = Record<string, string | boolean | undefined>;

export class RegistryClient {
  private readonly base: string;

  constructor(private readonly opts: ClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
  }

  /** Registers (or renews) an instance; `created` is false for a renewal. */
  async register(input: RegisterInput): Promise<{ instance: Instance; created: boolean }> {
    const { status, body } = await this.call('POST', '/api/v1/instances', input);
    return { instance: parseInstance(body), created: status === 201 };
  }

  async heartbeat(id: string, report: HeartbeatRequest = {}): Promise<Instance> {
    const { body } = await this.call(
      'PUT',
      `/api/v1/instances/${encodeURIComponent(id)}/heartbeat`,
      report,
    );
    return parseInstance(body);
  }

  async deregister(id: string): Promise<void> {
    await this.call('DELETE', `/api/v1/instances/${encodeURIComponent(id)}`);
  }

  async discover(
    namespace: string,
    name: string,
    query: Omit<DiscoverQuery, 'all'> = {},
  ): Promise<DiscoveredInstance> {
    const { body } = await this.call('GET', discoverPath(namespace, name, query));
    const instance = (body as { instance?: unknown } | undefined)?.instance;
    if (typeof instance !== 'object' || instance === null)
      throw new ClientError(200, 'BAD_RESPONSE', 'a discovery answer without an instance');
    return instance as DiscoveredInstance;
  }

  async discoverAll(
    namespace: string,
    name: string,
    query: Omit<DiscoverQuery, 'all'> = {},
  ): Promise<DiscoveredInstance[]> {
    const { body } = await this.call('GET', discoverPath(namespace, name, { ...query, all: true }));
    const instances = (body as { instances?: unknown } | undefined)?.instances;
    if (!Array.isArray(instances))
      throw new ClientError(200, 'BAD_RESPONSE', 'a discovery answer without instances');
    return instances as DiscoveredInstance[];
  }

  async services(namespace?: string): Promise<ServiceSummary[]> {
    const { body } = await this.call('GET', `/api/v1/services${queryString({ namespace })}`);
    return (body as { services: ServiceSummary[] }).services;
  }

  private async headers(hasBody: boolean, signal: AbortSignal): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (hasBody) headers['content-type'] = 'application/json';
    const authorization = await untilAborted(authorizationOf(this.opts.token), signal);
    if (authorization !== undefined) headers.authorization = authorization;
    return headers;
  }

  private async call(
    method: string,
    path: string,
    payload?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    const timeoutMs = this.opts.timeoutMs ?? 5000;
    const signal = AbortSignal.timeout(timeoutMs);
    // Outside the try: a token source that fails says so itself, not as a network error; one
    // that does not answer within the timeout is refused like a server that does not.
    const headers = await this.headers(payload !== undefined, signal).catch((err: unknown) => {
      if (err instanceof TokenTimeout)
        throw new ClientError(
          0,
          'NETWORK',
          `${method} ${path}: the token source did not answer within ${timeoutMs} ms`,
        );
      throw err;
    });
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        signal,
      });
    } catch (err) {
      throw new ClientError(0, 'NETWORK', `${method} ${path}: ${(err as Error).message}`);
    }
    const text = await readBounded(
      res,
      this.opts.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES,
      `${method} ${path}`,
    );
    const body = parseBody(text, res.status, `${method} ${path}`);
    if (!res.ok) throw errorOfAnswer(res.status, body, res.headers.get('retry-after'));
    return { status: res.status, body };
  }
}

/** The token source did not answer before the request's timeout. */
class TokenTimeout extends Error {}

/** `promise`, or a rejection with TokenTimeout once `signal` fires first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new TokenTimeout());
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(new TokenTimeout());
    signal.addEventListener('abort', abort, { once: true });
    promise.finally(() => signal.removeEventListener('abort', abort)).then(resolve, reject);
  });
}

/** The answer's body as text, refused with BUFFER_FULL past `max` bytes. */
async function readBounded(res: Response, max: number, what: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLong(res.status, what, max);
  }
  if (res.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > max) {
        await reader.cancel().catch(() => undefined);
        throw tooLong(res.status, what, max);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof ClientError) throw err;
    // The answer began and broke off (connection reset, the timeout mid-body).
    throw new ClientError(0, 'NETWORK', `${what}: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLong(status: number, what: string, max: number): ClientError {
  return new ClientError(status, 'BUFFER_FULL', `${what}: the answer is longer than ${max} bytes`);
}

function parseBody(text: string, status: number, what: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new ClientError(status, 'BAD_RESPONSE', `${what}: the answer is not JSON`);
  }
}

function parseInstance(body: unknown): Instance {
  const parsed = instanceSchema.safeParse((body as { instance?: unknown } | undefined)?.instance);
  if (!parsed.success)
    throw new ClientError(
      200,
      'BAD_RESPONSE',
      `unexpected instance shape: ${parsed.error.message}`,
    );
  return parsed.data;
}

function discoverPath(namespace: string, name: string, query: Query): string {
  return `/api/v1/discover/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}${queryString(query)}`;
}

function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s === '' ? '' : `?${s}`;
}
