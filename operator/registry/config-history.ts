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
 * changed service without a config now goes first, else the least recently changed).
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
}

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
  /** Entries and services dropped to stay within the bounds. */
  readonly evictions = { entries: 0, services: 0 };

  constructor(readonly opts: ConfigHistoryOptions) {}

  /** Records a store kept (before any config is given); records already known stay. */
  seed(records: Iterable<ServiceConfigRecord>): void {
    for (const record of records) {
      const key = keyOf(record.namespace, record.name);
      if (this.records.has(key)) continue;
      const entries = record.entries.slice(-this.opts.limit);
      this.records.set(key, { ...record, entries });
      this.bound();
    }
  }

  /**
   * The version and hash a MaxineService's status recorded (Kubernetes mode): taken when this
   * process knows less (the status survives the operator, the process does not).
   */
  seedVersion(namespace: string, name: string, version: number, hash: string | null): void {
    const key = keyOf(namespace, name);
    const known = this.records.get(key);
    if (known !== undefined && known.version >= version) return;
    this.records.set(key, { namespace, name, version, hash, entries: known?.entries ?? [] });
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
    const next: ServiceConfigRecord = { namespace, name, version, hash, entries };
    this.records.delete(key);
    this.records.set(key, next);
    this.bound();
    this.notify(namespace, name, next);
    return { version, change: { after, changes } };
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
    let entries = 0;
    for (const r of this.records.values()) entries += r.entries.length;
    return { services: this.records.size, entries };
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
      let victim: ServiceConfigRecord | undefined;
      for (const r of this.records.values()) {
        if (r.hash === null) {
          victim = r;
          break;
        }
      }
      victim ??= this.records.values().next().value as ServiceConfigRecord;
      const key = keyOf(victim.namespace, victim.name);
      this.records.delete(key);
      this.current.delete(key);
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
