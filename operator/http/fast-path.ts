/**
 * The requests that dominate a registry's traffic — discovery and heartbeats — are answered
 * here, before express: no middleware, no per-request log line, one pre-labelled histogram
 * observation, raw header arrays. Everything else falls through to the express app.
 * Measured in bench/RESULTS.md against a bare node:http server in the same run.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { discoverAnswer, isDiscover } from './discover.js';
import { errorHeaders, toMaxineError } from './errors.js';
import {
  heartbeatAnswer,
  isRegister,
  matchHeartbeat,
  registerAnswer,
  respondJson,
} from './instances.js';
import { requestId } from './caller.js';
import type { WriteDeps } from './instances.js';

export interface FastPathDeps extends WriteDeps {
  /** Resolves, once per route and method, the latency series of each status. */
  observer: (
    route: string,
    method: string,
  ) => (status: number) => { observe(seconds: number): void };
}

const DISCOVER_ROUTE = '/api/v1/discover/:namespace/:name';
const HEARTBEAT_ROUTE = '/api/v1/instances/:id/heartbeat';
const REGISTER_ROUTE = '/api/v1/instances';

interface Failure {
  status: number;
  body: string;
  code: string;
  /** WWW-Authenticate, Retry-After: what errorHeaders gives. */
  headers: Record<string, string>;
}

/** Returns a handler that answers the hot requests and returns false for anything else. */
export function createFastPath(
  deps: FastPathDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const failed = (err: unknown): Failure => {
    const e = toMaxineError(err);
    if (e.status >= 500) deps.logger.error({ err }, 'fast-path request failed');
    return {
      status: e.status,
      body: JSON.stringify(e.toBody()),
      code: e.code,
      headers: errorHeaders(e),
    };
  };

  const discoverGet = deps.observer(DISCOVER_ROUTE, 'GET');
  const discoverHead = deps.observer(DISCOVER_ROUTE, 'HEAD');
  const heartbeat = deps.observer(HEARTBEAT_ROUTE, 'PUT');
  const register = deps.observer(REGISTER_ROUTE, 'POST');

  /** Answers an async request: the answer, or the catalog error (413 and 408 also close the connection). */
  const later = (
    req: IncomingMessage,
    res: ServerResponse,
    work: Promise<{ status: number; body: string | Buffer }>,
    series: (status: number) => { observe(seconds: number): void },
  ): void => {
    const started = performance.now();
    const head = req.method === 'HEAD';
    work.then(
      ({ status, body }) => {
        respondJson(res, status, body, { head });
        series(status).observe((performance.now() - started) / 1000);
      },
      (err: unknown) => {
        const { status, body, code, headers } = failed(err);
        deps.logger.info(
          { reqId: requestId(req), url: req.url?.slice(0, 512), status, code },
          'request refused',
        );
        // A body refused half-read leaves the connection unusable: close it after answering.
        // (Other 413s, such as metadata over its limit, come after the whole body was read.)
        respondJson(res, status, body, {
          close: code === 'BODY_TOO_LARGE' || status === 408,
          head,
          headers,
        });
        series(status).observe((performance.now() - started) / 1000);
      },
    );
  };

  return (req, res) => {
    if (isDiscover(req)) {
      const series = req.method === 'HEAD' ? discoverHead : discoverGet;
      let answer: Buffer | Promise<Buffer>;
      const started = performance.now();
      try {
        answer = discoverAnswer(deps, req);
      } catch (err) {
        const { status, body, headers } = failed(err);
        respondJson(res, status, body, { head: req.method === 'HEAD', headers });
        series(status).observe((performance.now() - started) / 1000);
        return true;
      }
      if (answer instanceof Promise) {
        // A token not seen before: its identity is being resolved.
        later(
          req,
          res,
          answer.then((body) => ({ status: 200, body })),
          series,
        );
      } else {
        respondJson(res, 200, answer, { head: req.method === 'HEAD' });
        series(200).observe((performance.now() - started) / 1000);
      }
      return true;
    }
    const id = matchHeartbeat(req);
    if (id !== undefined) {
      const work = heartbeatAnswer(deps, req, id).then((body) => ({
        status: 200,
        body,
      }));
      later(req, res, work, heartbeat);
      return true;
    }
    if (isRegister(req)) {
      later(req, res, registerAnswer(deps, req), register);
      return true;
    }
    return false;
  };
}
