/** The shared redis store's pure parts: stream entries read, what they ask of a reader, key expiry. */
import { describe, expect, it } from '@jest/globals';
import type { PersistedInstance } from '../registry/registry.js';
import { changesOf, expireAt, parseEntries } from './redis-shared.js';
import type { StreamEntry } from './redis-shared.js';

const registered = (id: string) =>
  JSON.stringify({
    time: '2026-01-01T00:00:00.000Z',
    type: 'service_registered',
    service: { namespace: 'shop', name: 'web' },
    instance: {
      id,
      service: { namespace: 'shop', name: 'web' },
      registeredAt: '2026-01-01T00:00:00.000Z',
      host: 'h',
      port: 1,
      weight: 1,
      metadata: {},
      source: 'registration',
      health: { status: 'passing', reason: 'check' },
    },
    data: { renewed: false },
  });

describe('parseEntries', () => {
  it.each<
    [string, unknown, { seqs: number[]; origins: string[]; markers: number; invalid: number }]
  >([
    ['nothing', null, { seqs: [], origins: [], markers: 0, invalid: 0 }],
    [
      'an event and a reload marker',
      [
        ['7-0', ['o', 'A', 'e', registered('x')]],
        ['8-0', ['o', 'B', 'k', 'reload']],
      ],
      { seqs: [7, 8], origins: ['A', 'B'], markers: 1, invalid: 0 },
    ],
    [
      'not JSON, not an event, not an entry',
      [['9-0', ['o', 'A', 'e', 'not json']], ['10-0', ['o', 'A', 'e', '{"type":"nope"}']], 'x'],
      { seqs: [], origins: [], markers: 0, invalid: 3 },
    ],
  ])('%s', (_, reply, want) => {
    const { entries, invalid } = parseEntries(reply as never);
    expect(entries.map((e) => e.seq)).toEqual(want.seqs);
    expect(entries.map((e) => e.origin)).toEqual(want.origins);
    expect(entries.filter((e) => e.event === undefined).length).toBe(want.markers);
    expect(invalid).toBe(want.invalid);
  });

  it('gives the event its number from the entry id', () => {
    const { entries } = parseEntries([['1780000000000123-0', ['o', 'A', 'e', registered('x')]]]);
    expect(entries[0]?.event).toMatchObject({ seq: 1780000000000123, type: 'service_registered' });
  });
});

describe('changesOf', () => {
  const entry = (seq: number, origin: string, id?: string): StreamEntry => ({
    seq,
    origin,
    event:
      id === undefined
        ? undefined
        : parseEntries([[`${seq}-0`, ['e', registered(id)]]]).entries[0]?.event,
  });
  it.each<[string, StreamEntry[], number, { reload: string | undefined; changed: string[] }]>([
    [
      "others' changes, not its own",
      [entry(5, 'B', 'x'), entry(6, 'A', 'y')],
      4,
      { reload: undefined, changed: ['x'] },
    ],
    ['a gap after what it read', [entry(9, 'B', 'x')], 4, { reload: 'gap', changed: ['x'] }],
    [
      'the first read (nothing read yet)',
      [entry(9, 'B', 'x')],
      0,
      { reload: undefined, changed: ['x'] },
    ],
    ['a reload marker of another', [entry(5, 'B')], 4, { reload: 'reload-marker', changed: [] }],
    ['its own reload marker', [entry(5, 'A')], 4, { reload: undefined, changed: [] }],
  ])('%s', (_, entries, readSeq, want) => {
    const { reload, changed } = changesOf(entries, readSeq, 'A');
    expect(reload).toBe(want.reload);
    expect([...changed]).toEqual(want.changed);
  });
});

describe('expireAt', () => {
  it.each<[number, number, number, number]>([
    // lastHeartbeat 1000, ttl 30 s: lease end + grace + one renewal interval
    [90_000, 5000, 1000 + 30_000 + 90_000 + 5000, 0],
    [0, 100, 1000 + 30_000 + 100, 0],
  ])('grace %d ms, renewal every %d ms → %d', (grace, renew, want) => {
    const p = { lastHeartbeat: 1000, ttlMs: 30_000 } as PersistedInstance;
    expect(expireAt(p, grace, renew)).toBe(want);
  });
});
