import { describe, expect, it } from '@jest/globals';
import { secretDigest } from '../common/config-sources.js';
import type { ResolvedSource } from '../common/config-sources.js';
import { maxineServiceSchema } from '../common/resources.js';
import { PolicyStore } from './policy/store.js';
import { CONFIG_INCOMPLETE, Reconciler } from './reconciler.js';
import { ManualClock } from './registry/clock.js';
import { testRegistry } from '../test/helpers/registry.js';

const service = maxineServiceSchema.parse({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineService',
  metadata: { name: 'web', namespace: 'shop', generation: 1 },
  spec: {
    config: { mode: 'inline' },
    configFrom: [{ configMap: 'settings' }, { secret: 'db', prefix: 'db.' }],
  },
});

function setup() {
  const { registry, events } = testRegistry({ clock: new ManualClock(1_700_000_000_000) });
  const objects = new Map<string, ResolvedSource>();
  const r = new Reconciler(registry, new PolicyStore(() => undefined), new ManualClock(0));
  r.setConfigSources((namespace, kind, name) => objects.get(`${namespace}/${kind}/${name}`));
  const configEvents = () => events.filter((e) => e.type === 'config_changed').map((e) => e.data);
  const conditionOf = () =>
    r.statusOf('MaxineService/shop/web')?.conditions?.find((c) => c.type === CONFIG_INCOMPLETE);
  return { r, registry, events, objects, configEvents, conditionOf };
}

describe('Reconciler: configFrom', () => {
  it('merges sources under inline config; a source change re-resolves; Secrets by digest', () => {
    const { r, registry, objects, configEvents } = setup();
    objects.set('shop/ConfigMap/settings', {
      kind: 'ConfigMap',
      data: { mode: 'from-map', color: 'blue' },
    });
    objects.set('shop/Secret/db', {
      kind: 'Secret',
      digests: { password: secretDigest('u', 'pw1') },
    });
    r.upsert(service, 'kubernetes');
    expect(registry.getService('shop', 'web')?.spec?.config).toEqual({
      mode: 'inline',
      color: 'blue',
    });
    expect(registry.getService('shop', 'web')?.configSecrets).toEqual({
      'db.password': { secret: 'db', key: 'password', digest: secretDigest('u', 'pw1') },
    });
    // The resource as applied keeps the user's spec (references, no values).
    expect(r.serviceSpec('shop', 'web')?.config).toEqual({ mode: 'inline' });

    expect(r.refreshConfig('shop', 'web')).toBe(false); // nothing moved
    objects.set('shop/ConfigMap/settings', { kind: 'ConfigMap', data: { color: 'red' } });
    expect(r.refreshConfig('shop', 'web')).toBe(true);
    expect(configEvents().map((d) => [d.version, d.changes])).toEqual([
      [1, { added: ['color', 'db.password', 'mode'], changed: [], removed: [] }],
      [2, { added: [], changed: ['color'], removed: [] }],
    ]);
  });

  it('a missing required source holds the last complete config and says so in a condition', () => {
    const { r, registry, objects, configEvents, conditionOf } = setup();
    objects.set('shop/ConfigMap/settings', { kind: 'ConfigMap', data: { color: 'blue' } });
    objects.set('shop/Secret/db', { kind: 'Secret', digests: { password: 'd1' } });
    r.upsert(service, 'kubernetes');
    expect(conditionOf()).toBeUndefined();
    objects.delete('shop/ConfigMap/settings');
    expect(r.refreshConfig('shop', 'web')).toBe(true); // the condition moved
    expect(registry.getService('shop', 'web')?.spec?.config).toEqual({
      mode: 'inline',
      color: 'blue',
    });
    expect(conditionOf()).toMatchObject({
      status: 'True',
      reason: 'ConfigSourceMissing',
      message: expect.stringContaining('ConfigMap settings') as unknown as string,
    });
    expect(configEvents()).toHaveLength(1);
    objects.set('shop/ConfigMap/settings', { kind: 'ConfigMap', data: { color: 'green' } });
    expect(r.refreshConfig('shop', 'web')).toBe(true);
    expect(conditionOf()).toBeUndefined();
    expect(configEvents().map((d) => d.config)).toEqual([
      { mode: 'inline', color: 'blue' },
      { mode: 'inline', color: 'green' },
    ]);
  });

  it('before any complete merge, only the inline config is in force', () => {
    const { r, registry, conditionOf } = setup();
    r.upsert(service, 'kubernetes');
    expect(registry.getService('shop', 'web')?.spec?.config).toEqual({ mode: 'inline' });
    expect(registry.getService('shop', 'web')?.configSecrets).toBeUndefined();
    expect(conditionOf()?.message).toMatch(/ConfigMap settings, Secret db/);
  });
});
