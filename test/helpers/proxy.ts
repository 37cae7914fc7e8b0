/**
 * Fixtures of the outbound proxy's integration tests: real upstream node:http servers, a route
 * table standing in for the sidecar's local copy, and the sidecar's servers (path form and
 * forward listener) around one engine, all on port 0.
 */
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import type { ServiceSpec } from '../../common/resources.js';
import type { DiscoveredInstance } from '../../common/wire.js';
import type { ProxyRoute } from '../../sidecar/mirror-state.js';
import { proxyHooks } from '../../sidecar/proxy/defaults.js';
import { ProxyEngine } from '../../sidecar/proxy/engine.js';
import type { ProxyEngineOptions } from '../../sidecar/proxy/engine.js';
import { createForwardProxyServer } from '../../sidecar/proxy/forward-listener.js';
import type { ProxyHooks } from '../../sidecar/proxy/hooks.js';
import { AppConfigState } from '../../sidecar/app-config/state.js';
import { createSidecarServer, isLoopback } from '../../sidecar/server.js';

export interface Upstream {
  readonly server: Server;
  readonly port: number;
  /** Requests seen, in order. */
  readonly seen: { method: string; url: string; headers: IncomingHttpHeaders; raw: string[] }[];
  /** TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

export async function startUpstream(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Upstream> {
  const server = createServer((req, res) => {
    up.seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      raw: req.rawHeaders,
    });
    handler(req, res);
  });
  const up: Upstream = {
    server,
    port: 0,
    seen: [],
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => up.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (up as { port: number }).port = (server.address() as AddressInfo).port;
  return up;
}

export function instance(id: string, port: number, extra: Partial<DiscoveredInstance> = {}) {
  return {
    id,
    service: 'orders',
    host: '127.0.0.1',
    port,
    weight: 1,
    metadata: {},
    health: 'passing',
    ...extra,
  } as DiscoveredInstance;
}

/** A mutable route table standing in for the local copy. */
export class Routes {
  private readonly table = new Map<string, ProxyRoute>();
  set(
    namespace: string,
    name: string,
    instances: DiscoveredInstance[],
    spec?: Partial<ServiceSpec>,
  ): void {
    this.table.set(`${namespace}/${name}`, {
      namespace,
      name,
      spec: spec,
      instances,
    });
  }
  delete(namespace: string, name: string): void {
    this.table.delete(`${namespace}/${name}`);
  }
  route(namespace: string, name: string): ProxyRoute | undefined {
    return this.table.get(`${namespace}/${name}`);
  }
}

export interface ProxyRig {
  readonly engine: ProxyEngine;
  /** The sidecar's localhost server (path form). */
  readonly port: number;
  /** The forward-proxy listener. */
  readonly forwardPort: number;
  readonly logs: string[];
  close(): Promise<void>;
}

export async function startProxy(
  routes: Routes,
  hooks: Partial<ProxyHooks> = {},
  options: Partial<ProxyEngineOptions> = {},
): Promise<ProxyRig> {
  const logs: string[] = [];
  const sink = new Writable({
    write: (chunk: Buffer, _e, done) => {
      logs.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('info', sink, 'sidecar');
  const engine = new ProxyEngine({ routes, hooks: proxyHooks(hooks), logger, ...options });
  const server = createSidecarServer({
    proxy: engine,
    source: {
      discoverParsed: () => Buffer.from('{}'),
    },
    namespace: 'shop',
    config: new AppConfigState({ namespace: 'shop', name: 'web' }, 1),
    health: () => ({ ok: true }),
    mesh: () => undefined,
    logger,
  });
  const forward = createForwardProxyServer({
    engine,
    namespace: 'shop',
    logger,
    allowPeer: isLoopback,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => forward.listen(0, '127.0.0.1', resolve));
  return {
    engine,
    port: (server.address() as AddressInfo).port,
    forwardPort: (forward.address() as AddressInfo).port,
    logs,
    close: async () => {
      engine.close();
      await Promise.all(
        [server, forward].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections();
              s.close(() => resolve());
            }),
        ),
      );
    },
  };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  raw: string[];
  body: string;
}

/** One request on a fresh connection; the body is read whole. */
export function call(
  port: number,
  path: string,
  init: {
    method?: string;
    headers?: Record<string, string> | string[];
    body?: string | Buffer;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: init.method ?? 'GET',
        headers: init.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            raw: res.rawHeaders,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Writes raw bytes on a new connection and returns everything read until it closes. */
export function rawExchange(port: number, bytes: string | Buffer, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

export const json = (a: Answer): any => JSON.parse(a.body);

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
