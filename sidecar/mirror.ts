/**
 * Keeps the sidecar's registry copy fed from the operator's event stream: a snapshot first,
 * then deltas; after a disconnect it resumes with `since=<last seq>` (the operator replays
 * what was missed, or sends a fresh snapshot when its log no longer reaches back), retrying
 * with capped, jittered back-off that resets only once a snapshot arrived whole (or a
 * connection proved stable), never merely on open. A snapshot arrives in chunks and is
 * swapped in whole at its end; while the operator is away the copy keeps answering. When
 * the operator closes the stream with 4401 (the token expired or was revoked), the token
 * file is read again on the reconnect, as on every connect. The copy includes the intentions
 * in force that the operator lets this sidecar see, for the call authorizer.
 *
 * Operator replicas number their event logs each on their own, so the copy remembers the epoch
 * of the log its last seq came from and sends it with `since=`: a replica with another epoch
 * answers with a snapshot rather than replaying its own events of higher numbers.
 */
import WebSocket from 'ws';
import type { z } from 'zod';
import {
  isResync,
  maxineEventSchema,
  RESYNC_TYPES,
  STREAM_CLOSE,
  STREAM_EPOCH_HEADER,
  streamEpochSchema,
} from '../common/wire.js';
import type { ResyncMessage, ServiceRef } from '../common/wire.js';
import type { Logger } from '../common/logger.js';
import { ReconnectBackoff } from './backoff.js';
import { TOKEN_HINT } from './agent.js';
import { MirrorState } from './mirror-state.js';

export interface MirrorOptions {
  /** The operator's base URL, e.g. http://maxine-operator.maxine-system.svc:7710. */
  operatorUrl: string;
  logger: Logger;
  /** The bearer token to present, if any (read fresh on every connect). */
  token?: () => Promise<string | undefined>;
  /** Called when a service's spec changes (the sidecar's own health check and config). */
  onService?: (ref: ServiceRef) => void;
  /** Called when an intention naming this destination (`name` may be `*`) changes. */
  onIntention?: (destination: ServiceRef) => void;
  /** Called after every resync snapshot. */
  onResync?: () => void;
  /** The services to mirror (`ns/name`, `ns/*`); undefined: every service. */
  scope?: () => string[] | undefined;
  /**
   * The pod's service, sent as `caller=`: the operator then also sends the intentions naming it
   * as a source, whatever their destination, so the scope can take in what they allow.
   */
  caller?: ServiceRef;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A connection open this long resets the back-off even without a snapshot. Default 60 s. */
  reconnectStableMs?: number;
  /**
   * The largest message accepted from the operator. Snapshots come in chunks of
   * `--snapshot-chunk-bytes` (64 KiB by default), so this bounds one chunk, not the registry.
   * Default 16 MiB.
   */
  maxMessageBytes?: number;
  /**
   * A connection that brings nothing (no event, no ping) for this long is dead — a partition
   * or a vanished node closes nothing — and is dropped and reopened. The operator pings every
   * 30 s. Default 75 s.
   */
  silenceMs?: number;
}

export interface MirrorStatus {
  connected: boolean;
  synced: boolean;
  lastSeq: number | undefined;
  lastEventAt: string | undefined;
  reconnects: number;
  /** Messages that failed the event schema since start: logged, counted, never applied. */
  invalidEvents: number;
  /**
   * What the operator sent since start (snapshots included): messages and their payload
   * bytes — what the discovery scope keeps small (bench/sidecar-scope.ts measures it).
   */
  received: { messages: number; bytes: number };
}

export class RegistryMirror {
  readonly state = new MirrorState();
  private ws: WebSocket | undefined;
  private stopped = false;
  private readonly backoff: ReconnectBackoff;
  private timer: NodeJS.Timeout | undefined;
  private synced = false;
  private connected = false;
  private lastEventAt: number | undefined;
  private reconnects = 0;
  private invalidEvents = 0;
  private readonly received = { messages: 0, bytes: 0 };
  private silence: NodeJS.Timeout | undefined;
  /** The scope the open connection was asked for. */
  private scoped: string[] | undefined;
  /**
   * The scope changed: connect for a snapshot (not `since=`) until one arrived whole. A flag,
   * not a cleared `lastSeq`: events the old connection had already received are still applied
   * after it was terminated, and would set `lastSeq` again.
   */
  private snapshotWanted = false;
  private readonly firstSync: Promise<void>;
  /** The epoch of the log `state.lastSeq` is from (undefined: an operator that sends none). */
  private epoch: string | undefined;
  /** The epoch the open connection's operator named at the handshake. */
  private connectionEpoch: string | undefined;
  /** The epoch of the snapshot being received (its `resync_begin`). */
  private resyncEpoch: string | undefined;
  private resolveFirstSync: () => void = () => undefined;

  constructor(private readonly opts: MirrorOptions) {
    this.firstSync = new Promise((resolve) => (this.resolveFirstSync = resolve));
    this.backoff = new ReconnectBackoff({
      baseMs: opts.reconnectBaseMs ?? 250,
      maxMs: opts.reconnectMaxMs ?? 10_000,
      ...(opts.reconnectStableMs !== undefined && { stableMs: opts.reconnectStableMs }),
    });
  }

  /** Starts connecting; resolves at once (the copy fills in the background). */
  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Resolves once the first snapshot has been applied. */
  synchronised(): Promise<void> {
    return this.firstSync;
  }

  status(): MirrorStatus {
    return {
      connected: this.connected,
      synced: this.synced,
      lastSeq: this.state.lastSeq,
      lastEventAt:
        this.lastEventAt === undefined ? undefined : new Date(this.lastEventAt).toISOString(),
      reconnects: this.reconnects,
      invalidEvents: this.invalidEvents,
      received: { ...this.received },
    };
  }

  /**
   * The scope changed (the service's dependencies did): start again from a snapshot of the
   * new scope, since a resumed stream would not bring the services newly in it.
   */
  rescope(): void {
    if (JSON.stringify(this.opts.scope?.()) === JSON.stringify(this.scoped)) return;
    this.snapshotWanted = true;
    this.opts.logger.info({ scope: this.opts.scope?.() }, 'mirror scope changed; resyncing');
    if (this.ws !== undefined) this.ws.terminate();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.silence) clearTimeout(this.silence);
    this.ws?.terminate();
  }

  private connect(): void {
    const url = new URL('/api/v1/events', this.opts.operatorUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // Resume after the last event applied; the first connection asks for a snapshot.
    if (this.state.lastSeq === undefined || this.snapshotWanted)
      url.searchParams.set('snapshot', 'true');
    else {
      url.searchParams.set('since', String(this.state.lastSeq));
      if (this.epoch !== undefined) url.searchParams.set('epoch', this.epoch);
    }
    this.scoped = this.opts.scope?.();
    if (this.scoped !== undefined) url.searchParams.set('services', this.scoped.join(','));
    const caller = this.opts.caller;
    if (caller !== undefined) url.searchParams.set('caller', `${caller.namespace}/${caller.name}`);
    const open = async (): Promise<void> => {
      const token = await this.opts.token?.();
      if (this.stopped) return;
      const ws = new WebSocket(url, {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        handshakeTimeout: 5_000,
        maxPayload: this.opts.maxMessageBytes ?? 16 * 1024 * 1024,
      });
      this.ws = ws;
      this.connectionEpoch = undefined;
      ws.on('upgrade', (res) => {
        const named = streamEpochSchema.safeParse(res.headers[STREAM_EPOCH_HEADER]);
        this.connectionEpoch = named.success ? named.data : undefined;
      });
      ws.on('open', () => {
        this.connected = true;
        this.backoff.opened();
        this.heard(ws);
        this.opts.logger.info({ url: url.origin }, 'event stream connected');
      });
      ws.on('ping', () => this.heard(ws));
      ws.on('message', (data: WebSocket.RawData) => {
        this.received.messages += 1;
        this.received.bytes += Array.isArray(data)
          ? data.reduce((n, b) => n + b.length, 0)
          : data.byteLength;
        this.heard(ws);
        this.onMessage(data);
      });
      ws.on('error', (err) => this.socketError(err));
      ws.on('close', (code, reason) => this.onClose(code, reason.toString()));
    };
    open().catch((err: unknown) => {
      this.opts.logger.warn({ err }, 'could not open the event stream');
      this.onClose(1006, 'open failed');
    });
  }

  /**
   * A refused handshake is the operator answering, not a network problem: say so (the
   * first time of a streak and every tenth), with what to check when it is the token.
   */
  private socketError(err: Error): void {
    const status = Number(/^Unexpected server response: (\d{3})$/.exec(err.message)?.[1]);
    if (!(status >= 400) || this.backoff.attempts % 10 !== 0) {
      this.opts.logger.debug({ err: err.message }, 'event stream socket error');
      return;
    }
    this.opts.logger.warn(
      { status, failures: this.backoff.attempts + 1, ...(status === 401 && { hint: TOKEN_HINT }) },
      `the operator refused the event stream (${status}); retrying`,
    );
  }

  /** Something arrived: the connection lives; restart the silence deadline. */
  private heard(ws: WebSocket): void {
    if (this.silence) clearTimeout(this.silence);
    this.silence = setTimeout(() => {
      this.opts.logger.warn('event stream silent for too long; reconnecting');
      ws.terminate();
    }, this.opts.silenceMs ?? 75_000);
    this.silence.unref();
  }

  private onMessage(data: WebSocket.RawData): void {
    let message: unknown;
    try {
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.isBuffer(data)
          ? data.toString('utf8')
          : Buffer.from(data).toString('utf8');
      message = JSON.parse(text);
    } catch {
      this.opts.logger.warn('event stream sent something that is not JSON; reconnecting');
      this.ws?.terminate();
      return;
    }
    this.lastEventAt = Date.now();
    // The whole message is validated, snapshot chunks included: measured at 1.8 µs per
    // instance on top of JSON.parse's 2.2 µs, 0.3 ms per 64 KiB chunk, 180 ms over a
    // 100k-instance snapshot (bench/envelope-parse.ts), cheap enough not to thin it down.
    const parsed = maxineEventSchema.safeParse(message);
    if (!parsed.success) return this.invalid(message, parsed.error);
    const event = parsed.data;
    if (isResync(event)) return this.onResyncMessage(event);
    if (event.type === 'resync') {
      // The operator stopped sending events until this connection drains; a snapshot follows.
      this.opts.logger.warn(
        { seq: event.seq, reason: event.data.reason },
        'operator marked the event stream behind (slow consumer); a snapshot follows',
      );
      return;
    }
    let changed: ServiceRef | undefined;
    try {
      changed = this.state.apply(event);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    // The seq now kept is a number of this connection's log.
    this.epoch = this.connectionEpoch;
    if (changed !== undefined) {
      this.opts.onService?.(changed);
    } else if (event.type === 'intention_changed') {
      this.opts.onIntention?.(event.service);
    }
  }

  /**
   * A message that fails the event schema is counted and logged with its issues (the first
   * and every 100th after), and not applied. An event is skipped and the stream goes on; a
   * snapshot message abandons the snapshot (a copy missing a chunk must not be swapped in),
   * so the stream starts over from a snapshot on a new connection, as on any protocol error.
   */
  private invalid(message: unknown, error: z.ZodError): void {
    this.invalidEvents += 1;
    const head = typeof message === 'object' && message !== null ? message : {};
    const { type, seq } = head as { type?: unknown; seq?: unknown };
    const resync = typeof type === 'string' && RESYNC_TYPES.has(type);
    if (this.invalidEvents % 100 === 1) {
      this.opts.logger.warn(
        {
          type: typeof type === 'string' ? type.slice(0, 64) : typeof type,
          seq: typeof seq === 'number' ? seq : undefined,
          issues: error.issues.slice(0, 10).map((i) => ({
            path: i.path.join('.'),
            code: i.code,
            message: i.message,
          })),
          invalidEvents: this.invalidEvents,
        },
        resync
          ? 'event stream sent an invalid snapshot message; abandoning the snapshot'
          : 'event stream sent an invalid event; skipped it',
      );
    }
    if (resync) this.protocolError(new Error(`invalid ${String(type)} message`));
  }

  /** A snapshot message (parsed with its schema): applied aside, swapped in at its end. */
  private onResyncMessage(message: ResyncMessage): void {
    if (message.type === 'resync_begin')
      this.resyncEpoch = message.data.epoch ?? this.connectionEpoch;
    let complete: boolean;
    try {
      complete = this.state.applyResync(message);
    } catch (err) {
      return this.protocolError(err);
    }
    if (!complete || message.type !== 'resync_end') return;
    this.epoch = this.resyncEpoch;
    this.synced = true;
    this.snapshotWanted = false;
    this.backoff.synced();
    this.resolveFirstSync();
    const { chunks, instances } = message.data;
    this.opts.logger.info(
      {
        services: this.state.size,
        instances,
        intentions: this.state.intentionCount,
        intentionDefault: this.state.intentionDefault ?? 'not sent by the operator',
        chunks,
        seq: message.seq,
        epoch: this.epoch,
      },
      'registry copy synced',
    );
    this.opts.onResync?.();
  }

  /** The stream broke the protocol: start over from a snapshot on a new connection. */
  private protocolError(err: unknown): void {
    this.opts.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      'event stream sent something unexpected; reconnecting',
    );
    this.state.abortResync();
    this.ws?.terminate();
  }

  private onClose(code: number, reason: string): void {
    const wasConnected = this.connected;
    this.connected = false;
    this.state.abortResync();
    if (this.silence) clearTimeout(this.silence);
    this.ws = undefined;
    if (this.stopped) return;
    const delay = this.backoff.next();
    this.reconnects += 1;
    if (code === STREAM_CLOSE.CREDENTIAL_EXPIRED) {
      this.opts.logger.info(
        { code, reason, retryInMs: delay },
        'the operator closed the event stream: token expired or revoked; reconnecting with the token read again',
      );
      this.timer = setTimeout(() => this.connect(), delay);
      this.timer.unref();
      return;
    }
    const log = wasConnected ? this.opts.logger.warn : this.opts.logger.debug;
    log.call(
      this.opts.logger,
      { code, reason, retryInMs: delay },
      'event stream closed; answering from the last copy while reconnecting',
    );
    this.timer = setTimeout(() => this.connect(), delay);
    this.timer.unref();
  }
}
