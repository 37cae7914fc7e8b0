/**
 * Config versions and their history, per service (pure; the clock is injected). The registry
 * asks here for the version of each config it is given: the same content keeps its version, a
 * different one is the next version. What is kept here outlives the service entry and, through
 * a store (standalone) or the MaxineService status (Kubernetes), the process: a restarted
 * operator given the same config keeps its version, a different one gets version + 1, never a
 * number a sidecar already saw for other content.
 *
 * Each version is kept as a history entry (the last `limit`): hash, time, changed keys, and the
 * values of the keys not marked secret (keys from a Secret are listed as redacted, their values
 * never kept). The full current config is held in memory only, to compute exact changes; after
 * a restart the first change is computed against the last entry, where a redacted key present
 * before and after counts as changed (its old value is unknown).
 *
 * Bounded: `limit` entries per service, `maxServices` services (past it, the least recently
 * changed service without a config now goes first, else the least recently changed), and
 * `maxBytes` of entries (their JSON length) in all: past it, the versions superseded longest
 * ago go first, whichever service they belong to. A service's current version is never dropped
 * for bytes (it is the config in force, which the registry holds anyway, and the base the next
 * change is computed from): the byte bound holds the superseded versions, the others are
 * bounded by `maxServices` × one config (at most 1 MiB, common/config-sources.ts).
 */
import { nullMap } from '../../common/config-sources.js';
import { configChanges, configHash } from '../../common/config-version.js';
import type { ConfigChanges, ConfigMap } from '../../common/config-version.js';
import type { ConfigHistoryEntry, ServiceConfigRecord } from '../../common/config-history.js';
import type { Clock } from './clock.js';

export interface ConfigHistoryOptions {
  clock: Clock;
  /** Versions kept per service. */
  limit: number;
  /** Services kept at most. */
  maxServices: number;
  /** Bytes of entries (JSON) kept at most; superseded versions go first. Default: unbounded. */
  maxBytes?: number;
}

/** A superseded version, in the order versions were superseded (the byte bound drops from the front). */
interface SupersededRef {
  key: string;
  version: number;
}

/** JSON length of each entry, computed once (entries are never changed once made). */
const entrySizes = new WeakMap<ConfigHistoryEntry, number>();
export function entryBytes(entry: ConfigHistoryEntry): number {
  let size = entrySizes.get(entry);
  if (size === undefined) {
    size = Buffer.byteLength(JSON.stringify(entry));
    entrySizes.set(entry, size);
  }
  return size;
}

const recordBytes = (record: ServiceConfigRecord): number =>
  record.entries.reduce((sum, e) => sum + entryBytes(e), 0);

/** What a config given to `next` did to the version. */
export interface ConfigStep {
  version: number;
  /** Set when the version moved: the config after it (undefined: deleted) and the keys changed. */
  change?: { after: ConfigMap | undefined; changes: ConfigChanges };
}

export type ConfigRecordListener = (
  key: { namespace: string; name: string },
  record: ServiceConfigRecord | undefined,
) => void;

const keyOf = (namespace: string, name: string): string => `${namespace}/${name}`;

export class ConfigHistory {
  /** Least recently changed first (a change re-inserts). */
  private readonly records = new Map<string, ServiceConfigRecord>();
  /** The config in force, when this process was given it (null: none); memory only. */
  private readonly current = new Map<string, ConfigMap | null>();
  private readonly listeners = new Set<ConfigRecordListener>();
  /** Entries and services dropped to stay within the bounds (`bytes`: entries, for the byte bound). */
  readonly evictions = { entries: 0, services: 0, bytes: 0 };
  /** Bytes of each record's entries, and their sum. */
  private readonly sizes = new Map<string, { bytes: number; entries: number }>();
  private totalBytes = 0;
  private totalEntries = 0;
  /**
   * Records whose config was deleted (hash null), in the records' order: the first to go past
   * `maxServices`, found without a scan of every record (a start seeding more records than
   * the bound, or a flood of new services, would otherwise cost a scan per eviction).
   */
  private readonly deleted = new Set<string>();
  /** Superseded versions, oldest supersession first (from `head`); stale ones are skipped. */
  private superseded: SupersededRef[] = [];
  private head = 0;

  constructor(readonly opts: ConfigHistoryOptions) {}

  /** Records a store kept (before any config is given); records already known stay. */
  seed(records: Iterable<ServiceConfigRecord>): void {
    const older: (SupersededRef & { time: string })[] = [];
    for (const record of records) {
      const key = keyOf(record.namespace, record.name);
      if (this.records.has(key)) continue;
      const entries = record.entries.slice(-this.opts.limit);
      this.put(key, { ...record, entries });
      for (const e of entries.slice(0, -1)) older.push({ key, version: e.version, time: e.time });
      this.bound();
    }
    older.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    for (const { key, version } of older) this.superseded.push({ key, version });
    this.boundBytes();
  }

  /**
   * The version and hash a MaxineService's status recorded (Kubernetes mode): taken when this
   * process knows less (the status survives the operator, the process does not).
   */
  seedVersion(namespace: string, name: string, version: number, hash: string | null): void {
    const key = keyOf(namespace, name);
    const known = this.records.get(key);
    if (known !== undefined && known.version >= version) return;
    this.put(key, { namespace, name, version, hash, entries: known?.entries ?? [] });
    this.bound();
  }

  /**
   * The version of `after` (undefined: the service has no config now). `secretKeys`: keys
   * whose values came from a Secret, never kept.
   */
  next(
    namespace: string,
    name: string,
    after: ConfigMap | undefined,
    secretKeys: ReadonlySet<string> = new Set(),
  ): ConfigStep {
    const key = keyOf(namespace, name);
    const record = this.records.get(key);
    const hash = after === undefined ? null : configHash(after);
    const known = this.current.get(key);
    this.current.set(key, after ?? null);
    if (record !== undefined && record.hash === hash) return { version: record.version };
    if (record === undefined && after === undefined) return { version: 0 };
    const changes =
      known !== undefined
        ? configChanges(known ?? undefined, after)
        : changesFromEntry(record?.entries.at(-1), after);
    const version = (record?.version ?? 0) + 1;
    const time = new Date(this.opts.clock.now()).toISOString();
    const entry = entryOf({ version, hash, time, changes }, after, secretKeys);
    const entries = this.appended(record?.entries ?? [], entry);
    this.replace(key, record, { namespace, name, version, hash, entries });
    return { version, change: { after, changes } };
  }

  /** `record`'s successor `next` becomes the most recently changed; the bounds apply. */
  private replace(
    key: string,
    record: ServiceConfigRecord | undefined,
    next: ServiceConfigRecord,
  ): void {
    this.records.delete(key);
    this.put(key, next);
    const previous = record?.entries.at(-1);
    if (previous !== undefined) this.supersede(key, previous.version);
    this.bound();
    // The record is announced once, as the byte bound leaves it (never without its new entry).
    this.boundBytes(key);
    this.notify(next.namespace, next.name, this.records.get(key));
  }

  /** `entries` and `entry`, the oldest dropped past the limit. */
  private appended(entries: ConfigHistoryEntry[], entry: ConfigHistoryEntry): ConfigHistoryEntry[] {
    const out = [...entries, entry];
    const over = out.length - this.opts.limit;
    if (over > 0) {
      this.evictions.entries += over;
      out.splice(0, over);
    }
    return out;
  }

  /** The version and hash in force, when any config was ever seen. */
  state(namespace: string, name: string): { version: number; hash: string | null } | undefined {
    const record = this.records.get(keyOf(namespace, name));
    return record && { version: record.version, hash: record.hash };
  }

  /** The service's record (entries oldest first). */
  record(namespace: string, name: string): ServiceConfigRecord | undefined {
    return this.records.get(keyOf(namespace, name));
  }

  /** Every record (what a store writes whole). */
  all(): IterableIterator<ServiceConfigRecord> {
    return this.records.values();
  }

  /** Services and entries kept now. */
  get size(): { services: number; entries: number } {
    return { services: this.records.size, entries: this.totalEntries };
  }

  /** JSON length of the entries kept now (what `maxBytes` bounds). */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Sets a record, keeping the byte count. */
  private put(key: string, record: ServiceConfigRecord): void {
    const was = this.sizes.get(key);
    const now = { bytes: recordBytes(record), entries: record.entries.length };
    this.totalBytes += now.bytes - (was?.bytes ?? 0);
    this.totalEntries += now.entries - (was?.entries ?? 0);
    this.sizes.set(key, now);
    const moved = !this.records.has(key);
    this.records.set(key, record);
    if (record.hash !== null) this.deleted.delete(key);
    else if (moved || !this.deleted.has(key)) {
      this.deleted.delete(key);
      this.deleted.add(key);
    }
  }

  private remove(key: string): void {
    this.totalBytes -= this.sizes.get(key)?.bytes ?? 0;
    this.totalEntries -= this.sizes.get(key)?.entries ?? 0;
    this.sizes.delete(key);
    this.records.delete(key);
    this.deleted.delete(key);
    this.current.delete(key);
  }

  private supersede(key: string, version: number): void {
    this.superseded.push({ key, version });
    // Refs to versions dropped otherwise (count bound, evicted services) are skipped when met;
    // past twice what is kept, the queue is rebuilt from what is live.
    const queued = this.superseded.length - this.head;
    if (queued > 2 * this.totalEntries + 1024) {
      this.superseded = this.superseded.slice(this.head).filter((ref) => this.isSuperseded(ref));
      this.head = 0;
    }
  }

  private isSuperseded({ key, version }: SupersededRef): boolean {
    const entries = this.records.get(key)?.entries ?? [];
    return entries.slice(0, -1).some((e) => e.version === version);
  }

  /**
   * Drops the versions superseded longest ago while the entries exceed `maxBytes`; each record
   * changed is announced, except `quiet` (the caller announces it).
   */
  private boundBytes(quiet?: string): void {
    const max = this.opts.maxBytes;
    if (max === undefined) return;
    while (this.totalBytes > max && this.head < this.superseded.length) {
      const ref = this.superseded[this.head] as SupersededRef;
      this.head += 1;
      const record = this.records.get(ref.key);
      if (record === undefined || !this.isSuperseded(ref)) continue;
      const entries = record.entries.filter((e) => e.version !== ref.version);
      this.put(ref.key, { ...record, entries });
      this.evictions.bytes += 1;
      if (ref.key !== quiet) this.notify(record.namespace, record.name, this.records.get(ref.key));
    }
    if (this.head > 1024 && this.head * 2 > this.superseded.length) {
      this.superseded = this.superseded.slice(this.head);
      this.head = 0;
    }
  }

  /** Called with each record that changed (undefined: dropped), for a store to keep. */
  subscribe(listener: ConfigRecordListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(namespace: string, name: string, record: ServiceConfigRecord | undefined): void {
    for (const listener of this.listeners) listener({ namespace, name }, record);
  }

  private bound(): void {
    while (this.records.size > this.opts.maxServices) {
      const key: string | undefined =
        this.deleted.values().next().value ?? this.records.keys().next().value;
      const victim = key === undefined ? undefined : this.records.get(key);
      if (key === undefined || victim === undefined) return;
      this.remove(key);
      this.evictions.services += 1;
      this.notify(victim.namespace, victim.name, undefined);
    }
  }
}

/** A history entry: the values of the keys not from a Secret, the others named as redacted. */
function entryOf(
  head: Pick<ConfigHistoryEntry, 'version' | 'hash' | 'time' | 'changes'>,
  after: ConfigMap | undefined,
  secretKeys: ReadonlySet<string>,
): ConfigHistoryEntry {
  const values = nullMap<string>();
  const redacted: string[] = [];
  for (const [k, v] of Object.entries(after ?? {})) {
    if (secretKeys.has(k)) redacted.push(k);
    else values[k] = v;
  }
  return { ...head, values, redacted: redacted.sort() };
}

/**
 * The keys changed from a kept entry (after a restart: the values of its redacted keys are
 * unknown, so such a key present before and after counts as changed).
 */
export function changesFromEntry(
  entry: ConfigHistoryEntry | undefined,
  after: ConfigMap | undefined,
): ConfigChanges {
  if (entry === undefined || entry.hash === null) return configChanges(undefined, after);
  const known = configChanges(entry.values, after);
  const now = after ?? {};
  const redacted = entry.redacted.filter((k) => Object.hasOwn(now, k));
  const gone = entry.redacted.filter((k) => !Object.hasOwn(now, k));
  const added = known.added.filter((k) => !entry.redacted.includes(k));
  return {
    added,
    changed: [...known.changed, ...redacted].sort(),
    removed: [...known.removed, ...gone].sort(),
  };
}
