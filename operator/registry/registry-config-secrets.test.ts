import { describe, expect, it } from '@jest/globals';
import { secretDigest, versionedConfig } from '../../common/config-sources.js';
import type { ConfigSecrets } from '../../common/config-sources.js';
import { configHash } from '../../common/config-version.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { testRegistry } from '../../test/helpers/registry.js';

const spec = serviceSpecSchema.parse({ config: { mode: 'a' } });
const secretsOf = (password: string): ConfigSecrets => ({
  'db.password': { secret: 'db', key: 'password', digest: secretDigest('uid-1', password) },
});

describe('registry: config keys from Secrets (configFrom)', () => {
  it('versions move with a Secret digest; events carry keys and digests, never values', () => {
    const { registry, events } = testRegistry();
    registry.upsertService('shop', 'web', spec, secretsOf('first-value'));
    registry.upsertService('shop', 'web', spec, secretsOf('first-value'));
    registry.upsertService('shop', 'web', spec, secretsOf('rotated-value'));
    registry.upsertService('shop', 'web', spec);
    const config = events.filter((e) => e.type === 'config_changed');
    expect(config.map((e) => [e.data.version, e.data.changes])).toEqual([
      [1, { added: ['db.password', 'mode'], changed: [], removed: [] }],
      [2, { added: [], changed: ['db.password'], removed: [] }],
      [3, { added: [], changed: [], removed: ['db.password'] }],
    ]);
    const first = config[0];
    expect(first?.data.config).toEqual({ mode: 'a' });
    expect(first?.data.secrets).toEqual(secretsOf('first-value'));
    expect(first?.data.hash).toBe(
      configHash(versionedConfig({ mode: 'a' }, secretsOf('first-value'))),
    );
    expect(config[2]?.data.secrets).toBeUndefined();
    const updated = events.filter((e) => e.type === 'service_updated');
    expect(updated[0]?.data).toMatchObject({ configSecrets: secretsOf('first-value') });
    const wire = JSON.stringify(events);
    expect(wire).not.toContain('first-value');
    expect(wire).not.toContain('rotated-value');
  });

  it('a spec with only Secret keys has a config (empty map plus the keys)', () => {
    const { registry, events } = testRegistry();
    registry.upsertService('shop', 'web', serviceSpecSchema.parse({}), secretsOf('v'));
    registry.removeService('shop', 'web');
    expect(events.filter((e) => e.type.startsWith('config_')).map((e) => e.type)).toEqual([
      'config_changed',
      'config_deleted',
    ]);
    expect(registry.snapshotOf('shop', 'web')).toBeUndefined();
  });

  it('the snapshot carries the Secret keys with the spec', () => {
    const { registry } = testRegistry();
    registry.upsertService('shop', 'web', spec, secretsOf('v'));
    expect(registry.snapshotOf('shop', 'web')?.configSecrets).toEqual(secretsOf('v'));
  });

  it('the config history lists Secret-sourced keys as redacted: no value, no digest', () => {
    const { registry } = testRegistry();
    registry.upsertService('shop', 'web', spec, secretsOf('first-value'));
    registry.upsertService('shop', 'web', spec, secretsOf('rotated-value'));
    const record = registry.configs.record('shop', 'web');
    expect(record?.version).toBe(2);
    expect(record?.hash).toBe(
      configHash(versionedConfig({ mode: 'a' }, secretsOf('rotated-value'))),
    );
    expect(record?.entries.map((e) => [e.version, e.values, e.redacted, e.changes])).toEqual([
      [
        1,
        { mode: 'a' },
        ['db.password'],
        { added: ['db.password', 'mode'], changed: [], removed: [] },
      ],
      [2, { mode: 'a' }, ['db.password'], { added: [], changed: ['db.password'], removed: [] }],
    ]);
    const kept = JSON.stringify(record);
    expect(kept).not.toContain('first-value');
    expect(kept).not.toContain('rotated-value');
    expect(kept).not.toContain(secretsOf('first-value')['db.password']?.digest);
  });
});
