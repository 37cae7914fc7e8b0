/**
 * The `redis` store shared by several standalone operators (`--store redis
 * --store-redis-shared true`, decision 0020). Keys, under `<prefix>`:
 *
 * - `:i:<id>`: one registration (the record of codec.ts as JSON), expiring at its lease's end
 *   plus the removal grace plus one renewal interval (`SET ... PXAT`), rewritten with each
 *   coalesced renewal; `:ids` the set of ids (pruned of keys that expired).
 * - `:seq`: the shared event sequence (INCR); `:events`: the replay log, a stream whose
 *   entry ids are the sequence (`<seq>-0`), trimmed by count and bytes (`:events:bytes`).
 * - `:expiry-lock`: which operator expires leases (SET NX PX, renewed by its holder).
 *
 * A change is one Lua script (COMMIT): the records written or deleted, and the events of the
 * change numbered and appended — atomically, so an operator reading an event finds the
 * record at least as new. Every operator reads the stream (XREAD BLOCK on a connection of its
 * own), applies the records other operators changed to its registry without publishing
 * anything back, and appends every event, its own included, to its event log in stream
 * order: `since=` means the same on every operator and survives a restart.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { registryEventSchema } from '../../common/wire.js';
import type { RegistryEvent, RegistryEventDraft } from '../../common/wire.js';
import type { EventLog } from '../events/log.js';
import type { PersistedInstance, Registry } from '../registry/registry.js';
import { persistedInstanceSchema } from './codec.js';
import type { ConfigHistory } from '../registry/config-history.js';
import { RedisConfigs } from './redis-configs.js';
import { RedisConnection } from './resp.js';
import type { Reply } from './resp.js';
import type { RegistryStore, StoredState } from './store.js';
import { meteredWriteQueue } from './write-queue.js';
import type { BatchWriter, WriteQueue } from './write-queue.js';

export interface SharedRedisStoreOptions {
  /** `redis://host:port` */
  url: string;
  prefix: string;
  renewIntervalMs: number;
  timeoutMs: number;
  /** The expiry lock's time to live; its holder renews it every third of it. */
  lockMs: number;
  /** The removal grace after a lapsed lease (the registry's default `removeAfterSeconds`). */
  graceMs: number;
  /** The replay log's bounds (the event log's own). */
  maxEvents: number;
  maxBytes: number;
  /** The log the stream's events are appended to (numbered in Redis). */
  events: EventLog;
  now: () => number;
  logger: Logger;
  prom: PromRegistry;
  retryMs?: number;
  /** This operator's name in the lock and on what it publishes. */
  identity?: string;
}

type Source = Pick<
  Registry,
  'persisted' | 'persistedAll' | 'applyStored' | 'deregister' | 'getInstance'
>;

/**
 * KEYS: seq, events, events-bytes, ids, then one key per record.
 * ARGV: maxEvents, maxBytes, origin, record count, initial seq, then per record (id, json or
 * '' to delete, expire-at ms), then the events (JSON without seq; '' is a reload marker).
 * Returns the sequence of the first event written (0 when none).
 */
const COMMIT = `
local n = tonumber(ARGV[4])
for i = 1, n do
  local at = 5 + (i - 1) * 3
  local id, rec, exp = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if rec == '' then
    redis.call('DEL', KEYS[4 + i])
    redis.call('SREM', KEYS[4], id)
  else
    redis.call('SET', KEYS[4 + i], rec, 'PXAT', exp)
    redis.call('SADD', KEYS[4], id)
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[5]) end
local first = 0
local added = 0
for i = 6 + n * 3, #ARGV do
  local seq = redis.call('INCR', KEYS[1])
  local id = string.format('%.0f', seq) .. '-0'
  if first == 0 then first = seq end
  if ARGV[i] == '' then
    redis.call('XADD', KEYS[2], id, 'o', ARGV[3], 'k', 'reload')
  else
    redis.call('XADD', KEYS[2], id, 'o', ARGV[3], 'e', ARGV[i])
    added = added + string.len(ARGV[i])
  end
end
local bytes = tonumber(redis.call('GET', KEYS[3]) or '0') + added
while redis.call('XLEN', KEYS[2]) > tonumber(ARGV[1]) or bytes > tonumber(ARGV[2]) do
  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #head == 0 then bytes = 0 break end
  local fields = head[1][2]
  for j = 1, #fields, 2 do
    if fields[j] == 'e' then bytes = bytes - string.len(fields[j + 1]) end
  end
  redis.call('XDEL', KEYS[2], head[1][1])
end
redis.call('SET', KEYS[3], string.format('%.0f', bytes))
return string.format('%.0f', first)
`;

/** KEYS: the sequence. ARGV: a floor. Raises the sequence to the floor, never lowers it. */
const RAISE = `
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
`;

/** KEYS: the lock. ARGV: holder, ttl ms. 1 when the holder has (or now took) the lock. */
const LOCK = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** KEYS: the lock. ARGV: holder. Lets the lock go if this holder has it. */
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`;

/** One stream entry as read. */
export interface StreamEntry {
  seq: number;
  origin: string;
  /** undefined: a reload marker (a publisher dropped events: every reader reloads). */
  event: RegistryEvent | undefined;
}

/** Turns an XREAD / XRANGE reply (entries `[id, [field, value, ...]]`) into entries. */
export function parseEntries(entries: Reply): { entries: StreamEntry[]; invalid: number } {
  const out: StreamEntry[] = [];
  let invalid = 0;
  if (!Array.isArray(entries)) return { entries: out, invalid };
  for (const entry of entries) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !Array.isArray(entry[1])) {
      invalid += 1;
      continue;
    }
    const seq = Number(entry[0].split('-')[0]);
    const fields = new Map<string, string>();
    const flat = entry[1];
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]));
    const origin = fields.get('o') ?? '';
    const text = fields.get('e');
    if (text === undefined) {
      out.push({ seq, origin, event: undefined });
      continue;
    }
    const raw = parseJson(text);
    const event =
      typeof raw === 'object' && raw !== null ? ({ seq, ...raw } as RegistryEvent) : undefined;
    if (!Number.isSafeInteger(seq) || !registryEventSchema.safeParse(event).success) {
      invalid += 1;
      continue;
    }
    out.push({ seq, origin, event });
  }
  return { entries: out, invalid };
}

/**
 * What entries read from the stream ask of a reader that had read up to `readSeq`: the
 * registrations other operators changed, or a full reload (entries it never read were
 * trimmed away, or a publisher dropped events).
 */
export function changesOf(
  entries: readonly StreamEntry[],
  readSeq: number,
  identity: string,
): { reload: 'gap' | 'reload-marker' | undefined; changed: Set<string> } {
  const first = entries[0]?.seq ?? 0;
  let reload: 'gap' | 'reload-marker' | undefined =
    readSeq > 0 && first > readSeq + 1 ? 'gap' : undefined;
  const changed = new Set<string>();
  for (const { origin, event } of entries) {
    if (origin === identity) continue;
    if (event === undefined) reload ??= 'reload-marker';
    else if ('instance' in event && event.instance?.source === 'registration')
      changed.add(event.instance.id);
  }
  return { reload, changed };
}

/** When a record's key expires: lease end, plus the removal grace, plus one renewal interval. */
export function expireAt(p: PersistedInstance, graceMs: number, renewIntervalMs: number): number {
  return p.lastHeartbeat + p.ttlMs + graceMs + renewIntervalMs;
}

interface Pending {
  draft: RegistryEventDraft;
  time: string;
}

export class SharedRedisStore implements RegistryStore, BatchWriter {
  readonly kind = 'redis';
  readonly identity: string;
  private readonly cmd: RedisConnection;
  private readonly configs: RedisConfigs;
  private readonly sub: RedisConnection;
  private readonly queue: WriteQueue;
  private readonly keys: {
    seq: string;
    events: string;
    bytes: string;
    ids: string;
    lock: string;
    prefix: string;
  };
  private readonly where: { redis: string };
  private source: Source | undefined;
  /** Events of this operator's changes, waiting for the next batch. */
  private drafts: Pending[] = [];
  /** Events dropped while Redis could not take them: the next batch publishes a reload. */
  private dropped = 0;
  /** While applying what another operator changed: the registry's events are not published. */
  private applying = false;
  /** The last sequence read from the stream. */
  private readSeq = 0;
  private loaded = false;
  private closed = false;
  private reloadBeforeRead = false;
  private leader = false;
  private lockTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private readonly metrics: {
    applied: Counter;
    reloads: Counter;
    dropped: Counter;
    delay: Histogram;
  };

  constructor(private readonly opts: SharedRedisStoreOptions) {
    const url = new URL(opts.url);
    const host = url.hostname;
    const port = Number(url.port || 6379);
    this.where = { redis: `${host}:${url.port || '6379'}` };
    this.identity =
      opts.identity ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.cmd = new RedisConnection(host, port, opts.timeoutMs);
    // XREAD BLOCK holds its connection: the stream has one of its own.
    this.sub = new RedisConnection(host, port, opts.timeoutMs);
    const p = opts.prefix;
    this.keys = {
      seq: `${p}:seq`,
      events: `${p}:events`,
      bytes: `${p}:events:bytes`,
      ids: `${p}:ids`,
      lock: `${p}:expiry-lock`,
      prefix: p,
    };
    this.configs = new RedisConfigs(this.cmd, p, opts.logger, this.where);
    this.queue = meteredWriteQueue(this, {
      renewIntervalMs: opts.renewIntervalMs,
      ...(opts.retryMs !== undefined && { retryMs: opts.retryMs }),
      logger: opts.logger,
      where: this.where,
      prom: opts.prom,
    });
    const registers = [opts.prom];
    const drafts = () => this.drafts.length;
    new Gauge({
      name: 'maxine_store_unpublished_events',
      help: 'Events of this operator waiting to be published to the operators sharing the store',
      registers,
      collect() {
        this.set(drafts());
      },
    });
    const leading = () => this.leader;
    new Gauge({
      name: 'maxine_store_expiry_leader',
      help: 'Whether this operator holds the shared store expiry lock (1) and expires leases',
      registers,
      collect() {
        this.set(leading() ? 1 : 0);
      },
    });
    this.metrics = {
      applied: new Counter({
        name: 'maxine_store_remote_changes_total',
        help: 'Registrations changed by another operator sharing the store and applied here',
        registers,
      }),
      reloads: new Counter({
        name: 'maxine_store_reloads_total',
        help: 'Full reloads of the registrations from the shared store, by why',
        labelNames: ['reason'],
        registers,
      }),
      dropped: new Counter({
        name: 'maxine_store_dropped_events_total',
        help: 'Events not published because too many waited while the store was unavailable',
        registers,
      }),
      delay: new Histogram({
        name: 'maxine_store_event_delay_seconds',
        help: 'From an event of another operator to its arrival here (clocks of both)',
        buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
        registers,
      }),
    };
  }

  /**
   * The emit of the registry in shared mode: a heartbeat stays local (it only renews, written
   * coalesced); any other event waits for the next batch, which numbers it in Redis. Nothing
   * is published before attach (what the operator starts with is not a change) nor while
   * applying another operator's change (its events come from the stream).
   */
  publish(draft: RegistryEventDraft): void {
    if (draft.type === 'service_heartbeat') {
      this.queue.observe(this.opts.events.append(draft));
      return;
    }
    if (this.source === undefined || this.applying || this.closed) return;
    if (this.drafts.length >= this.opts.maxEvents) {
      this.drafts.shift();
      this.dropped += 1;
      this.metrics.dropped.inc();
    }
    this.drafts.push({ draft, time: new Date(this.opts.now()).toISOString() });
    const instance = 'instance' in draft ? draft.instance : undefined;
    if (instance?.source === 'registration') this.queue.mark([instance.id]);
    else this.queue.schedule();
  }

  /** Reads the replay log's tail into the event log, then the registrations. */
  async load(): Promise<StoredState> {
    try {
      const instances = await this.readAll();
      const configs = await this.configs.load();
      this.loaded = true;
      return { instances, seq: 0, configs };
    } catch (err) {
      // Not fatal: the operator starts not ready, refuses writes, and loads when Redis answers.
      this.opts.logger.error(
        { err, ...this.where },
        'shared store unreachable at start: not ready, writes refused with STORE_UNAVAILABLE until it answers',
      );
      return { instances: [], seq: 0 };
    }
  }

  private async readAll(): Promise<PersistedInstance[]> {
    // The stream first: a change after its tail is read again by the reader; reading the
    // records first could miss one made in between.
    const tail = await this.cmd.command([
      'XREVRANGE',
      this.keys.events,
      '+',
      '-',
      'COUNT',
      String(this.opts.maxEvents),
    ]);
    const { entries } = parseEntries(Array.isArray(tail) ? [...tail].reverse() : []);
    for (const entry of entries)
      if (entry.event !== undefined) this.opts.events.accept(entry.event);
    const last = entries.at(-1)?.seq;
    if (last !== undefined) this.readSeq = last;
    else {
      const top = await this.cmd.command(['GET', this.keys.seq]);
      this.readSeq = typeof top === 'string' ? Number(top) || 0 : 0;
    }
    return this.readRecords();
  }

  private async readRecords(): Promise<PersistedInstance[]> {
    const members = await this.cmd.command(['SMEMBERS', this.keys.ids]);
    const ids = Array.isArray(members) ? members.map(String) : [];
    const out: PersistedInstance[] = [];
    const missing: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const values = await this.cmd.command(['MGET', ...chunk.map((id) => this.keyOf(id))]);
      chunk.forEach((id, j) => {
        const value = Array.isArray(values) ? values[j] : null;
        if (typeof value !== 'string') return missing.push(id);
        const parsed = persistedInstanceSchema.safeParse(parseJson(value));
        if (parsed.success) out.push(parsed.data);
        else
          this.opts.logger.warn(
            { ...this.where, key: this.keyOf(id), instance: id },
            'stored registration is not a valid record: left out',
          );
        return undefined;
      });
    }
    // Keys that expired with their lease leave their id behind: pruned.
    if (missing.length > 0) await this.cmd.command(['SREM', this.keys.ids, ...missing]);
    return out;
  }

  attach(source: Source): void {
    this.source = source;
    this.queue.start();
    if (this.loaded) this.startReading();
    else this.queue.failed('load', new Error('Redis was unreachable at start'));
  }

  /** Shared: a registration this operator's configuration refuses stays for the others. */
  forget(ids: readonly string[]): void {
    if (ids.length > 0)
      this.opts.logger.warn(
        { ...this.where, instances: ids },
        'registrations refused by this operator stay in the shared store for the others',
      );
  }

  get committed(): () => Promise<void> {
    return this.queue.committed;
  }

  available(): boolean {
    return this.loaded && this.queue.available();
  }

  /** Whether this operator holds the expiry lock now. */
  get isExpiryLeader(): boolean {
    return this.leader;
  }

  hasPending(): boolean {
    return this.drafts.length > 0 || this.dropped > 0;
  }

  /** One batch: the records of these instances and the pending events, in one script. */
  async write(ids: readonly string[]): Promise<void> {
    if (this.source === undefined) return;
    const batch = this.drafts;
    const dropped = this.dropped;
    this.drafts = [];
    this.dropped = 0;
    const keys = [this.keys.seq, this.keys.events, this.keys.bytes, this.keys.ids];
    const records: string[] = [];
    // A record written after its lease's end and grace (held by the mass-expiry guard) would
    // be deleted at once by a past PXAT: it lives one renewal interval from now instead.
    const floor = this.opts.now() + this.opts.renewIntervalMs;
    for (const id of ids) {
      const p = this.source.persisted(id);
      keys.push(this.keyOf(id));
      if (p === undefined) records.push(id, '', '0');
      else
        records.push(
          id,
          JSON.stringify(p),
          String(Math.max(floor, expireAt(p, this.opts.graceMs, this.opts.renewIntervalMs))),
        );
    }
    const events = batch.map((d) => JSON.stringify({ time: d.time, ...d.draft }));
    if (dropped > 0) events.unshift('');
    try {
      await this.cmd.command([
        'EVAL',
        COMMIT,
        String(keys.length),
        ...keys,
        String(this.opts.maxEvents),
        String(this.opts.maxBytes),
        this.identity,
        String(ids.length),
        String(Math.floor(this.opts.now()) * 1000),
        ...records,
        ...events,
      ]);
    } catch (err) {
      // Published again with the retry (at least once: a script that ran but whose answer was
      // lost publishes its events twice; they are state notifications).
      this.drafts = [...batch, ...this.drafts];
      this.dropped += dropped;
      throw err;
    }
  }

  /** After a failure (or a start without Redis): Redis answers, and what was missed is read. */
  async recover(): Promise<void> {
    await this.cmd.command(['PING']);
    if (!this.loaded) {
      const instances = await this.readAll();
      this.reconcile(instances, 'start');
      this.loaded = true;
      this.startReading();
    }
  }

  afterBatch(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Runs lease expiry while this operator holds the lock: the lock is taken or renewed every
   * third of its time to live; each sweep first reads the renewals other operators wrote of
   * the leases that lapsed here, then sweeps (the sweep's events are published).
   */
  runExpiry(sweep: () => void, intervalMs: number): void {
    const tryLock = () => {
      void this.lock().catch(() => undefined);
    };
    tryLock();
    this.lockTimer = setInterval(tryLock, Math.max(100, Math.floor(this.opts.lockMs / 3)));
    this.lockTimer.unref();
    let sweeping = false;
    this.sweepTimer = setInterval(() => {
      if (!this.leader || sweeping) return;
      sweeping = true;
      this.refreshLapsed()
        .then(() => {
          if (this.leader) sweep();
        })
        .catch((err: unknown) =>
          this.opts.logger.warn(
            { err, ...this.where },
            'renewals not read before the lease sweep: sweep skipped',
          ),
        )
        .finally(() => {
          sweeping = false;
        });
    }, intervalMs);
    this.sweepTimer.unref();
  }

  private async lock(): Promise<void> {
    if (this.closed) return;
    let held = false;
    try {
      const reply = await this.cmd.command([
        'EVAL',
        LOCK,
        '1',
        this.keys.lock,
        this.identity,
        String(this.opts.lockMs),
      ]);
      held = reply === 1;
    } finally {
      if (held !== this.leader) {
        this.leader = held;
        this.opts.logger.info(
          { ...this.where, operator: this.identity, lockMs: this.opts.lockMs },
          held
            ? 'expiry lock taken: this operator expires leases'
            : 'expiry lock lost: another operator expires leases',
        );
      }
    }
  }

  /** The renewals in Redis of the leases lapsed here (heartbeats other operators took). */
  private async refreshLapsed(): Promise<void> {
    if (this.source === undefined) return;
    const now = this.opts.now();
    const lapsed: string[] = [];
    for (const p of this.source.persistedAll())
      if (now > p.lastHeartbeat + p.ttlMs && !this.queue.isQueued(p.id)) lapsed.push(p.id);
    for (let i = 0; i < lapsed.length; i += 500) {
      const chunk = lapsed.slice(i, i + 500);
      const values = await this.cmd.command(['MGET', ...chunk.map((id) => this.keyOf(id))]);
      const records: PersistedInstance[] = [];
      const expired: string[] = [];
      chunk.forEach((id, j) => {
        const value = Array.isArray(values) ? values[j] : null;
        if (typeof value !== 'string') return expired.push(id);
        const parsed = persistedInstanceSchema.safeParse(parseJson(value));
        const mine = this.source?.persisted(id)?.lastHeartbeat ?? Infinity;
        if (parsed.success && parsed.data.lastHeartbeat > mine) records.push(parsed.data);
        return undefined;
      });
      // Keys that expired with their lease (lease + grace + a renewal interval) leave their id.
      if (expired.length > 0) await this.cmd.command(['SREM', this.keys.ids, ...expired]);
      // Not silently: the expiry leader's view of a lease is the one every operator follows,
      // so a health change a renewal makes here is published like the sweep's.
      for (const p of records) this.source?.applyStored(p);
    }
  }

  private startReading(): void {
    this.reading ??= this.readLoop();
  }

  private async readLoop(): Promise<void> {
    const block = Math.max(10, Math.floor(this.opts.timeoutMs / 2));
    let failedAt: number | undefined;
    while (!this.closed) {
      try {
        if (this.reloadBeforeRead) {
          this.reloadBeforeRead = false;
          await this.reload('resubscribed');
        }
        const reply = await this.sub.command([
          ...['XREAD', 'COUNT', '1000', 'BLOCK', String(block)],
          ...['STREAMS', this.keys.events, `${this.readSeq}-0`],
        ]);
        if (failedAt !== undefined) {
          this.opts.logger.info(
            { ...this.where, downMs: Date.now() - failedAt },
            'shared event stream subscribed again',
          );
          failedAt = undefined;
        }
        if (!Array.isArray(reply) || reply.length === 0) {
          await this.checkSequence();
          continue;
        }
        const stream = reply[0];
        if (!Array.isArray(stream)) continue;
        await this.take(stream[1] ?? []);
      } catch (err) {
        if (this.closed) break;
        if (failedAt === undefined) {
          failedAt = Date.now();
          this.opts.logger.warn(
            { err, ...this.where },
            'shared event stream lost: subscribing again, then reloading every registration',
          );
        }
        this.reloadBeforeRead = true;
        await new Promise((r) => setTimeout(r, this.opts.retryMs ?? 1000).unref());
      }
    }
  }

  /**
   * On a quiet stream: whether Redis's sequence went back below what this operator read (a
   * failover to a replica that missed writes, a restore from an older backup). Then entries
   * are numbered where no reader looks: the sequence is raised above what was read, so new
   * events number above it again, and every registration is read again.
   */
  private async checkSequence(): Promise<void> {
    const top = await this.sub.command(['GET', this.keys.seq]);
    if (typeof top !== 'string' || Number(top) >= this.readSeq) return;
    this.opts.logger.warn(
      { ...this.where, seq: Number(top), read: this.readSeq },
      "the shared store's sequence went back (failover or restore): raising it and reloading",
    );
    await this.sub.command(['EVAL', RAISE, '1', this.keys.seq, String(this.readSeq)]);
    await this.reload('sequence-back');
  }

  /** Entries read from the stream: other operators' changes applied, every event logged. */
  private async take(reply: Reply): Promise<void> {
    const { entries, invalid } = parseEntries(reply);
    if (invalid > 0)
      this.opts.logger.warn({ ...this.where, invalid }, 'stream entries not valid: skipped');
    if (entries.length === 0) return;
    const { reload, changed } = changesOf(entries, this.readSeq, this.identity);
    if (reload !== undefined) await this.reload(reload);
    else if (changed.size > 0) await this.applyIds([...changed]);
    const now = this.opts.now();
    for (const entry of entries) {
      this.readSeq = Math.max(this.readSeq, entry.seq);
      if (entry.event === undefined) continue;
      if (entry.origin !== this.identity)
        this.metrics.delay.observe(Math.max(0, now - Date.parse(entry.event.time)) / 1000);
      this.opts.events.accept(entry.event);
    }
  }

  /** Reads these records and applies them (a missing one is a removal). */
  private async applyIds(ids: string[]): Promise<void> {
    const values = await this.cmd.command(['MGET', ...ids.map((id) => this.keyOf(id))]);
    this.silently(() => {
      ids.forEach((id, i) => {
        const value = Array.isArray(values) ? values[i] : null;
        const parsed =
          typeof value === 'string'
            ? persistedInstanceSchema.safeParse(parseJson(value))
            : undefined;
        if (parsed?.success) this.apply(parsed.data);
        else if (parsed === undefined) this.remove(id);
      });
    });
  }

  /** Every registration read again: what Redis holds is applied, what it does not is removed. */
  private async reload(reason: string): Promise<void> {
    const instances = await this.readRecords();
    this.reconcile(instances, reason);
  }

  private reconcile(instances: PersistedInstance[], reason: string): void {
    const source = this.source;
    if (source === undefined) return;
    this.metrics.reloads.inc({ reason });
    const held = new Set(instances.map((p) => p.id));
    const gone: string[] = [];
    for (const p of source.persistedAll())
      if (!held.has(p.id) && !this.queue.isQueued(p.id)) gone.push(p.id);
    this.silently(() => {
      for (const p of instances) if (!this.queue.isQueued(p.id)) this.apply(p);
      for (const id of gone) this.remove(id);
    });
    this.opts.logger.info(
      { ...this.where, reason, applied: instances.length, removed: gone.length },
      'registrations reloaded from the shared store',
    );
  }

  private apply(p: PersistedInstance): void {
    if (this.source?.applyStored(p) === true) this.metrics.applied.inc();
    else
      this.opts.logger.warn(
        {
          ...this.where,
          instance: p.id,
          kind: 'MaxineService',
          namespace: p.namespace,
          name: p.service,
        },
        'registration of another operator refused here (configuration or limits): not applied',
      );
  }

  private remove(id: string): void {
    if (this.source?.getInstance(id) === undefined) return;
    this.source.deregister(id);
    this.metrics.applied.inc();
  }

  private silently(run: () => void): void {
    this.applying = true;
    try {
      run();
    } finally {
      this.applying = false;
    }
  }

  private keyOf(id: string): string {
    return `${this.keys.prefix}:i:${id}`;
  }

  /** Config versions in `<prefix>:config`, as the single-operator redis store keeps them. */
  keepConfigs(history: ConfigHistory): void {
    this.configs.keep(history);
  }

  async close(): Promise<void> {
    this.configs.stop();
    if (this.lockTimer !== undefined) clearInterval(this.lockTimer);
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    await this.queue.close();
    this.closed = true;
    if (this.leader) {
      this.leader = false;
      await this.cmd.command(['EVAL', UNLOCK, '1', this.keys.lock, this.identity]).catch(() => 0);
    }
    this.sub.close();
    await this.reading;
    this.cmd.close();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
