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

describe('ConfigHistory byte bound', () => {
  const big = (n: number, c: string) => ({ BLOB: c.repeat(n) });
  const bounded = (maxBytes: number, limit = 10) =>
    new ConfigHistory({ clock: new ManualClock(), limit, maxServices: 100, maxBytes });
  const versions = (h: ConfigHistory, name: string) =>
    h.record('ns', name)?.entries.map((e) => e.version);

  it('counts the JSON length of the entries kept', () => {
    const h = bounded(1 << 30);
    h.next('ns', 'a', big(1000, 'x'));
    const entry = h.record('ns', 'a')!.entries[0]!;
    expect(h.bytes).toBe(Buffer.byteLength(JSON.stringify(entry)));
    h.next('ns', 'a', big(1000, 'y'));
    expect(h.bytes).toBeGreaterThan(2000);
  });

  it('past maxBytes, the versions superseded longest ago go first, across services; never a current one', () => {
    // Each entry holds ~10 KB; 45 KB keeps four of them.
    const h = bounded(45_000);
    const announced: string[] = [];
    h.subscribe((key, record) => announced.push(`${key.name}:${record?.entries.length ?? '-'}`));
    h.next('ns', 'a', big(10_000, '1')); // a1
    h.next('ns', 'b', big(10_000, '1')); // b1
    h.next('ns', 'a', big(10_000, '2')); // a2 (a1 superseded)
    h.next('ns', 'b', big(10_000, '2')); // b2 (b1 superseded): 4 entries, ~40 KB
    expect(h.evictions.bytes).toBe(0);
    h.next('ns', 'a', big(10_000, '3')); // a3: a1 goes (superseded first)
    expect(versions(h, 'a')).toEqual([2, 3]);
    expect(versions(h, 'b')).toEqual([1, 2]);
    h.next('ns', 'c', big(10_000, '1')); // c1: b1 goes next
    expect(versions(h, 'b')).toEqual([2]);
    expect(h.evictions.bytes).toBe(2);
    expect(h.bytes).toBeLessThanOrEqual(45_000);
    // b's record was announced without b1, for a store to keep the bound too.
    expect(announced).toContain('b:1');
    // The versions themselves move on: the next of `a` is 4 whatever was dropped.
    expect(h.next('ns', 'a', big(10_000, '4')).version).toBe(4);
  });

  it('current versions stay even when they alone pass the bound', () => {
    const h = bounded(15_000);
    h.next('ns', 'a', big(10_000, '1'));
    h.next('ns', 'b', big(10_000, '1'));
    expect(versions(h, 'a')).toEqual([1]);
    expect(versions(h, 'b')).toEqual([1]);
    h.next('ns', 'a', big(10_000, '2'));
    expect(versions(h, 'a')).toEqual([2]);
    expect(h.state('ns', 'a')?.version).toBe(2);
  });

  it('seeded history is bounded at start, oldest superseded first by time', () => {
    const clock = new ManualClock(1_700_000_000_000);
    const before = new ConfigHistory({ clock, limit: 10, maxServices: 100 });
    for (let i = 1; i <= 5; i++) {
      before.next('ns', 'a', big(10_000, String(i)));
      clock.advance(1000);
      before.next('ns', 'b', big(10_000, String(i)));
      clock.advance(1000);
    }
    const after = bounded(45_000);
    after.seed(JSON.parse(JSON.stringify([...before.all()])) as never);
    expect(after.bytes).toBeLessThanOrEqual(45_000);
    expect(versions(after, 'a')).toEqual([4, 5]);
    expect(versions(after, 'b')).toEqual([4, 5]);
  });

  it('a flood of changes keeps its bookkeeping bounded (the superseded queue is rebuilt)', () => {
    const h = new ConfigHistory({
      clock: new ManualClock(),
      limit: 2,
      maxServices: 10,
      maxBytes: 1 << 30,
    });
    for (let i = 0; i < 5_000; i++) h.next('ns', 'a', { A: String(i) });
    const queue = (h as unknown as { superseded: unknown[]; head: number }).superseded;
    expect(queue.length).toBeLessThan(2_500);
    expect(versions(h, 'a')).toEqual([4_999, 5_000]);
  });
});

describe('ConfigHistory service bound at scale', () => {
  it('seeding far more services than maxServices takes linear time, not a scan per eviction', () => {
    const kept = Array.from({ length: 60_000 }, (_, i) => ({
      namespace: 'ns',
      name: `svc-${i}`,
      version: 1,
      hash: configHash({ A: String(i) }),
      entries: [],
    }));
    const after = new ConfigHistory({ clock: new ManualClock(), limit: 1, maxServices: 20_000 });
    const started = process.hrtime.bigint();
    after.seed(kept);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(after.size.services).toBe(20_000);
    // The last 20,000 (most recently changed) stay.
    expect(after.record('ns', 'svc-59999')).toBeDefined();
    expect(after.record('ns', 'svc-39999')).toBeUndefined();
    // A scan per eviction is 40,000 × ~20,000 steps (many seconds); linear is milliseconds.
    expect(ms).toBeLessThan(4_000);
  });
});
