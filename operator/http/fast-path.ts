/**
 * The requests that dominate a registry's traffic — discovery and heartbeats — are answered
 * here, before express: no middleware, no per-request log line, one pre-labelled histogram
 * observation, raw header arrays. Everything else falls through to the express app.
 * Measured in bench/RESULTS.md against a bare node:http server in the same run.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { discoverAnswer, isDiscover } from './discover.js';
import { toMaxineError } from './errors.js';
import {
  heartbeatAnswer,
  isRegister,
  matchHeartbeat,
  registerAnswer,
  requestId,
  respondJson,
} from './instances.js';
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

/** Returns a handler that answers the hot requests and returns false for anything else. */
export function createFastPath(
  deps: FastPathDeps,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const failed = (err: unknown): { status: number; body: string; code: string } => {
    const e = toMaxineError(err);
    if (e.status >= 500) deps.logger.error({ err }, 'fast-path request failed');
    return { status: e.status, body: JSON.stringify(e.toBody()), code: e.code };
  };

  const discoverGet = deps.observer(DISCOVER_ROUTE, 'GET');
  const discoverHead = deps.observer(DISCOVER_ROUTE, 'HEAD');
  const heartbeat = deps.observer(HEARTBEAT_ROUTE, 'PUT');
  const register = deps.observer(REGISTER_ROUTE, 'POST');

  /** Answers an async write: the answer, or the catalog error (413 also closes the connection). */
  const write = (
    req: IncomingMessage,
    res: ServerResponse,
    work: Promise<{ status: number; body: string }>,
    series: (status: number) => { observe(seconds: number): void },
  ): void => {
    const started = performance.now();
    work.then(
      ({ status, body }) => {
        respondJson(res, status, body);
        series(status).observe((performance.now() - started) / 1000);
      },
      (err: unknown) => {
        const { status, body, code } = failed(err);
        deps.logger.info(
          { reqId: requestId(req), url: req.url?.slice(0, 512), status, code },
          'write refused',
        );
        // A body refused half-read leaves the connection unusable: close it after answering.
        respondJson(res, status, body, { close: status === 413 });
        series(status).observe((performance.now() - started) / 1000);
      },
    );
  };

  return (req, res) => {
    if (isDiscover(req)) {
      const started = performance.now();
      let status = 200;
      let body: Buffer | string;
      try {
        body = discoverAnswer(deps.registry, req);
      } catch (err) {
        ({ status, body } = failed(err));
      }
      respondJson(res, status, body, { head: req.method === 'HEAD' });
      const series = req.method === 'HEAD' ? discoverHead : discoverGet;
      series(status).observe((performance.now() - started) / 1000);
      return true;
    }
    const id = matchHeartbeat(req);
    if (id !== undefined) {
      const work = heartbeatAnswer(deps, req, id).then((body) => ({
        status: 200,
        body,
      }));
      write(req, res, work, heartbeat);
      return true;
    }
    if (isRegister(req)) {
      write(req, res, registerAnswer(deps, req), register);
      return true;
    }
    return false;
  };
}
