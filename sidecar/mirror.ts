/**
 * Keeps the sidecar's registry copy fed from the operator's event stream: a snapshot first,
 * then deltas; after a disconnect it resumes with `since=<last seq>` (the operator replays
 * what was missed, or sends a fresh snapshot when its log no longer reaches back), retrying
 * with capped, jittered back-off. While the operator is away the copy keeps answering.
 */
import WebSocket from 'ws';
import type { MaxineEvent, ServiceRef } from '../common/wire.js';
import type { Logger } from '../operator/telemetry/logger.js';
import { backoffDelay } from './backoff.js';
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
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
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
}

export class RegistryMirror {
  readonly state = new MirrorState();
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private synced = false;
  private connected = false;
  private lastEventAt: number | undefined;
  private reconnects = 0;
  private silence: NodeJS.Timeout | undefined;
  /** The scope the open connection was asked for. */
  private scoped: string[] | undefined;
  private readonly firstSync: Promise<void>;
  private resolveFirstSync: () => void = () => undefined;

  constructor(private readonly opts: MirrorOptions) {
    this.firstSync = new Promise((resolve) => (this.resolveFirstSync = resolve));
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
    };
  }

  /**
   * The scope changed (the service's dependencies did): start again from a snapshot of the
   * new scope, since a resumed stream would not bring the services newly in it.
   */
  rescope(): void {
    if (JSON.stringify(this.opts.scope?.()) === JSON.stringify(this.scoped)) return;
    this.state.lastSeq = undefined;
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
    if (this.state.lastSeq === undefined) url.searchParams.set('snapshot', 'true');
    else url.searchParams.set('since', String(this.state.lastSeq));
    this.scoped = this.opts.scope?.();
    if (this.scoped !== undefined) url.searchParams.set('services', this.scoped.join(','));
    const open = async (): Promise<void> => {
      const token = await this.opts.token?.();
      if (this.stopped) return;
      const ws = new WebSocket(url, {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        handshakeTimeout: 5_000,
      });
      this.ws = ws;
      ws.on('open', () => {
        this.connected = true;
        this.attempt = 0;
        this.heard(ws);
        this.opts.logger.info({ url: url.origin }, 'event stream connected');
      });
      ws.on('ping', () => this.heard(ws));
      ws.on('message', (data: WebSocket.RawData) => {
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
    if (!(status >= 400) || this.attempt % 10 !== 0) {
      this.opts.logger.debug({ err: err.message }, 'event stream socket error');
      return;
    }
    this.opts.logger.warn(
      { status, failures: this.attempt + 1, ...(status === 401 && { hint: TOKEN_HINT }) },
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
    let event: MaxineEvent;
    try {
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.isBuffer(data)
          ? data.toString('utf8')
          : Buffer.from(data).toString('utf8');
      event = JSON.parse(text) as MaxineEvent;
    } catch {
      this.opts.logger.warn('event stream sent something that is not JSON; reconnecting');
      this.ws?.terminate();
      return;
    }
    this.lastEventAt = Date.now();
    const changed = this.state.apply(event);
    if (event.type === 'resync') {
      this.synced = true;
      this.resolveFirstSync();
      this.opts.logger.info({ services: this.state.size, seq: event.seq }, 'registry copy synced');
      this.opts.onResync?.();
    } else if (changed !== undefined) {
      this.opts.onService?.(changed);
    } else if (event.type === 'intention_changed' && event.service !== undefined) {
      this.opts.onIntention?.(event.service);
    }
  }

  private onClose(code: number, reason: string): void {
    const wasConnected = this.connected;
    this.connected = false;
    if (this.silence) clearTimeout(this.silence);
    this.ws = undefined;
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt, {
      baseMs: this.opts.reconnectBaseMs ?? 250,
      maxMs: this.opts.reconnectMaxMs ?? 10_000,
    });
    this.attempt += 1;
    this.reconnects += 1;
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
