import { describe, expect, it } from '@jest/globals';
import { configHash } from '../../common/config-version.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { testRegistry } from '../../test/helpers/registry.js';
import { ManualClock } from './clock.js';
import { ConfigHistory } from './config-history.js';

const history = (limit = 10, maxServices = 100) =>
  new ConfigHistory({ clock: new ManualClock(), limit, maxServices });

/** A process's history, then a new process's history seeded with what a store kept of it. */
function restarted(before: ConfigHistory): ConfigHistory {
  const after = history(before.opts.limit, before.opts.maxServices);
  after.seed(JSON.parse(JSON.stringify([...before.all()])) as never);
  return after;
}

describe('ConfigHistory across a restart', () => {
  it.each([
    ['the same config keeps its version, no change', { A: '1', B: '2' }, 2, undefined],
    [
      'another config is version + 1, changes against the kept values',
      { A: '1', B: 'two', C: '3' },
      3,
      { added: ['C'], changed: ['B'], removed: [] },
    ],
    [
      'no config any more is a deletion',
      undefined,
      3,
      { added: [], changed: [], removed: ['A', 'B'] },
    ],
  ])('%s', (_, config, version, changes) => {
    const before = history();
    before.next('ns', 'api', { A: '0' });
    before.next('ns', 'api', { A: '1', B: '2' });
    const after = restarted(before);
    const step = after.next('ns', 'api', config);
    expect(step.version).toBe(version);
    expect(step.change?.changes).toEqual(changes);
  });

  it('a secret key: never in an entry, counted as changed after a restart (its old value is unknown)', () => {
    const before = history();
    const secret = new Set(['PASSWORD']);
    before.next('ns', 'api', { A: '1', PASSWORD: 'hunter2' }, secret);
    const [entry] = before.record('ns', 'api')!.entries;
    expect(entry).toMatchObject({ values: { A: '1' }, redacted: ['PASSWORD'] });
    expect(JSON.stringify([...before.all()])).not.toContain('hunter2');
    // In the same process the change is exact (the values are in memory).
    expect(
      before.next('ns', 'api', { A: '2', PASSWORD: 'hunter2' }, secret).change?.changes,
    ).toEqual({ added: [], changed: ['A'], removed: [] });
    const after = restarted(before);
    expect(after.next('ns', 'api', { A: '3', PASSWORD: 'hunter2' }, secret)).toEqual({
      version: 3,
      change: {
        after: { A: '3', PASSWORD: 'hunter2' },
        changes: { added: [], changed: ['A', 'PASSWORD'], removed: [] },
      },
    });
  });

  it('a version from a MaxineService status: same hash keeps it, other content is the next', () => {
    const h = history();
    h.seedVersion('ns', 'api', 7, configHash({ A: '1' }));
    expect(h.next('ns', 'api', { A: '1' })).toEqual({ version: 7 });
    expect(h.next('ns', 'api', { A: '2' }).version).toBe(8);
    // A status behind what this process knows does not take the version back.
    h.seedVersion('ns', 'api', 3, configHash({ A: '1' }));
    expect(h.state('ns', 'api')).toEqual({ version: 8, hash: configHash({ A: '2' }) });
  });
});

describe('ConfigHistory bounds', () => {
  it('keeps the last `limit` versions per service', () => {
    const h = history(3);
    for (let i = 1; i <= 5; i++) h.next('ns', 'api', { A: String(i) });
    expect(h.record('ns', 'api')!.entries.map((e) => [e.version, e.values.A])).toEqual([
      [3, '3'],
      [4, '4'],
      [5, '5'],
    ]);
    expect(h.evictions.entries).toBe(2);
  });

  it('keeps `maxServices`: a service without a config goes first, else the least recently changed', () => {
    const h = history(10, 2);
    const dropped: string[] = [];
    h.subscribe((key, record) => record === undefined && dropped.push(key.name));
    h.next('ns', 'a', { A: '1' });
    h.next('ns', 'b', { A: '1' });
    h.next('ns', 'b', undefined);
    h.next('ns', 'c', { A: '1' });
    expect(dropped).toEqual(['b']);
    h.next('ns', 'd', { A: '1' });
    expect(dropped).toEqual(['b', 'a']);
    expect(h.size).toEqual({ services: 2, entries: 2 });
    expect(h.evictions.services).toBe(2);
  });
});

describe('Registry config versions outlive the service entry and the process', () => {
  it('a service removed and declared again continues its versions; a restart with the same config keeps it', () => {
    const { registry } = testRegistry();
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({ config: { A: '1' } }));
    registry.removeService('ns', 'api');
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({ config: { A: '1' } }));
    expect(registry.snapshotOf('ns', 'api')?.configVersion).toBe(3);

    const kept = JSON.parse(JSON.stringify([...registry.configs.all()])) as never;
    const next = testRegistry();
    next.registry.configs.seed(kept);
    next.registry.upsertService('ns', 'api', serviceSpecSchema.parse({ config: { A: '1' } }));
    expect(next.registry.snapshotOf('ns', 'api')?.configVersion).toBe(3);
    expect(next.events.filter((e) => e.type === 'config_changed')).toEqual([]);
    next.registry.upsertService('ns', 'api', serviceSpecSchema.parse({ config: { A: '2' } }));
    const changed = next.events.find((e) => e.type === 'config_changed');
    expect(changed?.data).toMatchObject({ version: 4, changes: { changed: ['A'] } });
  });
});
