/**
 * The operator's HTTP server, up to the point where a request is handed to the fast path,
 * the express app or the WebSocket server: what every request meets first.
 *
 * - A token bucket per client address (address-limit.ts), before authentication, so a flood
 *   of anonymous or badly-authenticated requests is refused with 429 for the price of a map
 *   lookup; its refusals are audited as `rate_limited` noise (folded, see audit.ts).
 * - Absolute-form request targets (`GET http://host/api/v1/...`, what a client talking to a
 *   proxy sends) are served like origin-form.
 * - An `Upgrade` other than `websocket` (`h2c`) is ignored: the request is answered as
 *   HTTP/1.1 and the connection closed, as RFC 9110 lets a server do.
 * - Headers must arrive within `headersTimeoutMs` and the whole request within that plus
 *   `bodyTimeoutMs`; a late request gets the catalog's 408 and is closed (body.ts bounds the
 *   body reads of the fast paths the same way).
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { http } from '../../common/node-http.js';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { MaxineError } from '../../common/errors.js';
import type { OperatorConfig } from '../config.js';
import type { AuditEntry } from '../telemetry/audit.js';
import { AddressLimiter, clientAddress } from './address-limit.js';
import { errorHeaders, sendError } from './errors.js';
import { requestId } from './caller.js';
import type { MessageClasses } from './request-shape.js';

export interface EdgeDeps {
  config: Pick<
    OperatorConfig,
    | 'addressRateLimit'
    | 'addressRateBurst'
    | 'addressRateMaxAddresses'
    | 'headersTimeoutMs'
    | 'bodyTimeoutMs'
    | 'bodyLimitBytes'
  >;
  prom: PromRegistry;
  /** Writes an audit record (when the audit log is on). */
  audit(entry: AuditEntry): void;
  /** Answers a plain HTTP request (fast path, then express). */
  request(req: IncomingMessage, res: ServerResponse): void;
  /** Takes over a WebSocket handshake. */
  websocket(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** The constructors of requests and responses (request-shape.ts); Node's own by default. */
  messages?: MessageClasses;
  now?: () => number;
}

/** `http://host:port/path?q` → `/path?q`; origin-form targets are returned as they are. */
export function originForm(target: string): string {
  if (target.startsWith('/')) return target;
  const scheme = /^https?:\/\//i.exec(target);
  if (scheme === null) return target;
  const rest = target.slice(scheme[0].length);
  const path = rest.search(/[/?]/);
  if (path === -1) return '/';
  return rest[path] === '/' ? rest.slice(path) : `/${rest.slice(path)}`;
}

function timeoutAnswer(): string {
  const err = new MaxineError(
    'REQUEST_TIMEOUT',
    'The request headers or body did not arrive in time; the connection is closed',
  );
  const body = JSON.stringify(err.toBody());
  return `HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export function createEdgeServer(deps: EdgeDeps): Server {
  const { config } = deps;
  const now = deps.now ?? Date.now;
  const limiter =
    config.addressRateLimit > 0
      ? new AddressLimiter(
          {
            requestsPerSecond: config.addressRateLimit,
            burst: config.addressRateBurst ?? Math.max(1, Math.ceil(config.addressRateLimit * 2)),
          },
          config.addressRateMaxAddresses,
        )
      : undefined;
  const limited = new Counter({
    name: 'maxine_address_rate_limited_total',
    help: 'Requests refused with 429 by the per-address limit, before authentication',
    registers: [deps.prom],
  });
  new Gauge({
    name: 'maxine_address_rate_limit_addresses',
    help: 'Client addresses (IPv6: /64 prefixes) the per-address limit tracks',
    registers: [deps.prom],
    collect() {
      this.set(limiter?.size ?? 0);
    },
  });

  /** The refusal of a request over its address's budget, or undefined to go on. */
  const overLimit = (req: IncomingMessage): MaxineError | undefined => {
    if (limiter === undefined) return undefined;
    const address = clientAddress(req);
    const taken = limiter.take(address, now());
    if (taken.allowed) return undefined;
    limited.inc();
    const reason = `address ${address} exceeded ${config.addressRateLimit} requests/s`;
    deps.audit({
      who: 'unknown',
      action: `${req.method ?? ''} ${(req.url ?? '').split('?')[0]?.slice(0, 256) ?? ''}`,
      outcome: 'rate_limited',
      reason,
      reqId: requestId(req) ?? randomUUID(),
      address,
    });
    return new MaxineError('RATE_LIMITED', `Rate limit exceeded: ${reason}`, {
      scope: 'address',
      retryAfterSeconds: taken.retryAfterSeconds,
    });
  };

  const server = http.createServer(
    {
      ...deps.messages,
      keepAliveTimeout: 65_000,
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.headersTimeoutMs + config.bodyTimeoutMs,
      // How often node looks for requests past those timeouts (its default is 30 s).
      connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs),
    },
    (req, res) => {
      req.url = originForm(req.url ?? '/');
      const refusal = overLimit(req);
      if (refusal !== undefined) sendError(res, refusal);
      else deps.request(req, res);
    },
  );
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node takes its own error listener off an upgraded socket: a client's reset would
    // otherwise be an uncaught exception. The socket is destroyed by the error anyway.
    socket.on('error', ignore);
    req.url = originForm(req.url ?? '/');
    const refusal = overLimit(req);
    if (refusal !== undefined) {
      refuseRaw(socket, refusal);
      return;
    }
    if (req.headers.upgrade?.toLowerCase() === 'websocket') deps.websocket(req, socket, head);
    else answerAsHttp1(req, socket as Socket, head, deps);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) return;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.end(timeoutAnswer());
    else socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return server;
}

function ignore(): void {
  // see the upgrade handler
}

function refuseRaw(socket: Duplex, err: MaxineError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(err.toBody());
  const extra = Object.entries(errorHeaders(err))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${err.status} ${err.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}

/**
 * Serves a request whose upgrade (h2c) we do not speak as plain HTTP/1.1. Node's parser
 * stopped at the headers and ended `req` empty; a body (Content-Length only: chunked is
 * refused) is what it read past them plus what follows on the socket, gathered (bounded by
 * size and time) and put back in front of `req`. The connection closes after the answer.
 */
function answerAsHttp1(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  deps: Pick<EdgeDeps, 'request' | 'config' | 'messages'>,
): void {
  const res = new (deps.messages?.ServerResponse ?? http.ServerResponse)(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.end();
  });
  if (req.headers['transfer-encoding'] !== undefined) {
    sendError(
      res,
      new MaxineError(
        'VALIDATION_FAILED',
        'A request asking to upgrade to h2c cannot carry a chunked body: send it without Upgrade',
      ),
    );
    return;
  }
  const length = Number(req.headers['content-length'] ?? 0);
  // Past the body limit the handler refuses by the header alone: nothing to gather (a larger
  // bound here would let a client park that much memory per connection, for the body timeout).
  if (!(length > 0) || length > deps.config.bodyLimitBytes) {
    deps.request(req, res);
    return;
  }
  const chunks = [head];
  let size = head.length;
  const done = (): void => {
    clearTimeout(timer);
    socket.off('data', more);
    req.unshift(Buffer.concat(chunks, size).subarray(0, length));
    deps.request(req, res);
  };
  const more = (chunk: Buffer): void => {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= length) done();
  };
  const timer = setTimeout(() => {
    socket.off('data', more);
    sendError(res, new MaxineError('REQUEST_TIMEOUT', 'The request body did not arrive in time'));
  }, deps.config.bodyTimeoutMs);
  timer.unref();
  if (size >= length) done();
  else socket.on('data', more);
}
