import { describe, expect, it } from '@jest/globals';
import {
  MAX_MERGED_KEYS,
  mergeConfig,
  secretDigest,
  secretNames,
  versionedConfig,
} from './config-sources.js';
import type { ResolvedSource, SourceKind } from './config-sources.js';
import { configChanges, configHash } from './config-version.js';
import { serviceSpecSchema } from './resources.js';

const objects: Record<string, ResolvedSource> = {
  'ConfigMap/base': {
    kind: 'ConfigMap',
    data: { mode: 'base', color: 'blue', 'log.level': 'info' },
  },
  'ConfigMap/overlay': { kind: 'ConfigMap', data: { mode: 'overlay', password: 'not-secret' } },
  'Secret/db': {
    kind: 'Secret',
    digests: { password: secretDigest('uid-1', 's3cret'), user: secretDigest('uid-1', 'app') },
  },
};
const lookup = (kind: SourceKind, name: string) => objects[`${kind}/${name}`];
const spec = (raw: unknown) => serviceSpecSchema.parse(raw);

describe('mergeConfig: precedence', () => {
  const cases: {
    name: string;
    spec: unknown;
    config: Record<string, string>;
    secretKeys: string[];
    missing?: string[];
  }[] = [
    { name: 'inline only', spec: { config: { a: '1' } }, config: { a: '1' }, secretKeys: [] },
    {
      name: 'a later source wins over an earlier one',
      spec: { configFrom: [{ configMap: 'base' }, { configMap: 'overlay' }] },
      config: { mode: 'overlay', color: 'blue', 'log.level': 'info', password: 'not-secret' },
      secretKeys: [],
    },
    {
      name: 'inline config wins over every source',
      spec: { config: { mode: 'inline' }, configFrom: [{ configMap: 'overlay' }] },
      config: { mode: 'inline', password: 'not-secret' },
      secretKeys: [],
    },
    {
      name: 'a Secret after a ConfigMap takes the key out of the values',
      spec: { configFrom: [{ configMap: 'overlay' }, { secret: 'db' }] },
      config: { mode: 'overlay' },
      secretKeys: ['password', 'user'],
    },
    {
      name: 'a ConfigMap after a Secret takes the key back',
      spec: { configFrom: [{ secret: 'db' }, { configMap: 'overlay' }] },
      config: { mode: 'overlay', password: 'not-secret' },
      secretKeys: ['user'],
    },
    {
      name: 'inline config wins over a Secret',
      spec: { config: { user: 'inline' }, configFrom: [{ secret: 'db' }] },
      config: { user: 'inline' },
      secretKeys: ['password'],
    },
    {
      name: 'keys and prefix select and rename',
      spec: {
        configFrom: [
          { configMap: 'base', keys: ['color'], prefix: 'ui.' },
          { secret: 'db', keys: ['password'], prefix: 'db.' },
        ],
      },
      config: { 'ui.color': 'blue' },
      secretKeys: ['db.password'],
    },
    {
      name: 'a missing required object or key is reported',
      spec: { configFrom: [{ configMap: 'gone' }, { secret: 'db', keys: ['token'] }] },
      config: {},
      secretKeys: [],
      missing: ['ConfigMap gone', 'Secret db key token'],
    },
    {
      name: 'an optional one is not',
      spec: {
        configFrom: [
          { configMap: 'gone', optional: true },
          { secret: 'db', keys: ['token'], optional: true },
        ],
      },
      config: {},
      secretKeys: [],
    },
  ];
  it.each(cases)('$name', (c) => {
    const merged = mergeConfig(spec(c.spec), lookup);
    expect(merged.config).toEqual(c.config);
    expect(Object.keys(merged.secrets).sort()).toEqual(c.secretKeys);
    expect(merged.missing).toEqual(c.missing ?? []);
  });

  it('names the Secret key and digest of each Secret-sourced key, never its value', () => {
    const merged = mergeConfig(spec({ configFrom: [{ secret: 'db', prefix: 'db.' }] }), lookup);
    expect(merged.secrets['db.password']).toEqual({
      secret: 'db',
      key: 'password',
      digest: secretDigest('uid-1', 's3cret'),
    });
    expect(JSON.stringify(merged)).not.toContain('s3cret');
    expect(secretNames(merged.secrets)).toEqual(['db']);
  });
});

describe('secretDigest', () => {
  it('is keyed by the uid: the same value under another Secret uid digests differently', () => {
    expect(secretDigest('uid-1', 'v')).toBe(secretDigest('uid-1', Buffer.from('v')));
    expect(secretDigest('uid-1', 'v')).not.toBe(secretDigest('uid-2', 'v'));
    expect(secretDigest('uid-1', 'v')).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
  });

  // What decision 0023 and docs/resources.md say a digest does NOT hide, pinned down.
  it('does not hide a guessable value from whoever knows the uid (the uid is not a secret)', () => {
    const uid = '6f1c2a9e-0b7d-4e55-9d1e-3a1f0c7b2d44';
    const announced = secretDigest(uid, '1234');
    const pins = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));
    expect(pins.find((guess) => secretDigest(uid, guess) === announced)).toBe('1234');
  });

  it('shows that two keys of one Secret hold the same value', () => {
    expect(secretDigest('uid-1', 'same')).toBe(secretDigest('uid-1', 'same'));
  });
});

describe('versionedConfig: versions move with Secret content, values stay out', () => {
  const v1 = mergeConfig(spec({ config: { a: '1' }, configFrom: [{ secret: 'db' }] }), lookup);
  const changedSecret = mergeConfig(
    spec({ config: { a: '1' }, configFrom: [{ secret: 'db' }] }),
    (kind, name) =>
      kind === 'Secret' && name === 'db'
        ? {
            kind,
            digests: {
              password: secretDigest('uid-1', 'rotated'),
              user: secretDigest('uid-1', 'app'),
            },
          }
        : undefined,
  );
  it('a rotated Secret value changes exactly its key, and the hash', () => {
    const before = versionedConfig(v1.config, v1.secrets);
    const after = versionedConfig(changedSecret.config, changedSecret.secrets);
    expect(configChanges(before, after)).toEqual({ added: [], changed: ['password'], removed: [] });
    expect(configHash(before)).not.toBe(configHash(after));
    expect(JSON.stringify(after)).not.toContain('rotated');
  });
  it('without Secret keys it is the config itself', () => {
    const config = { a: '1' };
    expect(versionedConfig(config, {})).toBe(config);
    expect(versionedConfig(config, undefined)).toBe(config);
  });
});

describe('bounds', () => {
  it('refuses a merge past MAX_MERGED_KEYS keys', () => {
    const data = Object.fromEntries(
      Array.from({ length: MAX_MERGED_KEYS + 1 }, (_, i) => [`k${i}`, 'v']),
    );
    const merged = mergeConfig(spec({ configFrom: [{ configMap: 'big' }] }), () => ({
      kind: 'ConfigMap',
      data,
    }));
    expect(merged.tooLarge).toMatch(/1025 keys/);
  });
  it('the schema wants exactly one of configMap or secret', () => {
    expect(() => spec({ configFrom: [{ configMap: 'a', secret: 'b' }] })).toThrow(/exactly one/);
    expect(() => spec({ configFrom: [{ keys: ['a'] }] })).toThrow(/exactly one/);
    expect(() =>
      spec({ configFrom: Array.from({ length: 17 }, () => ({ configMap: 'a' })) }),
    ).toThrow();
  });
});
