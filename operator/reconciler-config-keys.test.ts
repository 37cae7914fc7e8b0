/**
 * Config keys that are names of Object.prototype members (`__proto__`, `constructor`,
 * `prototype`), from a ConfigMap and a Secret, end to end: the kube watcher's copy of the
 * object, the merge, the registry's config, the `config_changed` event and the history.
 */
import { describe, expect, it } from '@jest/globals';
import type { ResolvedSource } from '../common/config-sources.js';
import { maxineServiceSchema } from '../common/resources.js';
import { resolvedOf } from './kube/config-sources.js';
import { PolicyStore } from './policy/store.js';
import { CONFIG_INCOMPLETE, Reconciler } from './reconciler.js';
import { ManualClock } from './registry/clock.js';
import { parseResourceFile } from './sources/parse.js';
import { testRegistry } from '../test/helpers/registry.js';

const serviceWith = (configFrom: unknown[]) =>
  maxineServiceSchema.parse({
    apiVersion: 'maxine.io/v1alpha1',
    kind: 'MaxineService',
    metadata: { name: 'web', namespace: 'shop', generation: 1 },
    spec: { config: { mode: 'inline' }, configFrom },
  });

/** An object as the API server's JSON gives it (JSON.parse keeps `__proto__` as an own key). */
const fromJson = (json: string) => JSON.parse(json) as { data: Record<string, string> };

function setup(objects: Record<string, ResolvedSource>) {
  const { registry, events } = testRegistry({ clock: new ManualClock(1_700_000_000_000) });
  const r = new Reconciler(registry, new PolicyStore(() => undefined), new ManualClock(0));
  r.setConfigSources((namespace, kind, name) => objects[`${namespace}/${kind}/${name}`]);
  const condition = () =>
    r.statusOf('MaxineService/shop/web')?.conditions?.find((c) => c.type === CONFIG_INCOMPLETE);
  return { r, registry, events, condition };
}

const ownKeys = (o: object | undefined) => Object.keys(o ?? {}).sort();

describe('config keys named like Object.prototype members', () => {
  const map = resolvedOf(
    'ConfigMap',
    fromJson('{"data":{"constructor":"c-value","prototype":"p-value","plain":"x"}}'),
  );
  const secret = resolvedOf('Secret', {
    metadata: { uid: 'uid-1' },
    ...fromJson('{"data":{"constructor":"c2VjcmV0","prototype":"c2VjcmV0"}}'),
  });

  it('`constructor` and `prototype` from a ConfigMap are data: merged, versioned, evented, kept', () => {
    const { r, registry, events } = setup({ 'shop/ConfigMap/settings': map });
    r.upsert(serviceWith([{ configMap: 'settings' }]), 'kubernetes');
    const config = registry.getService('shop', 'web')?.spec?.config;
    expect(ownKeys(config)).toEqual(['constructor', 'mode', 'plain', 'prototype']);
    expect(config?.constructor).toBe('c-value');
    expect(config?.prototype).toBe('p-value');
    const changed = events.find((e) => e.type === 'config_changed');
    expect(JSON.parse(JSON.stringify(changed?.data))).toMatchObject({
      version: 1,
      config: { constructor: 'c-value', prototype: 'p-value' },
      changes: { added: ['constructor', 'mode', 'plain', 'prototype'] },
    });
    const entry = registry.configs.record('shop', 'web')?.entries.at(-1);
    expect(JSON.parse(JSON.stringify(entry?.values))).toEqual({
      constructor: 'c-value',
      prototype: 'p-value',
      plain: 'x',
      mode: 'inline',
    });
  });

  it('`constructor` and `prototype` from a Secret are listed by digest, never valued', () => {
    const { r, registry } = setup({ 'shop/Secret/db': secret });
    r.upsert(serviceWith([{ secret: 'db' }]), 'kubernetes');
    expect(ownKeys(registry.getService('shop', 'web')?.configSecrets)).toEqual([
      'constructor',
      'prototype',
    ]);
    expect(registry.configs.record('shop', 'web')?.entries.at(-1)?.redacted).toEqual([
      'constructor',
      'prototype',
    ]);
  });

  const protoCases: { name: string; objects: Record<string, ResolvedSource>; from: unknown }[] = [
    {
      name: 'ConfigMap',
      objects: {
        'shop/ConfigMap/settings': resolvedOf(
          'ConfigMap',
          fromJson('{"data":{"__proto__":"evil","plain":"x"}}'),
        ),
      },
      from: { configMap: 'settings' },
    },
    {
      name: 'Secret',
      objects: {
        'shop/Secret/db': resolvedOf('Secret', {
          metadata: { uid: 'u' },
          ...fromJson('{"data":{"__proto__":"ZXZpbA==","plain":"eA=="}}'),
        }),
      },
      from: { secret: 'db' },
    },
  ];
  it.each(protoCases)(
    '`__proto__` from a $name is refused by name in ConfigIncomplete; nothing is applied silently without it',
    ({ objects, from }) => {
      const { r, registry, events, condition } = setup(objects);
      r.upsert(serviceWith([from]), 'kubernetes');
      expect(condition()).toMatchObject({
        status: 'True',
        message: expect.stringContaining('__proto__') as unknown as string,
      });
      // Before any complete merge only the inline config is in force, as for a missing source.
      expect(registry.getService('shop', 'web')?.spec?.config).toEqual({ mode: 'inline' });
      expect(registry.getService('shop', 'web')?.configSecrets).toBeUndefined();
      expect(events.filter((e) => e.type === 'config_changed')).toHaveLength(1);
    },
  );

  it('a prefix makes `__proto__` an ordinary key (`app.__proto__`), kept as data', () => {
    const { r, registry, condition } = setup(protoCases[0]?.objects ?? {});
    r.upsert(serviceWith([{ configMap: 'settings', prefix: 'app.' }]), 'kubernetes');
    expect(condition()).toBeUndefined();
    const config = registry.getService('shop', 'web')?.spec?.config;
    expect(ownKeys(config)).toEqual(['app.__proto__', 'app.plain', 'mode']);
    expect(config?.['app.__proto__']).toBe('evil');
  });

  it("a folder ConfigMap's `__proto__` key reaches the merge (and so its refusal)", () => {
    const parsed = parseResourceFile(
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: { name: settings, namespace: shop }',
        'data:',
        '  __proto__: evil',
        '  constructor: c-value',
        '  prototype: p-value',
      ].join('\n'),
    );
    expect(parsed.issues).toEqual([]);
    const data = parsed.configMaps?.[0]?.data ?? {};
    expect(ownKeys(data)).toEqual(['__proto__', 'constructor', 'prototype']);
    const { r, condition } = setup({ 'shop/ConfigMap/settings': { kind: 'ConfigMap', data } });
    r.upsert(serviceWith([{ configMap: 'settings' }]), 'standalone');
    expect(condition()?.message).toContain('__proto__ (ConfigMap settings key __proto__)');
  });
});
