/**
 * `spec.configFrom` merged with inline `spec.config` (pure; the operator merges, the sidecar
 * checks Secret values against the digests the operator announced).
 *
 * Precedence: the entries of `configFrom` in order, a later one winning over an earlier one for
 * the same key, then inline `config`, which wins over all (as a container's `env` wins over its
 * `envFrom`). A Secret's values never enter the merged map: a key taken from a Secret is listed
 * in `secrets` with the Secret's name, its key there and a digest of its value
 * (docs/decisions/0023-config-from-secrets.md). The digest is an HMAC keyed by the Secret's
 * `metadata.uid` (the sidecar, which reads the Secret, recomputes it). A uid is not a secret:
 * whoever sees a digest and knows the uid can test guesses of a low-entropy value offline; the
 * decision says what the digest does and does not hide.
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import type { ConfigSource, ServiceSpec } from './resources.js';

/** The most keys a merged config holds, and the most bytes its values hold together. */
export const MAX_MERGED_KEYS = 1024;
export const MAX_MERGED_BYTES = 1024 * 1024;

/** What the operator knows of one referenced object: a ConfigMap's data, a Secret's digests. */
export type ResolvedSource =
  | { kind: 'ConfigMap'; data: Readonly<Record<string, string>> }
  | { kind: 'Secret'; digests: Readonly<Record<string, string>> };

export type SourceKind = ResolvedSource['kind'];

/** The object a `configFrom` entry names. */
export function sourceOf(entry: ConfigSource): { kind: SourceKind; name: string } {
  return entry.secret !== undefined
    ? { kind: 'Secret', name: entry.secret }
    : { kind: 'ConfigMap', name: entry.configMap ?? '' };
}

export const secretKeyRefSchema = z.strictObject({
  /** The Secret (in the service's namespace). */
  secret: z.string().min(1).max(253),
  /** Its key holding the value. */
  key: z.string().min(1).max(253),
  /** `secretDigest(uid, value)`: the sidecar checks the value it reads against it. */
  digest: z.string().min(1).max(100),
});
export type SecretKeyRef = z.infer<typeof secretKeyRefSchema>;

/** Config key → the Secret key its value comes from (on the wire: events, snapshots). */
export const configSecretsSchema = z
  .record(z.string().min(1).max(253), secretKeyRefSchema)
  .refine((m) => Object.keys(m).length <= MAX_MERGED_KEYS, 'too many Secret-sourced keys');
export type ConfigSecrets = z.infer<typeof configSecretsSchema>;

export interface MergedConfig {
  /** Inline and ConfigMap values (never a Secret's). */
  config: Record<string, string>;
  /** Config keys whose values come from Secrets. */
  secrets: ConfigSecrets;
  /** Required objects or keys that are absent, e.g. `ConfigMap app-settings`. */
  missing: string[];
  /** Why the merge is unusable although nothing is missing (too many keys or bytes). */
  tooLarge?: string;
  /** Keys no config can hold (`__proto__`), with where each came from. */
  refused?: string[];
}

/**
 * Config keys refused although they pass CONFIG_KEY: `__proto__` is stripped by every zod
 * record on the wire (events, snapshots, the sidecar's parse), so a config holding it could
 * never reach an application as the operator versioned it. Any other key (`constructor`,
 * `prototype`, `toString`) is kept: every map here has a null prototype.
 */
export const REFUSED_CONFIG_KEYS: ReadonlySet<string> = new Set(['__proto__']);

/** A map with no prototype: any key, `__proto__` and `constructor` included, is own data. */
export function nullMap<V>(entries?: Iterable<readonly [string, V]>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  for (const [k, v] of entries ?? []) out[k] = v;
  return out;
}

/** `hmac-sha256:` and the hex HMAC of `value`, keyed by the Secret's uid. */
export function secretDigest(uid: string, value: Buffer | string): string {
  return `hmac-sha256:${createHmac('sha256', uid).update(value).digest('hex')}`;
}

const CONFIG_KEY = /^[A-Za-z0-9_.-]{1,253}$/;

/** The keys an entry takes from an object holding `available`, and those it misses. */
function pick(
  entry: ConfigSource,
  available: readonly string[],
): { keys: string[]; absent: string[] } {
  if (entry.keys === undefined) return { keys: available.filter(isConfigKey(entry)), absent: [] };
  const have = new Set(available);
  return {
    keys: entry.keys.filter((k) => have.has(k) && isConfigKey(entry)(k)),
    absent: entry.keys.filter((k) => !have.has(k)),
  };
}

const isConfigKey =
  (entry: ConfigSource) =>
  (key: string): boolean =>
    CONFIG_KEY.test((entry.prefix ?? '') + key);

/**
 * Merges `configFrom` (each object looked up with `lookup`; undefined: absent) and `config`.
 * An absent required object or key is listed in `missing`; the caller decides what stays in
 * force (the operator keeps the last complete config).
 */
export function mergeConfig(
  spec: Pick<ServiceSpec, 'config' | 'configFrom'>,
  lookup: (kind: SourceKind, name: string) => ResolvedSource | undefined,
): MergedConfig {
  const config = nullMap<string>();
  const secrets = nullMap<SecretKeyRef>();
  const missing: string[] = [];
  const refused: string[] = [];
  for (const entry of spec.configFrom ?? [])
    applyEntry(entry, lookup, { config, secrets, missing, refused });
  for (const [key, value] of Object.entries(spec.config ?? {})) {
    config[key] = value;
    delete secrets[key];
  }
  const merged: MergedConfig = { config, secrets, missing };
  if (refused.length > 0) merged.refused = refused;
  const tooLarge = sizeProblem(config, secrets);
  if (tooLarge !== undefined) merged.tooLarge = tooLarge;
  return merged;
}

/** One `configFrom` entry laid over what the entries before it gave. */
function applyEntry(
  entry: ConfigSource,
  lookup: (kind: SourceKind, name: string) => ResolvedSource | undefined,
  into: MergedConfig & { refused: string[] },
): void {
  const { config, secrets, missing, refused } = into;
  const { kind, name } = sourceOf(entry);
  const found = lookup(kind, name);
  if (found === undefined) {
    if (entry.optional !== true) missing.push(`${kind} ${name}`);
    return;
  }
  const prefix = entry.prefix ?? '';
  const values = found.kind === 'ConfigMap' ? found.data : found.digests;
  const { keys, absent } = pick(entry, Object.keys(values));
  if (entry.optional !== true) for (const key of absent) missing.push(`${kind} ${name} key ${key}`);
  for (const key of keys) {
    const target = prefix + key;
    if (REFUSED_CONFIG_KEYS.has(target)) {
      refused.push(`${target} (${kind} ${name} key ${key})`);
      continue;
    }
    if (found.kind === 'ConfigMap') {
      config[target] = found.data[key] ?? '';
      delete secrets[target];
    } else {
      secrets[target] = { secret: name, key, digest: found.digests[key] ?? '' };
      delete config[target];
    }
  }
}

function sizeProblem(config: Record<string, string>, secrets: ConfigSecrets): string | undefined {
  const keys = Object.keys(config).length + Object.keys(secrets).length;
  if (keys > MAX_MERGED_KEYS)
    return `the merged config has ${keys} keys, more than ${MAX_MERGED_KEYS}`;
  let bytes = 0;
  for (const value of Object.values(config)) bytes += Buffer.byteLength(value);
  if (bytes > MAX_MERGED_BYTES)
    return `the merged config holds ${bytes} bytes of values, more than ${MAX_MERGED_BYTES}`;
  return undefined;
}

/**
 * The map a config's version and content hash are computed over: the values, and for each
 * Secret-sourced key a marker naming its Secret key and digest (a change of the Secret's value
 * changes the marker, and so the version, without the value ever being held).
 */
export function versionedConfig(
  config: Readonly<Record<string, string>> | undefined,
  secrets: ConfigSecrets | undefined,
): Record<string, string> | undefined {
  if (secrets === undefined || Object.keys(secrets).length === 0) return config;
  const out = nullMap(Object.entries(config ?? {}));
  for (const [key, ref] of Object.entries(secrets))
    out[key] = `secret:${ref.secret}/${ref.key}@${ref.digest}`;
  return out;
}

/** The names of the Secrets a config's Secret-sourced keys come from, sorted. */
export function secretNames(secrets: ConfigSecrets | undefined): string[] {
  return [...new Set(Object.values(secrets ?? {}).map((r) => r.secret))].sort();
}
