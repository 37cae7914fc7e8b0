/**
 * Registry writes reach the leader from any replica: a follower that receives one (register,
 * heartbeat, deregister, report) forwards it to the address the leader advertises on its
 * Lease (operator/kube/leader.ts) and relays the answer, status, headers and body as they come
 * (docs/decisions/0018-writes-reach-the-leader.md).
 *
 * - It runs before the fast path, and its first test is the method, so discovery (GET/HEAD)
 *   pays one comparison for it.
 * - The leader authenticates the caller itself, from the caller's own `Authorization` and
 *   `X-Maxine-Kubernetes-Authorization` (and checks `x-maxine-source` against that principal):
 *   nothing a follower adds grants anything.
 * - A forwarded request carries `x-maxine-forwarded-by`; one that lands on a replica that does
 *   not lead is refused (503), never forwarded again, so two replicas that disagree for a
 *   moment about who leads cannot bounce a request between them.
 * - No leader known, or the leader unreachable or too slow: 503 `NO_LEADER` with `Retry-After`
 *   (the sidecar's agent retries; the Lease is read again every `--lease-renew-seconds`).
 * - The body is streamed, bounded by the same limit the leader applies (413 past it), and the
 *   whole exchange by `--forward-timeout-ms`; connections to the leader are kept alive.
 */
import { http } from '../../common/node-http.js';
import type {
  ClientRequest,
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pipeline, Transform } from 'node:stream';
import { Counter } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { MaxineError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { KUBE_USER_HEADER, MAX_REPORT_BYTES } from '../../common/wire.js';
import type { LeaderView } from '../kube/leader.js';
import { RepeatLimiter } from '../kube/repeat.js';
import { clientAddress } from './address-limit.js';
import { requestId } from './caller.js';
import { sendError } from './errors.js';

/** The hop header: set by a follower on what it forwards; such a request is never forwarded again. */
export const FORWARDED_BY_HEADER = 'x-maxine-forwarded-by';
/** On a relayed answer: the replica that took the write. */
export const FORWARDED_TO_HEADER = 'x-maxine-forwarded-to';

export type WriteKind = 'write' | 'report';

/** How long a connection to the leader may take to open (within `timeoutMs`). */
const CONNECT_TIMEOUT_MS = 2000;

const WRITES: readonly { method: string; path: RegExp; kind: WriteKind }[] = [
  { method: 'POST', path: /^\/api\/v1\/instances\/?$/, kind: 'write' },
  { method: 'PUT', path: /^\/api\/v1\/instances\/[^/]+\/heartbeat\/?$/, kind: 'write' },
  { method: 'DELETE', path: /^\/api\/v1\/instances\/[^/]+\/?$/, kind: 'write' },
  { method: 'POST', path: /^\/api\/v1\/reports\/?$/, kind: 'report' },
];

/** Whether `method url` is a registry write the leader must take, and which body bound it has (pure). */
export function writeKind(method: string | undefined, url: string): WriteKind | undefined {
  if (method === undefined || method === 'GET' || method === 'HEAD') return undefined;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  return WRITES.find((w) => w.method === method && w.path.test(path))?.kind;
}

/**
 * What the caller said that the leader needs to judge and parse the request: its credentials
 * (`authorization`, and the kubectl user's token that `kubectl maxine` forwards through the API
 * server's service proxy, decision 0036), the body's description, and the request's identity.
 */
const FORWARDED_REQUEST_HEADERS = [
  'authorization',
  KUBE_USER_HEADER,
  'content-type',
  'content-length',
  'content-encoding',
  'accept',
  'user-agent',
  'x-request-id',
  'x-maxine-source',
  'traceparent',
  'tracestate',
] as const;

/** The headers of the forwarded request (pure): the caller's, the hop header and the client address. */
export function forwardedRequestHeaders(
  headers: IncomingHttpHeaders,
  hop: { identity: string; clientAddress: string },
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value: string | string[] | undefined = headers[name];
    if (value !== undefined) out[name as string] = value;
  }
  const before = headers['x-forwarded-for'];
  const chain = typeof before === 'string' && before !== '' ? `${before}, ` : '';
  out['x-forwarded-for'] = `${chain}${hop.clientAddress}`;
  out[FORWARDED_BY_HEADER] = hop.identity;
  return out;
}

/** Connection-level headers (RFC 9110 §7.6.1) are not relayed. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
]);

/** The headers of the leader's answer as relayed to the caller (pure). */
export function relayedResponseHeaders(
  headers: IncomingHttpHeaders,
  leader: string | undefined,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  if (leader !== undefined) out[FORWARDED_TO_HEADER] = leader;
  return out;
}

export type ForwardResult =
  'forwarded' | 'no_leader' | 'loop' | 'unreachable' | 'timeout' | 'too_large';

export interface ForwardDeps {
  /** Who leads, as this replica last read the Lease. */
  leader(): LeaderView;
  /** This replica's name (the hop header). */
  identity: string;
  /** The whole exchange with the leader, body and answer. */
  timeoutMs: number;
  /** The body bound of register, heartbeat and deregister (reports have their own). */
  bodyLimitBytes: number;
  /** Retry-After of a 503: when followers will have read the Lease again. */
  retryAfterSeconds: number;
  logger: Logger;
  prom: PromRegistry;
}

export interface Forwarder {
  /** Forwards `req` and returns true when it is a write this replica must not take itself. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Drops the kept-alive connections to the leader. */
  close(): void;
}

class ForwardFailure extends Error {
  constructor(readonly result: Exclude<ForwardResult, 'forwarded'>) {
    super(result);
  }
}

export function createForwarder(deps: ForwardDeps): Forwarder {
  const agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32 }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32 }),
  };
  const total = new Counter({
    name: 'maxine_forwarded_writes_total',
    help: 'Registry writes a follower received and forwarded to the leader, by result (forwarded: the leader answered, whatever its status; no_leader, loop, unreachable, timeout, too_large: refused here)',
    labelNames: ['result'],
    registers: [deps.prom],
  });
  const problems = new RepeatLimiter(60_000);
  const logger = deps.logger.child({ component: 'forward' });

  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    result: Exclude<ForwardResult, 'forwarded'>,
    leader: LeaderView,
  ): void => {
    total.inc({ result });
    const { log, repeats } = problems.check(`${result}|${leader.identity ?? ''}`);
    if (log) {
      logger.warn(
        {
          result,
          leader: leader.identity ?? null,
          leaderUrl: leader.url ?? null,
          method: req.method,
          path: (req.url ?? '').split('?')[0]?.slice(0, 256),
          reqId: requestId(req),
          ...(repeats > 0 && { repeatsSinceLastLog: repeats }),
        },
        'registry write not forwarded to the leader: refused with 503 NO_LEADER',
      );
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (result === 'too_large') {
      sendError(res, new MaxineError('BODY_TOO_LARGE', 'The request body is over the limit'), {
        connection: 'close',
      });
      return;
    }
    sendError(res, noLeader(result, leader, deps.retryAfterSeconds));
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    leader: LeaderView & { url: string },
    limit: number,
  ): void => {
    // The leader's origin and the request's own path and query, verbatim (never resolved
    // against the leader's URL: a path cannot name another host).
    const origin = new URL(leader.url);
    const https = origin.protocol === 'https:';
    const headers = forwardedRequestHeaders(req.headers, {
      identity: deps.identity,
      clientAddress: clientAddress(req),
    });
    let failed: ForwardFailure | undefined;
    const upstream: ClientRequest = (https ? httpsRequest : http.request)({
      protocol: origin.protocol,
      hostname: origin.hostname.replace(/^\[|\]$/g, ''),
      port: origin.port === '' ? (https ? 443 : 80) : Number(origin.port),
      path: req.url ?? '/',
      method: req.method,
      headers,
      agent: https ? agents.https : agents.http,
    });
    const fail = (why: ForwardFailure): void => {
      failed ??= why;
      upstream.destroy(why);
    };
    const timer = setTimeout(() => fail(new ForwardFailure('timeout')), deps.timeoutMs);
    timer.unref();
    // A dead leader's pod IP answers nothing at all: give up on the connect well before the
    // whole timeout, so the caller hears 503 while its own request timeout still runs.
    upstream.once('socket', (socket) => {
      if (!socket.connecting) return;
      const connectTimer = setTimeout(
        () => fail(new ForwardFailure('unreachable')),
        Math.min(CONNECT_TIMEOUT_MS, deps.timeoutMs),
      );
      connectTimer.unref();
      socket.once('connect', () => clearTimeout(connectTimer));
      socket.once('close', () => clearTimeout(connectTimer));
    });
    res.once('close', () => {
      clearTimeout(timer);
      // The caller went away before the answer was relayed: drop the exchange.
      if (!res.writableFinished) upstream.destroy();
    });
    let sent = 0;
    const bounded = new Transform({
      transform(chunk: Buffer, _enc, done) {
        sent += chunk.length;
        if (sent > limit) done(new ForwardFailure('too_large'));
        else done(null, chunk);
      },
    });
    // The caller's request stays out of the pipeline: a failed exchange must not destroy the
    // socket the refusal is written to (the rest of the body is then dumped, or the connection
    // closed after a 413).
    req.pipe(bounded);
    pipeline(bounded, upstream, (err) => {
      if (err === undefined || err === null) return;
      if (err instanceof ForwardFailure) failed ??= err;
      req.unpipe(bounded);
      upstream.destroy();
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      // The caller left first (its close destroyed the exchange): nobody to answer.
      if (res.destroyed) return;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const why = failed ?? new ForwardFailure('unreachable');
      if (why.result === 'unreachable')
        logger.debug({ err: err.message, leader: leader.identity }, 'forwarding failed');
      refuse(req, res, why.result, leader);
    });
    upstream.on('response', (answer) => {
      total.inc({ result: 'forwarded' });
      res.writeHead(
        answer.statusCode ?? 502,
        relayedResponseHeaders(answer.headers, leader.identity),
      );
      pipeline(answer, res, (err) => {
        clearTimeout(timer);
        if (err !== undefined && err !== null) {
          logger.debug({ err: err.message }, 'relaying the leader answer failed');
          res.destroy();
        }
      });
      logger.debug(
        {
          method: req.method,
          path: (req.url ?? '').split('?')[0]?.slice(0, 256),
          status: answer.statusCode,
          leader: leader.identity,
        },
        'registry write forwarded to the leader',
      );
    });
  };

  return {
    handle(req, res) {
      const kind = writeKind(req.method, req.url ?? '/');
      if (kind === undefined) return false;
      const leader = deps.leader();
      if (leader.leading) return false;
      if (req.headers[FORWARDED_BY_HEADER] !== undefined) {
        refuse(req, res, 'loop', leader);
        return true;
      }
      if (leader.url === undefined) {
        refuse(req, res, 'no_leader', leader);
        return true;
      }
      const limit = kind === 'report' ? MAX_REPORT_BYTES : deps.bodyLimitBytes;
      if (Number(req.headers['content-length'] ?? 0) > limit) {
        refuse(req, res, 'too_large', leader);
        return true;
      }
      forward(req, res, { ...leader, url: leader.url }, limit);
      return true;
    },
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

function noLeader(
  result: Exclude<ForwardResult, 'forwarded' | 'too_large'>,
  leader: LeaderView,
  retryAfterSeconds: number,
): MaxineError {
  const messages: Record<typeof result, string> = {
    no_leader:
      leader.identity === undefined
        ? 'No replica leads now; retry shortly'
        : `The leader ${leader.identity} advertises no address (--advertise-url); retry shortly`,
    loop: 'A forwarded write reached a replica that does not lead (the leader changed); retry shortly',
    unreachable: `The leader ${leader.identity ?? ''} cannot be reached; retry shortly`,
    timeout: `The leader ${leader.identity ?? ''} did not answer in time; retry shortly`,
  };
  return new MaxineError('NO_LEADER', messages[result], {
    reason: result,
    ...(leader.identity !== undefined && { leader: leader.identity }),
    retryAfterSeconds,
  });
}
