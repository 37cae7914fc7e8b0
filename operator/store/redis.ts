/**
 * The `redis` store: registrations in one hash (`<prefix>:instances`, instance id → the
 * record of codec.ts as JSON) and the event sequence in `<prefix>:seq`, raised only (a Lua
 * max), written through the same WriteQueue as the file store. A change is answered once
 * Redis acknowledged it; what survives a Redis crash is Redis's own persistence
 * (`appendonly yes`, `appendfsync`), see docs/operations.md.
 *
 * Not yet: several operators sharing one Redis and agreeing (changes published to the others)
 * and keys expiring with their leases.
 */
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { EventLog } from '../events/log.js';
import type { PersistedInstance, Registry } from '../registry/registry.js';
import type { ServiceConfigRecord } from '../../common/config-history.js';
import type { ConfigHistory } from '../registry/config-history.js';
import { persistedInstanceSchema } from './codec.js';
import type { KeptEvents } from './event-file.js';
import { RedisConfigs } from './redis-configs.js';
import { RedisEvents } from './redis-events.js';
import { RedisConnection } from './resp.js';
import type { RegistryStore, StoredState } from './store.js';
import { StoreUnreachableError } from './store.js';
import { meteredWriteQueue } from './write-queue.js';
import type { BatchWriter, WriteQueue } from './write-queue.js';

export interface RedisStoreOptions {
  /** `redis://host:port` */
  url: string;
  prefix: string;
  renewIntervalMs: number;
  /** A command without a reply within this long fails (and the connection is dropped). */
  timeoutMs: number;
  logger: Logger;
  prom: PromRegistry;
  retryMs?: number;
  /** Keep the event log too (`<prefix>:events`, redis-events.ts): `since=` survives a clean restart. */
  keepEvents?: boolean;
}

const RAISE_SEQ = `local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end
return 0`;

type Source = Pick<Registry, 'persisted' | 'persistedAll'>;

export class RedisStore implements RegistryStore, BatchWriter {
  readonly kind = 'redis';
  private readonly redis: RedisConnection;
  private readonly queue: WriteQueue;
  private readonly keys: { instances: string; seq: string };
  private readonly configs: RedisConfigs;
  private readonly kept: RedisEvents | undefined;
  private keptEvents: KeptEvents | undefined;
  private source: Source | undefined;
  private events: EventLog | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly where: { redis: string };

  constructor(private readonly opts: RedisStoreOptions) {
    const url = new URL(opts.url);
    this.where = { redis: `${url.hostname}:${url.port || '6379'}` };
    this.redis = new RedisConnection(url.hostname, Number(url.port || 6379), opts.timeoutMs);
    this.keys = { instances: `${opts.prefix}:instances`, seq: `${opts.prefix}:seq` };
    this.configs = new RedisConfigs(this.redis, opts.prefix, opts.logger, this.where);
    if (opts.keepEvents === true)
      this.kept = new RedisEvents({
        redis: this.redis,
        prefix: opts.prefix,
        logger: opts.logger,
        where: this.where,
      });
    this.queue = meteredWriteQueue(this, {
      renewIntervalMs: opts.renewIntervalMs,
      ...(opts.retryMs !== undefined && { retryMs: opts.retryMs }),
      logger: opts.logger,
      where: this.where,
      prom: opts.prom,
    });
  }

  async load(): Promise<StoredState> {
    let raw: unknown;
    let seq: unknown;
    let configs: ServiceConfigRecord[];
    try {
      raw = await this.redis.command(['HGETALL', this.keys.instances]);
      seq = await this.redis.command(['GET', this.keys.seq]);
      configs = await this.configs.load();
      this.keptEvents = await this.kept?.load();
    } catch (err) {
      throw new StoreUnreachableError(`redis://${this.where.redis}`, (err as Error).message);
    }
    const flat = Array.isArray(raw) ? raw : [];
    const instances: PersistedInstance[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = String(flat[i]);
      const parsed = persistedInstanceSchema.safeParse(parseJson(String(flat[i + 1])));
      if (parsed.success) instances.push(parsed.data);
      else
        this.opts.logger.warn(
          { ...this.where, key: this.keys.instances, instance: id },
          'stored registration is not a valid record: left out',
        );
    }
    return {
      instances,
      seq: typeof seq === 'string' ? Number(seq) || 0 : 0,
      configs,
      ...(this.keptEvents && { events: this.keptEvents }),
    };
  }

  keepConfigs(history: ConfigHistory): void {
    this.configs.keep(history);
  }

  attach(source: Source, events: EventLog): void {
    this.source = source;
    this.events = events;
    this.unsubscribe = events.subscribe((event) => this.queue.observe(event));
    this.kept?.attach(events, this.keptEvents);
    this.queue.start();
  }

  forget(ids: readonly string[]): void {
    if (ids.length > 0) this.queue.mark(ids);
  }

  get committed(): () => Promise<void> {
    return this.queue.committed;
  }

  available(): boolean {
    return this.queue.available();
  }

  /** One batch: an HSET of the instances there, an HDEL of those gone, the sequence raised. */
  async write(ids: readonly string[]): Promise<void> {
    if (this.source === undefined) return;
    const set: string[] = [];
    const gone: string[] = [];
    for (const id of ids) {
      const instance = this.source.persisted(id);
      if (instance === undefined) gone.push(id);
      else set.push(id, JSON.stringify(instance));
    }
    const sent: Promise<unknown>[] = [];
    if (set.length > 0) sent.push(this.redis.command(['HSET', this.keys.instances, ...set]));
    if (gone.length > 0) sent.push(this.redis.command(['HDEL', this.keys.instances, ...gone]));
    const seq = String(this.events?.lastSeq ?? 0);
    sent.push(this.redis.command(['EVAL', RAISE_SEQ, '1', this.keys.seq, seq]));
    await Promise.all(sent);
  }

  async recover(): Promise<void> {
    await this.redis.command(['PING']);
  }

  afterBatch(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    this.configs.stop();
    await this.queue.close();
    await this.kept?.close();
    this.redis.close();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
