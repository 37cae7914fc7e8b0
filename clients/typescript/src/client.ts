/**
 * The Maxine client: registration with automatic heartbeats, discovery from a local cache fed by
 * the event stream (or from the operator), typed events. REST goes through common/client.ts (the
 * typed API client the repository's tools and tests use too); shapes are common/wire.ts's zod
 * schemas; the cache answers with common/discovery.ts, the operator's own discovery code.
 */
import { ClientError, RegistryClient } from '../../../common/client.js';
import type { TokenSource } from '../../../common/client.js';
import { splitDiscoverQuery } from '../../../common/discovery.js';
import { MaxineError } from '../../../common/errors.js';
import type { Strategy } from '../../../common/resources.js';
import type { DiscoveredInstance, DiscoverQuery, RegisterInput } from '../../../common/wire.js';
import type { BackoffOptions } from './backoff.js';
import { ServiceCache } from './cache.js';
import type { CacheLimits, CacheState } from './cache.js';
import { TypedEmitter } from './emitter.js';
import { Registration } from './registration.js';
import type { RegistrationOptions } from './registration.js';
import { EventStream } from './stream.js';
import type { EventQuery, EventStreamOptions } from './stream.js';

export interface CacheOptions extends CacheLimits {
  /** The services to keep locally: `namespace/name` patterns (`shop/*`, `*\/*`). */
  services: readonly string[];
  /**
   * How long discovery keeps answering from the copy after its stream dropped (it is only late,
   * not wrong, until then); past it discovery asks the operator. Default 30 s.
   */
  maxStaleMs?: number;
}

export interface MaxineClientOptions {
  /** The operator, e.g. `http://127.0.0.1:7710`. */
  baseUrl: string;
  /** A bearer token, or a function asked before each request (see tokenFromFile). */
  token?: TokenSource;
  /** Per REST request, the token function's answer included. Default 5 s. */
  timeoutMs?: number;
  /** The largest REST answer read; a longer one is refused with BUFFER_FULL. Default 32 MiB. */
  maxAnswerBytes?: number;
  /** The namespace of service names given without one. Default `default`. */
  namespace?: string;
  /** Keep a local copy of these services, fed by the event stream, and discover from it. */
  cache?: CacheOptions;
  /** Reconnect and retry timing of the client's loops. */
  backoff?: BackoffOptions;
  /** Event-stream tuning (idle timeout, message and queue bounds) for the cache and events(). */
  stream?: Pick<EventStreamOptions, 'idleTimeoutMs' | 'maxMessageChars' | 'maxBuffered'>;
}

/** A service: `namespace/name`, a bare name (in the client's namespace), or a reference. */
export type ServiceName = string | { namespace: string; name: string };

/** Discovery options (`GET /api/v1/discover`'s query); `metadata` filters by instance metadata. */
export interface DiscoverOptions {
  strategy?: Strategy;
  /** The key of the hashing strategies. */
  key?: string;
  version?: string;
  zone?: string;
  datacenter?: string;
  /** The caller's locality, for `locality-aware`. */
  localZone?: string;
  localDatacenter?: string;
  metadata?: Readonly<Record<string, string>>;
}

export interface ClientEvents {
  /** The cache swapped a snapshot in (the first time: it is ready). */
  synced: [];
  /** The cache's stream or the cache failed (it retries or falls back to the operator). */
  error: [ClientError];
}

export class MaxineClient extends TypedEmitter<ClientEvents> {
  /** The REST client underneath (register, heartbeat, deregister, discover, services). */
  readonly rest: RegistryClient;
  private readonly cache: ServiceCache | undefined;
  private readonly cacheStream: EventStream | undefined;
  private disconnectedAt: number | undefined = 0;
  private readonly registrations = new Set<Registration>();
  private readonly streams = new Set<EventStream>();
  /** register() calls under way: close() waits for them (and they deregister what they got). */
  private readonly registering = new Set<Promise<unknown>>();
  private closed = false;

  constructor(private readonly opts: MaxineClientOptions) {
    super();
    this.rest = new RegistryClient({
      baseUrl: opts.baseUrl,
      token: opts.token,
      timeoutMs: opts.timeoutMs,
      maxAnswerBytes: opts.maxAnswerBytes,
    });
    if (opts.cache !== undefined) {
      this.cache = new ServiceCache(opts.cache);
      this.cacheStream = this.feedCache(this.cache, opts.cache.services);
    }
  }

  /**
   * Registers an instance and keeps it registered (heartbeats, re-registration on 404) until
   * the Registration (or this client) is closed. Rejects with the operator's error (e.g.
   * UNAUTHENTICATED, FORBIDDEN, VALIDATION_FAILED) when the first registration is refused.
   */
  register(input: RegisterInput, options: RegistrationOptions = {}): Promise<Registration> {
    if (this.closed) return Promise.reject(closedError('register()'));
    const registering = this.registerOnce(input, options);
    this.registering.add(registering);
    const forget = (): void => void this.registering.delete(registering);
    registering.then(forget, forget);
    return registering;
  }

  private async registerOnce(
    input: RegisterInput,
    options: RegistrationOptions,
  ): Promise<Registration> {
    const { instance } = await this.rest.register(input);
    if (this.closed) {
      // close() came while the operator answered: take back what it granted, keep nothing alive.
      await this.rest.deregister(instance.id).catch(() => undefined);
      throw closedError('register()');
    }
    const registration = new Registration(this.rest, input, instance, {
      backoff: this.opts.backoff,
      ...options,
    });
    this.registrations.add(registration);
    registration.on('close', () => this.registrations.delete(registration));
    return registration;
  }

  /** One instance of `service`, picked as the operator would (from the cache when it holds it). */
  async discover(service: ServiceName, options: DiscoverOptions = {}): Promise<DiscoveredInstance> {
    const { namespace, name } = this.ref(service);
    if (this.fromCache(namespace, name))
      return (this.cached(namespace, name, options, false) as { instance: DiscoveredInstance })
        .instance;
    return this.rest.discover(namespace, name, queryOf(options));
  }

  /** Every healthy instance of `service` that passes the filters. */
  async discoverAll(
    service: ServiceName,
    options: Omit<DiscoverOptions, 'strategy' | 'key' | 'localZone' | 'localDatacenter'> = {},
  ): Promise<DiscoveredInstance[]> {
    const { namespace, name } = this.ref(service);
    if (this.fromCache(namespace, name))
      return (this.cached(namespace, name, options, true) as { instances: DiscoveredInstance[] })
        .instances;
    return this.rest.discoverAll(namespace, name, queryOf(options));
  }

  /** Whether discovery of `service` would be answered from the local copy now. */
  answersFromCache(service: ServiceName): boolean {
    const { namespace, name } = this.ref(service);
    return this.fromCache(namespace, name);
  }

  /** The cache's state: `empty` before its first snapshot, `synced`, or `overflowed`. */
  get cacheState(): CacheState | undefined {
    return this.cache?.state;
  }

  /** How much the cache holds (its bounds are `maxServices` and `maxInstances`). */
  get cacheSize(): { services: number; instances: number } | undefined {
    return this.cache?.size;
  }

  /** Resolves once the cache holds its first snapshot; rejects after `timeoutMs`. */
  synced(timeoutMs = 10_000): Promise<void> {
    if (this.cache === undefined)
      return Promise.reject(new ClientError(0, 'CLOSED', 'this client keeps no cache'));
    if (this.cache.state === 'synced') return Promise.resolve();
    const stream = this.cacheStream!;
    // A stream stopped for good (a refused `services` pattern, close()) will never sync it.
    const stopped = (): ClientError => stream.error ?? closedError('synced()');
    if (stream.isClosed) return Promise.reject(stopped());
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.off('synced', done);
        stream.off('close', fail);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new ClientError(0, 'NETWORK', `the cache did not sync within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        finish();
        resolve();
      };
      const fail = (): void => {
        finish();
        reject(stopped());
      };
      this.once('synced', done);
      stream.on('close', fail);
    });
  }

  /** A typed event stream (listeners or `for await`); close it, or the client, when done. */
  events(query: EventQuery = {}): EventStream {
    if (this.closed) throw closedError('events()');
    const stream = new EventStream({ ...this.streamOptions(), query });
    this.streams.add(stream);
    stream.on('close', () => this.streams.delete(stream));
    return stream;
  }

  /** Deregisters every registration and closes every stream. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.registering]);
    const results = await Promise.allSettled([
      ...[...this.registrations].map((r) => r.close()),
      ...[...this.streams].map((s) => s.close()),
      this.cacheStream?.close(),
    ]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  private streamOptions(): Omit<EventStreamOptions, 'query'> {
    return {
      baseUrl: this.opts.baseUrl,
      token: this.opts.token,
      backoff: this.opts.backoff,
      ...this.opts.stream,
    };
  }

  private feedCache(cache: ServiceCache, services: readonly string[]): EventStream {
    const stream = new EventStream({
      ...this.streamOptions(),
      query: { services, snapshot: true },
    });
    stream.on('open', () => (this.disconnectedAt = undefined));
    stream.on('disconnect', () => {
      cache.abortResync();
      this.disconnectedAt = Date.now();
    });
    stream.on('error', (err) => this.emit('error', err));
    stream.on('event', (event) => {
      try {
        if (event.type === 'resync_begin' || event.type === 'resync_chunk')
          cache.applyResync(event);
        else if (event.type === 'resync_end') {
          if (cache.applyResync(event)) this.emit('synced');
        } else if (event.type !== 'resync') cache.apply(event);
      } catch (err) {
        if (err instanceof ClientError) this.emit('error', err);
        else throw err;
      }
    });
    return stream;
  }

  private fromCache(namespace: string, name: string): boolean {
    if (this.cache === undefined || !this.cache.has(namespace, name)) return false;
    const since = this.disconnectedAt;
    return since === undefined || Date.now() - since <= (this.opts.cache?.maxStaleMs ?? 30_000);
  }

  private cached(namespace: string, name: string, options: DiscoverOptions, all: boolean): unknown {
    try {
      const parsed = splitDiscoverQuery({ ...queryOf(options), all });
      return JSON.parse(this.cache!.discover(namespace, name, parsed).toString()) as unknown;
    } catch (err) {
      if (err instanceof MaxineError)
        throw new ClientError(err.status, err.code, err.message, err.details);
      throw err;
    }
  }

  private ref(service: ServiceName): { namespace: string; name: string } {
    if (typeof service !== 'string') return service;
    const slash = service.indexOf('/');
    return slash === -1
      ? { namespace: this.opts.namespace ?? 'default', name: service }
      : { namespace: service.slice(0, slash), name: service.slice(slash + 1) };
  }
}

function closedError(what: string): ClientError {
  return new ClientError(0, 'CLOSED', `${what}: the client is closed`);
}

/** The discovery query of `options` (`meta.KEY` for each metadata pair). */
export function queryOf(options: DiscoverOptions): Omit<DiscoverQuery, 'all'> {
  const { metadata, ...rest } = options;
  const query: Record<string, string> = {};
  for (const [key, value] of Object.entries(rest))
    if (typeof value === 'string') query[key] = value;
  for (const [key, value] of Object.entries(metadata ?? {})) query[`meta.${key}`] = value;
  return query;
}
