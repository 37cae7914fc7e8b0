import { describe, expect, it } from '@jest/globals';
import { configHash } from '../../common/config-version.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { testRegistry } from '../../test/helpers/registry.js';

type Step = { config: Record<string, string> | undefined } | 'remove';

/** Each step's config events as `[type, version, added, changed, removed]`. */
const cases: [string, Step[], unknown[][]][] = [
  [
    'first config, unchanged re-apply, a change of each kind',
    [
      { config: { A: '1', B: '2' } },
      { config: { B: '2', A: '1' } },
      { config: { A: '1', B: 'two', C: '3' } },
      { config: { C: '3' } },
    ],
    [
      ['config_changed', 1, ['A', 'B'], [], []],
      ['config_changed', 2, ['C'], ['B'], []],
      ['config_changed', 3, [], [], ['A', 'B']],
    ],
  ],
  [
    'a spec without config deletes it; a config coming back is the next version',
    [{ config: { A: '1' } }, { config: undefined }, { config: undefined }, { config: { A: '1' } }],
    [
      ['config_changed', 1, ['A'], [], []],
      ['config_deleted', 2, [], [], ['A']],
      ['config_changed', 3, ['A'], [], []],
    ],
  ],
  [
    'removing the declaration deletes the config',
    [{ config: { A: '1' } }, 'remove'],
    [
      ['config_changed', 1, ['A'], [], []],
      ['config_deleted', 2, [], [], ['A']],
    ],
  ],
  ['no config ever: no config event', [{ config: undefined }, 'remove'], []],
  [
    'an empty config is a config (version 1), then deleted',
    [{ config: {} }, { config: undefined }],
    [
      ['config_changed', 1, [], [], []],
      ['config_deleted', 2, [], [], []],
    ],
  ],
];

describe('config versions', () => {
  it.each(cases)('%s', (_name, steps, expected) => {
    const { registry, events } = testRegistry({});
    for (const step of steps) {
      if (step === 'remove') registry.removeService('ns', 'api');
      else
        registry.upsertService(
          'ns',
          'api',
          serviceSpecSchema.parse(step.config === undefined ? {} : { config: step.config }),
        );
    }
    const got = events.flatMap((e): unknown[][] => {
      if (e.type === 'config_changed') {
        const { version, changes, hash, config } = e.data;
        expect(hash).toBe(configHash(config));
        return [[e.type, version, changes?.added, changes?.changed, changes?.removed]];
      }
      if (e.type === 'config_deleted') {
        const d = e.data;
        return [[e.type, d?.version, d?.changes.added, d?.changes.changed, d?.changes.removed]];
      }
      return [];
    });
    expect(got).toEqual(expected);
  });

  it('carries the version on service_updated and in the snapshot', () => {
    const { registry, events } = testRegistry({});
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({ config: { A: '1' } }));
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({ config: { A: '2' } }));
    const updates = events.flatMap((e) =>
      e.type === 'service_updated' && e.data.declared ? [e.data.configVersion] : [],
    );
    expect(updates).toEqual([1, 2]);
    expect(registry.snapshotOf('ns', 'api')?.configVersion).toBe(2);
  });
});
