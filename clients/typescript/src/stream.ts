/**
 * The operator's event stream as Server-Sent Events over `fetch` (docs/events.md): every
 * message parsed with the envelope's zod schema (`maxineEventSchema`, a discriminated union on
 * `type`), resumed after a drop with `Last-Event-ID` (the operator replays what was missed, or
 * sends a snapshot when it cannot), reconnected with back-off and jitter. SSE rather than
 * WebSocket: `fetch` streams in Node 20 and browsers with no dependency, and carries an
 * `Authorization` header, which a browser's WebSocket cannot (decision 0034).
 *
 * Consumed with typed listeners (`on('event', …)`) or as an async iterator with a bounded queue.
 */
import { authorizationOf, ClientError, errorOfAnswer } from '../../../common/client.js';
import type { TokenSource } from '../../../common/client.js';
import { maxineEventSchema } from '../../../common/wire.js';
import type { EventType, MaxineEvent } from '../../../common/wire.js';
import { backoffDelayMs } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import { TypedEmitter } from './emitter.js';
import { closeOfComment, SseParser } from './sse.js';

/** Which events to receive (`eventsQuerySchema` in common/wire.ts). */
export interface EventQuery {
  /** `namespace/name` patterns (`shop/*`, `*\/orders`); default all the caller may read. */
  services?: readonly string[];
  /** Event types (default: all but `service_heartbeat`). */
  types?: readonly EventType[];
  /** Start with a snapshot of the services (`resync_begin` … `resync_end`). */
  snapshot?: boolean;
  version?: string;
  zone?: string;
  datacenter?: string;
  /** Instance metadata that must all match. */
  metadata?: Readonly<Record<string, string>>;
}

export interface EventStreamOptions {
  /** The operator, e.g. `http://127.0.0.1:7710`. */
  baseUrl: string;
  token?: TokenSource;
  query?: EventQuery;
  backoff?: BackoffOptions;
  /**
   * No bytes for this long (the operator sends `: ping` every 15 s on an idle stream): the
   * connection is taken for dead and made again. Default 45 s.
   */
  idleTimeoutMs?: number;
  /** The largest single message accepted (default 8 Mi characters). */
  maxMessageChars?: number;
  /** Events an async iterator may hold before its reader takes them (default 10,000). */
  maxBuffered?: number;
  /** For tests: the random source of the back-off's jitter. */
  random?: () => number;
}

export interface StreamEvents {
  /** Every message of the stream, parsed and typed. */
  event: [MaxineEvent];
  /** A connection was made (the operator's response head arrived). */
  open: [{ epoch: string | undefined; resumed: boolean }];
  /** A connection ended; `code` is the operator's close code when it announced one. */
  disconnect: [{ code: number | undefined; reason: string }];
  /** A connection attempt or a message failed; the stream retries unless it closed. */
  error: [ClientError];
  /** The stream stopped for good (close(), or a refusal retrying cannot fix). */
  close: [ClientError | undefined];
}

/** How long a connection that delivered events must have lasted to reset the back-off. */
const MIN_HEALTHY_MS = 1000;

/** Refusals that the same request will get again: stop instead of retrying. */
const FATAL = new Set(['VALIDATION_FAILED', 'ROUTE_NOT_FOUND', 'METHOD_NOT_ALLOWED']);

export class EventStream extends TypedEmitter<StreamEvents> {
  /** `EPOCH:SEQ` of the last message that carried an id: where a reconnect resumes. */
  lastEventId: string | undefined;
  private closed = false;
  private closeError: ClientError | undefined;
  private controller: AbortController | undefined;
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;

  constructor(private readonly opts: EventStreamOptions) {
    super();
    this.done = this.run();
  }

  /** Whether the stream stopped for good. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops the stream; resolves once its connection is gone. */
  async close(): Promise<void> {
    this.stop(undefined);
    await this.done;
  }

  [Symbol.asyncIterator](): AsyncIterator<MaxineEvent> {
    return new EventQueue(this, this.opts.maxBuffered ?? 10_000);
  }

  /** The error the stream stopped with (undefined for close() or while it runs). */
  get error(): ClientError | undefined {
    return this.closeError;
  }

  private stop(error: ClientError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    this.controller?.abort();
    this.wake?.();
    this.emit('close', error);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      let retryAfterMs: number | undefined;
      const started = Date.now();
      let healthy = false;
      try {
        healthy = await this.connectOnce();
      } catch (err) {
        const error = asClientError(err);
        if (this.closed) break;
        this.emit('error', error);
        if (FATAL.has(error.code)) {
          this.stop(error);
          break;
        }
        retryAfterMs = error.retryAfterMs;
      }
      if (this.closed) break;
      // A connection that delivered events starts the back-off over, unless it ended within a
      // second of opening: one that is cut after every event would otherwise be remade ~5 times
      // a second forever.
      const lasted = Date.now() - started;
      attempt = (healthy && lasted >= MIN_HEALTHY_MS) || lasted > 30_000 ? 0 : attempt + 1;
      const delay = backoffDelayMs(attempt, this.opts.backoff, this.opts.random, retryAfterMs);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** One connection, read to its end; true when it delivered an event or a whole snapshot. */
  private async connectOnce(): Promise<boolean> {
    const controller = new AbortController();
    this.controller = controller;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    const authorization = await authorizationOf(this.opts.token);
    if (authorization !== undefined) headers.authorization = authorization;
    const resumed = this.lastEventId !== undefined;
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    const url = `${this.opts.baseUrl.replace(/\/+$/, '')}/api/v1/events${queryOf(this.opts.query)}`;
    const idle = new IdleTimer(this.opts.idleTimeoutMs ?? 45_000, () => controller.abort());
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: controller.signal });
    } catch (err) {
      idle.stop();
      throw new ClientError(0, 'NETWORK', `GET /api/v1/events: ${(err as Error).message}`);
    }
    try {
      if (!res.ok) throw await refusal(res);
      if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream') || !res.body)
        throw new ClientError(
          res.status,
          'BAD_RESPONSE',
          'the event stream is not text/event-stream',
        );
      this.emit('open', { epoch: res.headers.get('maxine-stream-epoch') ?? undefined, resumed });
      return await this.read(res.body, idle);
    } catch (err) {
      if (this.closed) return false;
      throw err instanceof ClientError
        ? err
        : new ClientError(0, 'NETWORK', `the event stream broke: ${(err as Error).message}`);
    } finally {
      idle.stop();
      controller.abort();
    }
  }

  private async read(body: ReadableStream<Uint8Array>, idle: IdleTimer): Promise<boolean> {
    const parser = new SseParser(this.opts.maxMessageChars);
    const decoder = new TextDecoder();
    const reader = body.getReader();
    let announced: { code: number; reason: string } | undefined;
    let healthy = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        idle.touch();
        for (const item of parser.push(decoder.decode(value, { stream: true }))) {
          if (item.kind === 'comment') {
            announced = closeOfComment(item.text) ?? announced;
            continue;
          }
          const event = this.parse(item.message.data);
          if (event === undefined) continue;
          if (item.message.id !== undefined) this.lastEventId = item.message.id;
          if (event.type !== 'resync_begin' && event.type !== 'resync_chunk') healthy = true;
          this.emit('event', event);
        }
      }
    } finally {
      reader.releaseLock();
      this.emit('disconnect', { code: announced?.code, reason: announced?.reason ?? '' });
    }
    if (announced?.code === 4401)
      this.emit(
        'error',
        new ClientError(
          401,
          'UNAUTHENTICATED',
          `the operator closed the stream: ${announced.reason}`,
        ),
      );
    return healthy;
  }

  private parse(data: string): MaxineEvent | undefined {
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      this.emit('error', new ClientError(200, 'BAD_RESPONSE', 'an event is not JSON'));
      return undefined;
    }
    const parsed = maxineEventSchema.safeParse(json);
    if (parsed.success) return parsed.data;
    const type = (json as { type?: unknown } | null)?.type;
    this.emit(
      'error',
      new ClientError(
        200,
        'BAD_RESPONSE',
        `an event (${String(type)}) does not parse: ${parsed.error.message}`,
        {
          type,
        },
      ),
    );
    return undefined;
  }
}

/** The query string of `query` (`eventsQuerySchema`). */
export function queryOf(query: EventQuery = {}): string {
  const params = new URLSearchParams();
  if (query.services !== undefined && query.services.length > 0)
    params.set('services', query.services.join(','));
  if (query.types !== undefined && query.types.length > 0)
    params.set('types', query.types.join(','));
  if (query.snapshot === true) params.set('snapshot', 'true');
  for (const key of ['version', 'zone', 'datacenter'] as const) {
    const value = query[key];
    if (value !== undefined) params.set(key, value);
  }
  for (const [key, value] of Object.entries(query.metadata ?? {}))
    params.append('metadata', `${key}=${value}`);
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/** The operator's error bodies are small: a refusal's body is read up to this much, no further. */
const MAX_REFUSAL_BYTES = 64 * 1024;

async function refusal(res: Response): Promise<ClientError> {
  let body: unknown;
  try {
    body = JSON.parse(await boundedText(res, MAX_REFUSAL_BYTES));
  } catch {
    body = undefined;
  }
  return errorOfAnswer(res.status, body, res.headers.get('retry-after'));
}

/** The body's first `max` bytes as text; the rest is not read (the connection is dropped). */
async function boundedText(res: Response, max: number): Promise<string> {
  if (res.body === null) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  try {
    while (size <= max) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      size += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return ''; // longer than any of the operator's error bodies: not one
}

function asClientError(err: unknown): ClientError {
  return err instanceof ClientError ? err : new ClientError(0, 'NETWORK', String(err));
}

/** Aborts a connection that has been silent for `ms`. */
class IdleTimer {
  private timer: ReturnType<typeof setTimeout>;

  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.timer = setTimeout(onIdle, ms);
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.onIdle, this.ms);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/**
 * One async iterator's queue: bounded. A reader that falls `max` events behind gets BUFFER_FULL
 * from its next `next()` (and is detached) rather than a queue that grows without end.
 */
class EventQueue implements AsyncIterator<MaxineEvent> {
  private readonly queue: MaxineEvent[] = [];
  private waiting: ((result: IteratorResult<MaxineEvent>) => void) | undefined;
  private failWaiting: ((err: ClientError) => void) | undefined;
  private failure: ClientError | undefined;
  private ended = false;
  private readonly onEvent = (event: MaxineEvent): void => this.push(event);
  private readonly onClose = (error: ClientError | undefined): void => this.end(error);

  constructor(
    private readonly stream: EventStream,
    private readonly max: number,
  ) {
    stream.on('event', this.onEvent);
    stream.on('close', this.onClose);
    if (stream.isClosed) this.end(stream.error);
  }

  next(): Promise<IteratorResult<MaxineEvent>> {
    const event = this.queue.shift();
    if (event !== undefined) return Promise.resolve({ value: event, done: false });
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      return Promise.reject(failure);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<MaxineEvent>> {
    this.detach();
    this.ended = true;
    this.queue.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  private push(event: MaxineEvent): void {
    if (this.waiting !== undefined) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value: event, done: false });
      return;
    }
    if (this.queue.length >= this.max) {
      this.end(
        new ClientError(
          0,
          'BUFFER_FULL',
          `the iterator's reader fell ${this.max} events behind (maxBuffered); events after them were not kept`,
        ),
      );
      return;
    }
    this.queue.push(event);
  }

  private end(error: ClientError | undefined): void {
    if (this.ended) return;
    this.detach();
    this.ended = true;
    if (this.waiting !== undefined) {
      const [resolve, reject] = [this.waiting, this.failWaiting];
      this.waiting = this.failWaiting = undefined;
      if (error === undefined) resolve({ value: undefined, done: true });
      else reject?.(error);
      return;
    }
    this.failure = error;
  }

  private detach(): void {
    this.stream.off('event', this.onEvent);
    this.stream.off('close', this.onClose);
  }
}
