/**
 * A service's configuration as a versioned value: the content hash (the sidecar's `ETag`,
 * equal wherever the same keys and values are held) and the keys one version changed from the
 * one before (`config_changed.data.changes`). Pure: the operator and the sidecar both use it.
 */
import { createHash } from 'node:crypto';

export type ConfigMap = Readonly<Record<string, string>>;

export interface ConfigChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

/**
 * `sha256:` and the hex digest of the entries sorted by key (JSON of `[key, value]` pairs, so
 * no separator in a key or value can make two configs collide). `{}` and absent hash alike.
 */
export function configHash(config: ConfigMap | undefined): string {
  const entries = Object.entries(config ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `sha256:${createHash('sha256').update(JSON.stringify(entries)).digest('hex')}`;
}

/** The keys added, changed (value differs) and removed from `before` to `after`, each sorted. */
export function configChanges(
  before: ConfigMap | undefined,
  after: ConfigMap | undefined,
): ConfigChanges {
  const was = before ?? {};
  const now = after ?? {};
  const added: string[] = [];
  const changed: string[] = [];
  const removed: string[] = [];
  for (const key of Object.keys(now)) {
    if (!Object.hasOwn(was, key)) added.push(key);
    else if (was[key] !== now[key]) changed.push(key);
  }
  for (const key of Object.keys(was)) if (!Object.hasOwn(now, key)) removed.push(key);
  return { added: added.sort(), changed: changed.sort(), removed: removed.sort() };
}

/** Whether nothing changed. */
export function noChanges(changes: ConfigChanges): boolean {
  return changes.added.length + changes.changed.length + changes.removed.length === 0;
}
