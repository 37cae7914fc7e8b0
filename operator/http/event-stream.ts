/**
 * The event stream: `GET /api/v1/events` upgraded to a WebSocket. A client names the services
 * and types it wants; with `since=SEQ` it gets what it missed, or a resync snapshot when
 * the log no longer holds that far back or `since` is of another log (`epoch=`, the
 * `maxine-stream-epoch` of the handshake); with `snapshot=true` it starts from a snapshot.
 * Like a Kubernetes list + watch: snapshot, then deltas.
 *
 * What one client can cost is bounded: connections per principal and in total (refused at
 * the handshake), snapshot chunks built at once (a gate held only while a chunk is built),
 * snapshots in progress (concurrency + queue; past it 1013), and the memory of a snapshot
 * (chunks of `snapshotChunkBytes`, the next built only once the socket took the last, with
 * the event loop free between chunks). A stream lives only as long as its
 * credential: it is closed with 4401 when the token expires or a re-review refuses it.
 * No error of a stream escapes: it closes that stream (1011) with a log line.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { MaxineError, validationError } from '../../common/errors.js';
import { eventsQuerySchema, STREAM_CLOSE, STREAM_EPOCH_HEADER } from '../../common/wire.js';
import type { EventsQuery, MaxineEvent } from '../../common/wire.js';
import { EventFilter } from '../events/log.js';
import type { EventLog } from '../events/log.js';
import { Gate, Turnstile } from '../events/gate.js';
import type { Release } from '../events/gate.js';
import { MAX_TIMER_MS, nextAuthCheck } from '../events/reauth.js';
import { snapshotMessages } from '../events/snapshot.js';
import type { Registry } from '../registry/registry.js';
import { subscriberInputGuard } from './subscriber-input.js';
import type { Logger } from '../../common/logger.js';
import type { Clock } from '../registry/clock.js';
import { errorHeaders, toMaxineError } from './errors.js';
import type { Principal } from '../auth/authenticator.js';
import type { AccessControl } from '../policy/access.js';
import { originOf } from './caller.js';

export const EVENTS_PATH = '/api/v1/events';
/** A subscriber this far behind is cut off; it resumes with `since` and loses nothing. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const PING_INTERVAL_MS = 30_000;
/** A snapshot that lost this many races against the event log gives up (1013). */
const SNAPSHOT_ATTEMPTS = 3;
/** A re-authentication that could not be made (TokenReview down) is tried again after this. */
const RECHECK_RETRY_MS = 5_000;

export interface StreamLimits {
  /** Open streams in total; past it the handshake is refused with 503. */
  maxConnections: number;
  /** Open streams per principal; past it the handshake is refused with 429. */
  maxPerPrincipal: number;
  /** Snapshot chunks built at once (a stream waiting for its socket to drain holds none). */
  snapshotConcurrency: number;
  /**
   * Snapshots in progress beyond the concurrency (waiting for a build slot or for their
   * client to read); past it the stream is closed with 1013 (retry later).
   */
  snapshotQueue: number;
  /** The bound on one snapshot message, in bytes. */
  snapshotChunkBytes: number;
  /** A snapshot chunk the client does not take within this long drops the connection. */
  snapshotStallMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxConnections: 10_000,
  maxPerPrincipal: 256,
  snapshotConcurrency: 4,
  snapshotQueue: 64,
  snapshotChunkBytes: 64 * 1024,
  snapshotStallMs: 30_000,
};

export interface EventsDeps {
  events: EventLog;
  registry: Registry;
  clock: Clock;
  logger: Logger;
  access: AccessControl;
  limits?: Partial<StreamLimits>;
  /** Where the stream's metrics are registered. */
  prom?: PromRegistry;
}

export interface EventStreamServer {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): void;
}

/** One open stream. */
interface Stream {
  readonly ws: WebSocket;
  readonly req: IncomingMessage;
  principal: Principal;
  readonly filter: EventFilter;
  readonly query: EventsQuery;
  closed: boolean;
  /** Aborted when the socket closes: a queued snapshot leaves the queue. */
  readonly gone: AbortController;
  authTimer?: NodeJS.Timeout;
  unsubscribe?: () => void;
}

type Outcome = 'accepted' | 'principal_limit' | 'total_limit' | 'expired_credential';

function streamMetrics(
  prom: PromRegistry | undefined,
  gate: Gate,
  open: () => number,
  inProgress: () => number,
) {
  const registers = prom === undefined ? [] : [prom];
  const handshakes = new Counter({
    name: 'maxine_event_stream_handshakes_total',
    help: 'Event-stream handshakes past authentication by outcome (accepted, principal_limit, total_limit, expired_credential)',
    labelNames: ['outcome'],
    registers,
  });
  new Gauge({
    name: 'maxine_event_stream_connections',
    help: 'Open event-stream connections (including those still receiving a snapshot)',
    registers,
    collect() {
      this.set(open());
    },
  });
  new Gauge({
    name: 'maxine_snapshot_builds_in_flight',
    help: 'Resync snapshot chunks being built now (at most the snapshot concurrency)',
    registers,
    collect() {
      this.set(gate.inFlight);
    },
  });
  new Gauge({
    name: 'maxine_snapshot_builds_queued',
    help: 'Resync snapshots in progress not building a chunk now: waiting for a build slot or for their client to take the last chunk',
    registers,
    collect() {
      this.set(Math.max(0, inProgress() - gate.inFlight));
    },
  });
  const snapshots = new Counter({
    name: 'maxine_snapshots_total',
    help: 'Resync snapshots by outcome (completed, refused: queue full, aborted: client gone or stalled)',
    labelNames: ['outcome'],
    registers,
  });
  const snapshotBytes = new Counter({
    name: 'maxine_snapshot_bytes_total',
    help: 'Bytes of resync snapshot messages written to event streams',
    registers,
  });
  const credentialCloses = new Counter({
    name: 'maxine_event_stream_credential_closes_total',
    help: 'Event streams closed (4401) because their credential expired or was revoked',
    labelNames: ['reason'],
    registers,
  });
  return {
    handshake: (outcome: Outcome) => handshakes.inc({ outcome }),
    snapshot: (outcome: 'completed' | 'refused' | 'aborted') => snapshots.inc({ outcome }),
    snapshotBytes: (n: number) => snapshotBytes.inc(n),
    credentialClosed: (reason: 'expired' | 'revoked') => credentialCloses.inc({ reason }),
  };
}

export function createEventStream(deps: EventsDeps): EventStreamServer {
  const limits: StreamLimits = { ...DEFAULT_STREAM_LIMITS, ...deps.limits };
  const { logger } = deps;
  const input = subscriberInputGuard({ logger, prom: deps.prom });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, clientTracking: true });
  // Every stream names its log's epoch at the handshake: a client resuming with `since` sends
  // it back (`epoch=`), whichever replica it then reaches.
  wss.on('headers', (headers: string[]) => {
    headers.push(`${STREAM_EPOCH_HEADER}: ${deps.events.epoch}`);
  });
  // Each snapshot in progress waits for at most one slot at a time, so with at most
  // concurrency + queue snapshots in progress the gate's queue never overflows.
  const gate = new Gate(limits.snapshotConcurrency, limits.snapshotQueue);
  const maxSnapshots = limits.snapshotConcurrency + limits.snapshotQueue;
  let snapshotsInProgress = 0;
  const turns = new Turnstile();
  /** Open (or opening) streams per principal (its id: not multiplied by group sets), and in total. */
  const perPrincipal = new Map<string, number>();
  let total = 0;
  const metrics = streamMetrics(
    deps.prom,
    gate,
    () => total,
    () => snapshotsInProgress,
  );
  const alive = new WeakMap<WebSocket, boolean>();
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, PING_INTERVAL_MS);
  pinger.unref();

  /** Takes a connection slot for `principal`, or throws the refusal; the slot is freed on close. */
  function reserve(principal: Principal, socket: Duplex): void {
    if (total >= limits.maxConnections) {
      metrics.handshake('total_limit');
      throw new MaxineError(
        'EVENT_STREAMS_FULL',
        `The operator serves its maximum of ${limits.maxConnections} event streams; retry later`,
        { retryAfterSeconds: 5 },
      );
    }
    const mine = perPrincipal.get(principal.id) ?? 0;
    if (mine >= limits.maxPerPrincipal) {
      metrics.handshake('principal_limit');
      throw new MaxineError(
        'TOO_MANY_STREAMS',
        `${principal.who} already has ${mine} open event streams (at most ${limits.maxPerPrincipal}); close one or retry later`,
        { retryAfterSeconds: 5 },
      );
    }
    total += 1;
    perPrincipal.set(principal.id, mine + 1);
    // The raw socket closes in every case (refused upgrade, client gone, stream closed).
    socket.once('close', () => {
      total -= 1;
      const left = (perPrincipal.get(principal.id) ?? 1) - 1;
      if (left <= 0) perPrincipal.delete(principal.id);
      else perPrincipal.set(principal.id, left);
    });
  }

  // Unsorted and lazy: visibility scans it per wildcard intention and subscriber.
  const serviceRefs = () => deps.registry.eachServiceRef();

  /**
   * Which events a subscriber may see: ACL changes need admin, intention changes `read` on a
   * service the intention governs (AccessControl.mayViewIntention), circuit changes `read` on
   * the destination and on the reporting (calling) service, as the graph shows an edge only
   * between two services the caller may read; the rest read.
   */
  function visibility(principal: Principal): (event: MaxineEvent) => boolean {
    const canRead = deps.access.canRead(principal);
    return (event) => {
      const service = event.service;
      if (service === undefined) return true;
      if (event.type === 'acl_changed') {
        return deps.access.mayAdminister(principal, service.namespace);
      }
      if (event.type === 'intention_changed')
        return deps.access.mayViewIntention(principal, service, serviceRefs);
      if (event.type === 'circuit_state_changed' && !canRead(event.data.reporter.service))
        return false;
      return canRead(service);
    };
  }

  /** The intentions in force a stream's snapshot carries: what it watches and may see. */
  function intentionsFor(s: Stream) {
    return deps.access.intentionsInForce().filter((i) => {
      const destination = {
        namespace: i.spec.destination.namespace ?? i.namespace,
        name: i.spec.destination.name,
      };
      return (
        (s.filter.matchesRef(destination.namespace, destination.name) || s.filter.namesCaller(i)) &&
        deps.access.mayViewIntention(s.principal, destination, serviceRefs)
      );
    });
  }

  function closeStream(s: Stream, code: number, reason: string): void {
    if (s.ws.readyState === s.ws.OPEN || s.ws.readyState === s.ws.CONNECTING)
      s.ws.close(code, reason);
  }

  /** The last resort of every async path of a stream: close it, log, never throw. */
  function fail(s: Stream, err: unknown): void {
    logger.error(
      { err, who: s.principal.who, services: s.query.services ?? ['*/*'] },
      'event stream failed; closing it',
    );
    try {
      closeStream(s, STREAM_CLOSE.INTERNAL_ERROR, 'internal error');
    } catch {
      s.ws.terminate();
    }
  }

  /** Replays `missed` and subscribes in the same tick: no event can fall between them. */
  function follow(s: Stream, missed: readonly MaxineEvent[]): void {
    if (s.closed) return;
    const visible = visibility(s.principal);
    const wanted = (event: MaxineEvent): boolean => s.filter.matches(event) && visible(event);
    const send = (event: MaxineEvent): void => {
      if (s.ws.readyState !== s.ws.OPEN) return;
      if (s.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        closeStream(
          s,
          STREAM_CLOSE.TRY_AGAIN_LATER,
          'slow consumer: reconnect with since=<last seq>',
        );
        return;
      }
      s.ws.send(deps.events.serialized(event));
    };
    for (const event of missed) if (wanted(event)) send(event);
    s.unsubscribe = deps.events.subscribe((event) => {
      try {
        if (wanted(event)) send(event);
      } catch (err) {
        fail(s, err); // one subscriber's failure must not reach the event log's other listeners
      }
    });
  }

  /**
   * Writes `message` and resolves once the socket took it (true), or false when the client
   * left or did not take it within the stall limit (then the connection is dropped).
   */
  function write(s: Stream, message: string): Promise<boolean> {
    return new Promise((resolve) => {
      const onClose = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        s.ws.off('close', onClose);
        logger.warn(
          { who: s.principal.who, stallMs: limits.snapshotStallMs },
          'event stream did not take a snapshot chunk in time; dropping the connection',
        );
        s.ws.terminate();
        resolve(false);
      }, limits.snapshotStallMs);
      s.ws.once('close', onClose);
      s.ws.send(message, (err) => {
        clearTimeout(timer);
        s.ws.off('close', onClose);
        resolve(err === undefined || err === null);
      });
    });
  }

  /**
   * Streams one snapshot; its seq once `resync_end` was written, else undefined.
   *
   * A build slot is held only while one chunk is built, never while the socket drains: a
   * client that does not read keeps one chunk in memory (until the stall limit drops it),
   * not a slot, so it cannot delay the snapshots of clients that do read. Snapshots in
   * progress are bounded by `snapshotConcurrency + snapshotQueue` (past it: 1013), which
   * bounds their memory by that many chunks.
   */
  async function sendSnapshot(s: Stream): Promise<number | undefined> {
    if (snapshotsInProgress >= maxSnapshots) {
      metrics.snapshot('refused');
      logger.warn(
        { who: s.principal.who, inProgress: snapshotsInProgress, max: maxSnapshots },
        'too many snapshots in progress; event stream closed with 1013 (retry later)',
      );
      closeStream(s, STREAM_CLOSE.TRY_AGAIN_LATER, 'too many snapshots in progress: retry later');
      return undefined;
    }
    snapshotsInProgress += 1;
    try {
      const seq = deps.events.lastSeq;
      const canRead = deps.access.canRead(s.principal);
      const services = deps.registry
        .serviceRefs()
        .filter((x) => s.filter.matchesService(x.namespace, x.name) && canRead(x));
      const messages = snapshotMessages({
        seq,
        epoch: deps.events.epoch,
        time: new Date(deps.clock.now()).toISOString(),
        services,
        detail: (namespace, name) => deps.registry.snapshotOf(namespace, name),
        maxBytes: limits.snapshotChunkBytes,
        policy: { intentionDefault: deps.access.intentionDefault, intentions: intentionsFor(s) },
      });
      for (;;) {
        const next = await buildTurn(s, () => messages.next());
        if (next === undefined) {
          metrics.snapshot('aborted');
          return undefined;
        }
        if (next.done === true) break;
        const message = next.value;
        if (!(await write(s, message))) {
          metrics.snapshot('aborted');
          return undefined;
        }
        metrics.snapshotBytes(Buffer.byteLength(message));
      }
      metrics.snapshot('completed');
      return seq;
    } finally {
      snapshotsInProgress -= 1;
    }
  }

  /**
   * Runs `build` holding a build slot, on a turn of the event loop of its own (one chunk
   * per turn across all snapshots); undefined when the stream closed meanwhile.
   */
  async function buildTurn<T>(s: Stream, build: () => T): Promise<T | undefined> {
    const release: Release | undefined = await gate.acquire(s.gone.signal);
    if (release === undefined) {
      // The stream closed while waiting; a full queue cannot happen (see the gate above),
      // but would not leave a stream open with neither snapshot nor events.
      if (!s.closed) closeStream(s, STREAM_CLOSE.TRY_AGAIN_LATER, 'too many snapshots: retry');
      return undefined;
    }
    try {
      await turns.next();
      if (s.closed) return undefined;
      return build();
    } finally {
      release();
    }
  }

  async function run(s: Stream): Promise<void> {
    const { since, snapshot, epoch } = s.query;
    if (since !== undefined) {
      const missed = deps.events.since(since, epoch);
      if (missed !== undefined) return follow(s, missed);
      if (epoch !== undefined && epoch !== deps.events.epoch) {
        logger.info(
          { who: s.principal.who, since, epoch, ours: deps.events.epoch },
          'since= is from another event log (another replica or process): sending a snapshot',
        );
      }
    } else if (snapshot !== true) return follow(s, []);
    for (let attempt = 1; ; attempt++) {
      const seq = await sendSnapshot(s);
      if (seq === undefined || s.closed) return;
      // Events appended while the snapshot was sent follow it, from the log.
      const missed = deps.events.since(seq);
      if (missed !== undefined) return follow(s, missed);
      if (attempt >= SNAPSHOT_ATTEMPTS) {
        closeStream(
          s,
          STREAM_CLOSE.TRY_AGAIN_LATER,
          'the event log moved on during snapshots: retry',
        );
        return;
      }
    }
  }

  function closeForCredential(s: Stream, reason: 'expired' | 'revoked', detail?: string): void {
    if (s.closed) return;
    metrics.credentialClosed(reason);
    logger.info(
      { who: s.principal.who, reason, detail },
      'event stream closed: its credential expired or was revoked (4401)',
    );
    closeStream(
      s,
      STREAM_CLOSE.CREDENTIAL_EXPIRED,
      'credential expired: reconnect with a fresh token',
    );
  }

  /** Arms the next look at the stream's credential, if it has an expiry. */
  function watchCredential(s: Stream, inMs?: number): void {
    if (s.closed) return;
    if (s.authTimer) clearTimeout(s.authTimer);
    const check = inMs === undefined ? nextAuthCheck(s.principal) : undefined;
    if (inMs === undefined && check === undefined) return;
    const wait = inMs ?? Math.max(0, (check?.at ?? 0) - Date.now());
    const delay = Math.min(wait, MAX_TIMER_MS);
    s.authTimer = setTimeout(() => {
      try {
        if (delay < wait) return watchCredential(s);
        if (check?.action === 'close') return closeForCredential(s, 'expired');
        revalidate(s);
      } catch (err) {
        fail(s, err);
      }
    }, delay);
    s.authTimer.unref();
  }

  /** Asks the authenticator again (a TokenReview once its cached answer expired). */
  function revalidate(s: Stream): void {
    const renewed = (principal: Principal): void => {
      s.principal = principal;
      watchCredential(s);
    };
    const refused = (err: unknown): void => {
      const e = toMaxineError(err);
      if (e.code === 'UNAUTHENTICATED') return closeForCredential(s, 'revoked', e.message);
      logger.warn(
        { who: s.principal.who, code: e.code, retryInMs: RECHECK_RETRY_MS },
        'cannot re-authenticate an event stream now; keeping it and trying again',
      );
      watchCredential(s, RECHECK_RETRY_MS);
    };
    try {
      const next = deps.access.principal(s.req, 'events.reauthenticate', originOf(s.req));
      if (next instanceof Promise)
        next.then(renewed, refused).catch((err: unknown) => fail(s, err));
      else renewed(next);
    } catch (err) {
      refused(err);
    }
  }

  function open(
    ws: WebSocket,
    req: IncomingMessage,
    principal: Principal,
    query: EventsQuery,
  ): void {
    const s: Stream = {
      ws,
      req,
      principal,
      filter: new EventFilter(query.services, query.types, query.caller),
      query,
      closed: false,
      gone: new AbortController(),
    };
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    input.watch(ws, () => s.principal.who); // what a subscriber sends: operator/http/subscriber-input.ts
    ws.on('error', (err) =>
      logger.debug({ err, who: s.principal.who }, 'event stream socket error'),
    );
    ws.on('close', (code) => {
      s.closed = true;
      s.gone.abort();
      s.unsubscribe?.();
      if (s.authTimer) clearTimeout(s.authTimer);
      logger.debug({ who: s.principal.who, code }, 'event subscriber disconnected');
    });
    logger.info(
      {
        who: principal.who,
        services: query.services ?? ['*/*'],
        types: query.types ?? 'all',
        since: query.since,
        snapshot: query.snapshot,
      },
      'event subscriber connected',
    );
    watchCredential(s);
    run(s).catch((err: unknown) => fail(s, err));
  }

  /** Refuses a handshake not yet upgraded; logs what was not the client's fault. */
  function refuse(socket: Duplex, err: unknown): void {
    const e = toMaxineError(err);
    if (e.status >= 500 && e.code === 'INTERNAL')
      logger.error({ err }, 'event stream handshake failed');
    rejectUpgrade(socket, e);
  }

  return {
    handleUpgrade(req, socket, head) {
      try {
        const target = req.url ?? '/';
        const q = target.indexOf('?');
        const pathname = q === -1 ? target : target.slice(0, q);
        if (pathname !== EVENTS_PATH) {
          throw new MaxineError(
            'ROUTE_NOT_FOUND',
            `No WebSocket endpoint ${pathname.slice(0, 256)}`,
          );
        }
        const params = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
        const raw = Object.fromEntries(params);
        if ([...params.keys()].length !== Object.keys(raw).length) {
          throw new MaxineError('VALIDATION_FAILED', 'A query parameter is given twice');
        }
        const parsed = eventsQuerySchema.safeParse(raw);
        if (!parsed.success) throw validationError('query', parsed.error);
        const query = parsed.data;
        const accept = (principal: Principal): void => {
          if (socket.destroyed) return;
          if (principal.expiresAt !== undefined && principal.expiresAt <= Date.now()) {
            metrics.handshake('expired_credential');
            throw new MaxineError('UNAUTHENTICATED', 'The token has expired');
          }
          reserve(principal, socket);
          metrics.handshake('accepted');
          wss.handleUpgrade(req, socket, head, (ws) => {
            try {
              open(ws, req, principal, query);
            } catch (err) {
              logger.error({ err, who: principal.who }, 'event stream failed to start; closing it');
              ws.terminate();
            }
          });
        };
        const principal = deps.access.principal(req, 'events.subscribe', originOf(req));
        if (principal instanceof Promise) {
          principal.then(accept).catch((err: unknown) => refuse(socket, err));
        } else accept(principal);
      } catch (err) {
        refuse(socket, err);
      }
    },
    close() {
      clearInterval(pinger);
      for (const ws of wss.clients) ws.close(STREAM_CLOSE.GOING_AWAY, 'server shutting down');
      wss.close();
    },
  };
}

function rejectUpgrade(socket: Duplex, err: MaxineError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(err.toBody());
  const d = err.details as { retryAfterSeconds?: unknown } | undefined;
  const headers = {
    ...(typeof d?.retryAfterSeconds === 'number' && {
      'retry-after': String(d.retryAfterSeconds),
    }),
    ...errorHeaders(err),
  };
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${err.status} ${err.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}
