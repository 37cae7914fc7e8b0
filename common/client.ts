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

export class ClientError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'NETWORK' | 'BAD_RESPONSE',
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface ClientOptions {
  /** e.g. `http://127.0.0.1:7710` */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when set. */
  token?: string | (() => string | undefined);
  timeoutMs?: number;
}

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
    return (body as { instance: DiscoveredInstance }).instance;
  }

  async discoverAll(
    namespace: string,
    name: string,
    query: Omit<DiscoverQuery, 'all'> = {},
  ): Promise<DiscoveredInstance[]> {
    const { body } = await this.call('GET', discoverPath(namespace, name, { ...query, all: true }));
    return (body as { instances: DiscoveredInstance[] }).instances;
  }

  async services(namespace?: string): Promise<ServiceSummary[]> {
    const { body } = await this.call('GET', `/api/v1/services${queryString({ namespace })}`);
    return (body as { services: ServiceSummary[] }).services;
  }

  private headers(hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (hasBody) headers['content-type'] = 'application/json';
    const token = typeof this.opts.token === 'function' ? this.opts.token() : this.opts.token;
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  private async call(
    method: string,
    path: string,
    payload?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: this.headers(payload !== undefined),
        body: payload === undefined ? undefined : JSON.stringify(payload),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
      });
    } catch (err) {
      throw new ClientError(0, 'NETWORK', `${method} ${path}: ${(err as Error).message}`);
    }
    const body = parseBody(await res.text(), res.status, `${method} ${path}`);
    if (!res.ok) {
      const error = (
        body as { error?: { code?: ErrorCode; message?: string; details?: unknown } } | undefined
      )?.error;
      throw new ClientError(
        res.status,
        error?.code ?? 'BAD_RESPONSE',
        error?.message ?? `HTTP ${res.status}`,
        error?.details,
      );
    }
    return { status: res.status, body };
  }
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
