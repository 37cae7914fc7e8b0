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
 *
 * A subscriber's send buffer is bounded (`bufferBytes`): one that falls that far behind is
 * sent a `resync` marker, unsubscribed (it costs nothing more per event, and its memory stops
 * growing), and once its connection took everything queued it gets a fresh snapshot and
 * follows live events again; one that does not drain within `snapshotStallMs` is closed
 * (1013) and resumes with `since=`. Other subscribers never wait for it.
 *
 * The same stream is served as Server-Sent Events (`Accept: text/event-stream` on a plain
 * GET, routed here by app.ts): same query, filters, limits, snapshots and slow-consumer
 * policy; `id:` is `EPOCH:SEQ`, so `Last-Event-ID` resumes like `since=&epoch=`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { MaxineError, validationError } from '../../common/errors.js';
import {
  EVENTS_QUERY_REPEATABLE,
  eventsQuerySchema,
  lastEventIdSchema,
  STREAM_CLOSE,
  STREAM_EPOCH_HEADER,
} from '../../common/wire.js';
import type { EventsQuery, Instance, MaxineEvent, ResyncMarker } from '../../common/wire.js';
import { EventFilter } from '../events/log.js';
import type { EventLog } from '../events/log.js';
import { Gate, Turnstile } from '../events/gate.js';
import { WriteBatch } from '../events/write-batch.js';
import type { Release } from '../events/gate.js';
import { MAX_TIMER_MS, nextAuthCheck } from '../events/reauth.js';
import { snapshotMessages } from '../events/snapshot.js';
import type { Registry } from '../registry/registry.js';
import { subscriberInputGuard } from './subscriber-input.js';
import type { Logger } from '../../common/logger.js';
import type { Clock } from '../registry/clock.js';
import { errorHeaders, sendError, toMaxineError } from './errors.js';
import type { Principal } from '../auth/authenticator.js';
import type { AccessControl } from '../policy/access.js';
import { originOf } from './caller.js';
import { sseSink, webSocketSink } from './event-sink.js';
import type { Framing, Sink, Transport } from './event-sink.js';

export const EVENTS_PATH = '/api/v1/events';
const PING_INTERVAL_MS = 30_000;
/** A slow consumer closed with 1013 that still does not read is cut off after this. */
const CLOSE_GRACE_MS = 2_000;
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
  /**
   * A snapshot chunk the client does not take within this long drops the connection; a slow
   * consumer that does not drain its buffer within this long is closed (1013).
   */
  snapshotStallMs: number;
  /** A subscriber's send buffer: past it, the `resync` marker and snapshot resumption. */
  bufferBytes: number;
  /** Server-Sent Events: a comment line this often on an idle stream. */
  sseHeartbeatMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxConnections: 10_000,
  maxPerPrincipal: 256,
  snapshotConcurrency: 4,
  snapshotQueue: 64,
  snapshotChunkBytes: 64 * 1024,
  snapshotStallMs: 30_000,
  bufferBytes: 1024 * 1024,
  sseHeartbeatMs: 15_000,
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
  /**
   * Serves the stream as Server-Sent Events on a plain GET whose caller is authenticated
   * (`principal`); answers refusals (400, 401, 429, 503) itself.
   */
  serveSse(req: IncomingMessage, res: ServerResponse, principal: Principal): void;
  close(): void;
}

/** One open stream. */
interface Stream {
  readonly sink: Sink;
  readonly req: IncomingMessage;
  principal: Principal;
  readonly filter: EventFilter;
  readonly query: EventsQuery;
  closed: boolean;
  /** Aborted when the socket closes: a queued snapshot leaves the queue. */
  readonly gone: AbortController;
  authTimer?: NodeJS.Timeout;
  unsubscribe?: () => void;
  /**
   * Where the subscriber stands: it was sent every event it asked for up to this seq (the
   * `since` it would resume from). The `resync` marker carries it.
   */
  position: number;
  /** Fell behind its buffer: marker sent, no events until it drained and took a snapshot. */
  behind: boolean;
}

type Outcome = 'accepted' | 'principal_limit' | 'total_limit' | 'expired_credential';

interface StreamGauges {
  /** Reserved connection slots (streams open or opening). */
  open: () => number;
  inProgress: () => number;
  /** The streams past their handshake. */
  streams: () => Iterable<Stream>;
}

/** The slow-consumer metrics: markers sent, and subscribers dropped, by reason. */
function slowConsumerMetrics(registers: PromRegistry[], streams: () => Iterable<Stream>) {
  new Gauge({
    name: 'maxine_event_stream_subscribers',
    help: 'Event subscribers past their handshake, by transport (websocket, sse)',
    labelNames: ['transport'],
    registers,
    collect() {
      const counts: Record<Transport, number> = { websocket: 0, sse: 0 };
      for (const s of streams()) counts[s.sink.transport] += 1;
      this.set({ transport: 'websocket' }, counts.websocket);
      this.set({ transport: 'sse' }, counts.sse);
    },
  });
  new Gauge({
    name: 'maxine_event_stream_queued_bytes',
    help: 'Bytes queued in the operator for event subscribers, not yet taken by their connections (sum over subscribers; each is bounded by --event-stream-buffer-bytes)',
    registers,
    collect() {
      let sum = 0;
      for (const s of streams()) sum += s.sink.buffered;
      this.set(sum);
    },
  });
  const resyncs = new Counter({
    name: 'maxine_event_stream_resyncs_total',
    help: 'Subscribers sent the resync marker and moved to snapshot resumption, by reason (slow_consumer: past their send buffer)',
    labelNames: ['reason'],
    registers,
  });
  const drops = new Counter({
    name: 'maxine_event_stream_drops_total',
    help: 'Subscribers dropped, by reason (slow_consumer: did not drain within the stall limit, closed 1013; snapshot_stalled: did not take a snapshot chunk in time)',
    labelNames: ['reason'],
    registers,
  });
  return {
    resync: (reason: 'slow_consumer') => resyncs.inc({ reason }),
    drop: (reason: 'slow_consumer' | 'snapshot_stalled') => drops.inc({ reason }),
  };
}

function streamMetrics(prom: PromRegistry | undefined, gate: Gate, gauges: StreamGauges) {
  const { open, inProgress } = gauges;
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
    ...slowConsumerMetrics(registers, gauges.streams),
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
  /** The streams past their handshake (slow-consumer gauges, SSE heartbeats, shutdown). */
  const streams = new Set<Stream>();
  const metrics = streamMetrics(deps.prom, gate, {
    open: () => total,
    inProgress: () => snapshotsInProgress,
    streams: () => streams,
  });
  /** One Buffer per event for every socket, the turn's frames in one write per socket. */
  const batch = new WriteBatch(deps.prom);
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
  // An idle Server-Sent Events stream gets a comment line now and then, so proxies and load
  // balancers do not close it (a stream with bytes queued is not idle).
  const sseHeartbeat = setInterval(() => {
    for (const s of streams)
      if (s.sink.transport === 'sse' && s.sink.open && s.sink.buffered === 0) s.sink.heartbeat();
  }, limits.sseHeartbeatMs);
  sseHeartbeat.unref();

  /**
   * Takes a connection slot for `principal`, or throws the refusal; the slot is freed when
   * `gone` (the raw socket, or the SSE response) closes.
   */
  function reserve(principal: Principal, gone: Duplex | ServerResponse): void {
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
    // The raw socket (the response) closes in every case (refused, client gone, stream closed).
    gone.once('close', () => {
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
    s.sink.close(code, reason);
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
      s.sink.terminate();
    }
  }

  /**
   * Replays `missed` and subscribes in the same tick: no event can fall between them. `from`
   * is where the subscriber stands before `missed` (its `since`, a snapshot's seq, or now).
   */
  function follow(s: Stream, missed: readonly MaxineEvent[], from: number): void {
    if (s.closed) return;
    s.behind = false;
    s.position = from;
    const visible = visibility(s.principal);
    const offer = (event: MaxineEvent): void => {
      if (s.filter.matches(event) && visible(event)) deliver(s, event);
      // An event it did not ask for is one it need not be sent again (heartbeats carry the
      // last stored seq, so they never move the position).
      else if (!s.behind) s.position = Math.max(s.position, event.seq);
    };
    for (const event of missed) {
      offer(event);
      if (s.behind || s.closed) return;
    }
    if (s.query.follow === false) {
      // After this turn's batched writes (WriteBatch flushes on setImmediate, scheduled first).
      setImmediate(() => closeStream(s, STREAM_CLOSE.REPLAY_DONE, 'replay done'));
      return;
    }
    s.unsubscribe = deps.events.subscribe(
      (event) => {
        try {
          offer(event);
        } catch (err) {
          fail(s, err); // one subscriber's failure must not reach the event log's other listeners
        }
      },
      { heartbeats: s.filter.takesHeartbeats },
    );
  }

  /**
   * Sends one event, unless the subscriber's buffer would pass its bound: then it falls
   * behind (the marker, then a snapshot once drained) and gets nothing more until then.
   * One event larger than the whole bound still goes to a subscriber with nothing queued.
   */
  function deliver(s: Stream, event: MaxineEvent): void {
    if (s.behind || !s.sink.open) return;
    const json = deps.events.encoded(event);
    const over = (queued: number): boolean =>
      queued > 0 && queued + json.length > limits.bufferBytes;
    // Bytes held back for the turn's one write are not the client's lag: out with them first.
    if (over(s.sink.buffered)) batch.writeOut(s.req.socket);
    const queued = s.sink.buffered;
    if (over(queued)) {
      fallBehind(s, queued);
      return;
    }
    // The same Buffer for every subscriber; the turn's messages leave in one write (WriteBatch).
    batch.hold(s.req.socket);
    s.sink.send(json, { type: event.type, id: event.seq });
    s.position = event.seq;
  }

  /** The slow-consumer policy: unsubscribe, send the marker, resync once it drained. */
  function fallBehind(s: Stream, queued: number): void {
    s.behind = true;
    s.unsubscribe?.();
    s.unsubscribe = undefined;
    metrics.resync('slow_consumer');
    logger.warn(
      {
        who: s.principal.who,
        transport: s.sink.transport,
        queuedBytes: queued,
        seq: s.position,
      },
      'event subscriber fell behind its send buffer; sent the resync marker',
    );
    catchUp(s).catch((err: unknown) => fail(s, err));
  }

  async function catchUp(s: Stream): Promise<void> {
    const marker: ResyncMarker = {
      seq: s.position,
      type: 'resync',
      time: new Date(deps.clock.now()).toISOString(),
      data: { reason: 'slow_consumer', epoch: deps.events.epoch },
    };
    const taken = await write(s, JSON.stringify(marker), { type: 'resync', id: s.position }, () => {
      metrics.drop('slow_consumer');
      logger.warn(
        { who: s.principal.who, stallMs: limits.snapshotStallMs, seq: s.position },
        'slow event subscriber did not drain in time; closed with 1013',
      );
      closeStream(
        s,
        STREAM_CLOSE.TRY_AGAIN_LATER,
        `slow consumer: reconnect with since=${s.position}`,
      );
      // A client that still reads nothing never takes the close either.
      setTimeout(() => s.sink.terminate(), CLOSE_GRACE_MS).unref();
    });
    if (!taken || s.closed) return;
    await snapshotThenFollow(s);
  }

  /**
   * Writes `message` and resolves once the connection took it (true), or false when the
   * client left or did not take it within the stall limit (then `stalled` runs; by default
   * the connection is dropped).
   */
  function write(
    s: Stream,
    message: string,
    framing: Framing,
    stalled: () => void = () => {
      metrics.drop('snapshot_stalled');
      logger.warn(
        { who: s.principal.who, stallMs: limits.snapshotStallMs },
        'event stream did not take a snapshot chunk in time; dropping the connection',
      );
      s.sink.terminate();
    },
  ): Promise<boolean> {
    return new Promise((resolve) => {
      if (s.closed) return resolve(false);
      const onClose = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        s.gone.signal.removeEventListener('abort', onClose);
        stalled();
        resolve(false);
      }, limits.snapshotStallMs);
      s.gone.signal.addEventListener('abort', onClose, { once: true });
      s.sink.write(message, framing, (err) => {
        clearTimeout(timer);
        s.gone.signal.removeEventListener('abort', onClose);
        resolve(err === undefined || err === null);
      });
    });
  }

  /** A service's snapshot content, with only the instances the stream's filters let through. */
  function detailFor(s: Stream, namespace: string, name: string) {
    const detail = deps.registry.snapshotOf(namespace, name);
    if (detail === undefined || !s.filter.filtersInstances) return detail;
    const all = detail.items;
    const items = function* (): Generator<Instance> {
      for (const instance of all) if (s.filter.matchesInstance(instance)) yield instance;
    };
    return { ...detail, items: items() };
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
        detail: (namespace, name) => detailFor(s, namespace, name),
        maxBytes: limits.snapshotChunkBytes,
        policy: { intentionDefault: deps.access.intentionDefault, intentions: intentionsFor(s) },
      });
      // Every message begins with its envelope: `{"seq":N,"type":"resync_…`.
      const typeAt = `{"seq":${seq},"type":"`.length;
      for (;;) {
        const next = await buildTurn(s, () => messages.next());
        if (next === undefined) {
          metrics.snapshot('aborted');
          return undefined;
        }
        if (next.done === true) break;
        const message = next.value;
        // Only `resync_end` names the seq as an SSE id: a client cut off mid-snapshot keeps
        // the id it had, as it keeps its old state and `since` on a WebSocket.
        const type = message.slice(typeAt, message.indexOf('"', typeAt));
        const framing: Framing = type === 'resync_end' ? { type, id: seq } : { type };
        if (!(await write(s, message, framing))) {
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

  /** A snapshot, then the events appended while it was sent, then live events. */
  async function snapshotThenFollow(s: Stream): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const seq = await sendSnapshot(s);
      if (seq === undefined || s.closed) return;
      // Events appended while the snapshot was sent follow it, from the log.
      const missed = deps.events.since(seq);
      if (missed !== undefined) return follow(s, missed, seq);
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

  async function run(s: Stream): Promise<void> {
    const { since, snapshot, epoch } = s.query;
    if (since !== undefined) {
      const missed = deps.events.since(since, epoch);
      if (missed !== undefined) return follow(s, missed, since);
      if (epoch !== undefined && epoch !== deps.events.epoch) {
        logger.info(
          { who: s.principal.who, since, epoch, ours: deps.events.epoch },
          'since= is from another event log (another replica or process): sending a snapshot',
        );
      }
    } else if (snapshot !== true && s.query.follow === false) {
      // No live events wanted and no starting point: every event the log holds.
      const held = deps.events.heldAfter;
      return follow(s, deps.events.since(held) ?? [], held);
    } else if (snapshot !== true) return follow(s, [], deps.events.lastSeq);
    await snapshotThenFollow(s);
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

  /** A stream past its handshake: wired to its sink's close, then run. */
  function start(
    sink: Sink,
    req: IncomingMessage,
    principal: Principal,
    query: EventsQuery,
  ): Stream {
    const s: Stream = {
      sink,
      req,
      principal,
      filter: new EventFilter(query.services, query.types, query.caller, {
        criteria: query,
        lookup: (id) => deps.registry.getInstance(id),
      }),
      query,
      closed: false,
      gone: new AbortController(),
      position: deps.events.lastSeq,
      behind: false,
    };
    streams.add(s);
    logger.info(
      {
        who: principal.who,
        transport: sink.transport,
        services: query.services ?? ['*/*'],
        types: query.types ?? 'all',
        since: query.since,
        snapshot: query.snapshot,
        ...(s.filter.filtersInstances && {
          instances: {
            version: query.version,
            zone: query.zone,
            datacenter: query.datacenter,
            metadata: query.metadata,
          },
        }),
      },
      'event subscriber connected',
    );
    return s;
  }

  /** What every stream does when its connection closes, whoever closed it. */
  function ended(s: Stream, code?: number): void {
    s.closed = true;
    streams.delete(s);
    s.gone.abort();
    s.unsubscribe?.();
    if (s.authTimer) clearTimeout(s.authTimer);
    logger.debug(
      { who: s.principal.who, transport: s.sink.transport, code },
      'event subscriber disconnected',
    );
  }

  function open(
    ws: WebSocket,
    req: IncomingMessage,
    principal: Principal,
    query: EventsQuery,
  ): void {
    const s = start(webSocketSink(ws), req, principal, query);
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    input.watch(ws, () => s.principal.who); // what a subscriber sends: operator/http/subscriber-input.ts
    ws.on('error', (err) =>
      logger.debug({ err, who: s.principal.who }, 'event stream socket error'),
    );
    ws.on('close', (code) => ended(s, code));
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

  /** A principal whose credential already expired opens no stream (401). */
  function refuseExpired(principal: Principal): void {
    if (principal.expiresAt !== undefined && principal.expiresAt <= Date.now()) {
      metrics.handshake('expired_credential');
      throw new MaxineError('UNAUTHENTICATED', 'The token has expired');
    }
  }

  function serveSse(req: IncomingMessage, res: ServerResponse, principal: Principal): void {
    let query: EventsQuery;
    try {
      query = parseQuery(req.url ?? '/');
      const resume = req.headers['last-event-id'];
      if (resume !== undefined) {
        // EventSource sends back the last `id:` it saw; it wins over the URL's since/epoch.
        const parsed = lastEventIdSchema.safeParse(resume);
        if (!parsed.success) throw validationError('header Last-Event-ID', parsed.error);
        query = { ...query, since: parsed.data.since, epoch: parsed.data.epoch };
      }
      refuseExpired(principal);
      reserve(principal, res);
    } catch (err) {
      const e = toMaxineError(err);
      const d = e.details as { retryAfterSeconds?: unknown } | undefined;
      sendError(
        res,
        e,
        typeof d?.retryAfterSeconds === 'number'
          ? { 'retry-after': String(d.retryAfterSeconds) }
          : undefined,
      );
      return;
    }
    metrics.handshake('accepted');
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'close',
      [STREAM_EPOCH_HEADER]: deps.events.epoch,
    });
    res.flushHeaders();
    const s = start(
      sseSink(res, () => deps.events.epoch),
      req,
      principal,
      query,
    );
    res.once('close', () => ended(s));
    res.on('error', (err) => logger.debug({ err, who: s.principal.who }, 'SSE stream error'));
    watchCredential(s);
    run(s).catch((err: unknown) => fail(s, err));
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
        const query = parseQuery(target);
        const accept = (principal: Principal): void => {
          if (socket.destroyed) return;
          refuseExpired(principal);
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
    serveSse(req, res, principal) {
      try {
        serveSse(req, res, principal);
      } catch (err) {
        logger.error({ err, who: principal.who }, 'event stream (SSE) failed to start; closing it');
        res.destroy();
      }
    },
    close() {
      clearInterval(pinger);
      clearInterval(sseHeartbeat);
      for (const ws of wss.clients) ws.close(STREAM_CLOSE.GOING_AWAY, 'server shutting down');
      for (const s of streams)
        if (s.sink.transport === 'sse')
          closeStream(s, STREAM_CLOSE.GOING_AWAY, 'server shutting down');
      wss.close();
    },
  };
}

/**
 * The events query of a request target (WebSocket handshake or SSE GET): each parameter
 * once, but `metadata`, which may repeat.
 */
function parseQuery(target: string): EventsQuery {
  const q = target.indexOf('?');
  const params = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  const raw: Record<string, string | string[]> = {};
  for (const [key, value] of params) {
    const seen = raw[key];
    if (seen === undefined) raw[key] = value;
    else if (!EVENTS_QUERY_REPEATABLE.has(key))
      throw new MaxineError(
        'VALIDATION_FAILED',
        `The query parameter ${key.slice(0, 64)} is given twice`,
      );
    else raw[key] = [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const parsed = eventsQuerySchema.safeParse(raw);
  if (!parsed.success) throw validationError('query', parsed.error);
  return parsed.data;
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
