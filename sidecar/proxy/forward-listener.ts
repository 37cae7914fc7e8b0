/**
 * The forward-proxy listener (127.0.0.1:7712 by default): an unmodified app sets
 * `HTTP_PROXY=http://127.0.0.1:7712` and calls `http://orders.shop/...` or `http://orders/...`
 * (the pod's namespace). Requests go through the same engine as the path form; a host that is
 * not a service the local copy holds gets 502 `UNKNOWN_PROXY_HOST` and never leaves the pod,
 * and CONNECT (HTTPS tunnels) is refused with 405: the sidecar forwards plain HTTP only.
 */
import { http } from '../../common/node-http.js';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { MaxineError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { answerClientError, rawAnswer } from './client-error.js';
import { answerError } from './engine.js';
import type { ProxyEngine } from './engine.js';
import { parseForwardTarget, printable } from './target.js';

export interface ForwardListenerDeps {
  engine: ProxyEngine;
  /** The pod's namespace: `http://orders/` calls `orders` there. */
  namespace: string;
  logger: Logger;
  /** Whether a peer may use the proxy (the pod's own containers). */
  allowPeer: (address: string | undefined) => boolean;
}

export function createForwardProxyServer(deps: ForwardListenerDeps): Server {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    try {
      if (!deps.allowPeer(req.socket.remoteAddress)) {
        throw new MaxineError('FORBIDDEN', "Only the pod's own containers may use its sidecar");
      }
      const target = parseForwardTarget(req.url ?? '/', req.headers.host, deps.namespace);
      deps.engine.handle(req, res, target, 'forward');
    } catch (err) {
      const error =
        err instanceof MaxineError
          ? err
          : new MaxineError('INTERNAL', 'The sidecar failed to forward the call');
      if (!(err instanceof MaxineError)) deps.logger.error({ err }, 'forward proxy failed');
      answerError(res, error);
    }
  });
  server.on('clientError', answerClientError);
  server.on('connect', (req, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    const error = new MaxineError(
      'CONNECT_NOT_SUPPORTED',
      `The Maxine forward proxy does not open tunnels (CONNECT ${printable(req.url ?? '')}); call services over plain http://{service}[.{namespace}]/`,
    );
    socket.end(rawAnswer(error, 'allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n'));
  });
  return server;
}
