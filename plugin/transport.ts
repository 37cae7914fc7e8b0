/**
 * How the plugin reaches the operator: through the API server's service proxy
 * (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/...`) with the kubeconfig's credentials, or
 * straight at `--server URL` with a bearer token. Every failure becomes a PluginError whose
 * exit code says whose fault it is (decision 0030).
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KUBE_USER_HEADER } from '../common/wire.js';
import { EXIT, PluginError } from './exit-codes.js';
import { describeFailure } from './failures.js';

export interface Answer {
  status: number;
  contentType: string;
  body: string;
}

export interface OperatorTransport {
  /** Where requests go, for messages. */
  readonly description: string;
  /** GET `path` (with its query), the whole answer. Connection failures throw PluginError. */
  get(path: string, accept?: string): Promise<Answer>;
  /** GET `path` and hand each chunk of the body to `onData` until the stream ends. */
  stream(path: string, accept: string, onData: (chunk: string) => void): Promise<Answer>;
}

export interface ProxyTarget {
  namespace: string;
  service: string;
  port: string;
}

/** The API server's service-proxy path of the operator's Service. */
export function proxyBase(t: ProxyTarget): string {
  return `/api/v1/namespaces/${t.namespace}/services/${t.service}:${t.port}/proxy`;
}

type Prepare = (options: RequestOptions) => Promise<void>;

function send(url: URL, prepare: Prepare, accept: string, onData?: (c: string) => void) {
  return new Promise<Answer>((resolve, reject) => {
    const options: RequestOptions = {
      method: 'GET',
      headers: { accept },
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      path: url.pathname + url.search,
    };
    prepare(options).then(
      () => {
        const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
        const req = send(options, (res: IncomingMessage) => {
          const streaming = onData !== undefined && res.statusCode === 200;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            if (streaming) onData(c.toString('utf8'));
            else chunks.push(c);
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: String(res.headers['content-type'] ?? ''),
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        });
        req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(url, err)));
        req.end();
      },
      (err: unknown) =>
        reject(new PluginError(EXIT.failed, `kubeconfig: ${(err as Error).message}`)),
    );
  });
}

function unreachable(url: URL, err: NodeJS.ErrnoException): PluginError {
  return new PluginError(
    EXIT.operatorMissing,
    `cannot reach ${url.origin}: ${err.code ?? err.message}`,
  );
}

/**
 * The header the operator reads the kubectl user's token from (operator/auth/kube-user.ts): the
 * API server authenticates the request with `Authorization` and then removes it, so the token
 * travels a second time in this header to reach the operator, which reviews it (TokenReview).
 */
export { KUBE_USER_HEADER };

/**
 * The kubeconfig's credentials on `options`, and the bearer token forwarded to the operator:
 * `token` when given, else the one the kubeconfig put in `Authorization` (a token, an exec or
 * auth-provider plugin's); none for a client certificate. Says whether one was forwarded.
 */
export async function withForwardedToken(
  kc: Pick<KubeConfig, 'applyToHTTPSOptions'>,
  options: RequestOptions,
  token: string | undefined,
): Promise<boolean> {
  await kc.applyToHTTPSOptions(options);
  const headers = (options.headers ?? {}) as Record<string, unknown>;
  const fromKubeconfig = headers.Authorization ?? headers.authorization;
  const forwarded =
    token !== undefined
      ? `Bearer ${token}`
      : typeof fromKubeconfig === 'string' && /^Bearer\s+\S/i.test(fromKubeconfig)
        ? fromKubeconfig
        : undefined;
  if (forwarded !== undefined) options.headers = { ...headers, [KUBE_USER_HEADER]: forwarded };
  return forwarded !== undefined;
}

/**
 * Through the API server's service proxy, as the kubeconfig's current user; the user's bearer
 * token (or `token`) is forwarded so that the operator knows who calls.
 */
export function proxyTransport(
  kc: KubeConfig,
  target: ProxyTarget,
  token?: string,
): OperatorTransport {
  const cluster = kc.getCurrentCluster();
  if (cluster === null)
    throw new PluginError(
      EXIT.failed,
      'the kubeconfig has no current cluster (kubectl config current-context)',
    );
  const base = cluster.server.replace(/\/$/, '') + proxyBase(target);
  let forwarded = false;
  const prepare: Prepare = async (options) => {
    forwarded = await withForwardedToken(kc, options, token);
  };
  const description = `service ${target.namespace}/${target.service}:${target.port} through the API server ${cluster.server}`;
  const check = (answer: Answer, path: string): Answer => {
    describeFailure(answer, { via: 'proxy', target, path, forwarded });
    return answer;
  };
  return {
    description,
    async get(path, accept = 'application/json') {
      return check(await send(new URL(base + path), prepare, accept), path);
    },
    async stream(path, accept, onData) {
      return check(await send(new URL(base + path), prepare, accept, onData), path);
    },
  };
}

/** Straight at the operator's URL (a port-forward, an ingress), with a bearer token if any. */
export function directTransport(server: string, token: string | undefined): OperatorTransport {
  const base = server.replace(/\/$/, '');
  const prepare: Prepare = (options) => {
    if (token !== undefined)
      options.headers = { ...options.headers, authorization: `Bearer ${token}` };
    return Promise.resolve();
  };
  const check = (answer: Answer, path: string): Answer => {
    describeFailure(answer, { via: 'direct', server: base, path });
    return answer;
  };
  return {
    description: base,
    async get(path, accept = 'application/json') {
      return check(await send(new URL(base + path), prepare, accept), path);
    },
    async stream(path, accept, onData) {
      return check(await send(new URL(base + path), prepare, accept, onData), path);
    },
  };
}
