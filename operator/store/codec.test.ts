import { describe, expect, it } from '@jest/globals';
import type { PersistedInstance } from '../registry/registry.js';
import {
  applyRecords,
  decodeLine,
  decodeLog,
  decodeSnapshot,
  encodeLine,
  encodeSnapshot,
  StoreCorruptError,
} from './codec.js';
import type { LogRecord } from './codec.js';

function instance(id: string, extra: Partial<PersistedInstance> = {}): PersistedInstance {
  return {
    id,
    namespace: 'shop',
    service: 'web',
    host: '10.0.0.1',
    port: 8080,
    weight: 1,
    metadata: {},
    registeredAt: 1000,
    lastHeartbeat: 2000,
    ttlMs: 30_000,
    check: { status: 'passing' },
    ...extra,
  };
}

const put = (id: string, seq: number, extra: Partial<PersistedInstance> = {}): LogRecord => ({
  t: 'put',
  seq,
  instance: instance(id, extra),
});
const del = (id: string, seq: number): LogRecord => ({ t: 'del', seq, id });
const lines = (...records: unknown[]): string => records.map((r) => encodeLine(r)).join('');
/** A framed line whose checksum does not match its JSON. */
const badChecksum = (record: unknown): string => `00000000 ${JSON.stringify(record)}\n`;

describe('decodeLine', () => {
  it.each([
    ['a framed record', encodeLine({ a: 1 }).trimEnd(), { ok: true, value: { a: 1 } }],
    ['a wrong checksum', badChecksum({ a: 1 }).trimEnd(), { ok: false, why: 'checksum mismatch' }],
    ['no frame', '{"a":1}', { ok: false, why: 'not a framed record' }],
    ['an empty line', '', { ok: false, why: 'not a framed record' }],
  ])('reads %s', (_name, line, expected) => {
    expect(decodeLine(line)).toEqual(expected);
  });
});

describe('decodeLog', () => {
  const a = put('a', 1);
  const b = put('b', 2);
  const c = del('a', 3);
  const valid = lines(a, b, c);
  it.each<[string, string, { records: LogRecord[]; dropped?: { why: string } }]>([
    ['an empty log', '', { records: [] }],
    ['valid records', valid, { records: [a, b, c] }],
    [
      'a record cut short (no newline)',
      lines(a, b) + encodeLine(c).slice(0, 20),
      { records: [a, b], dropped: { why: 'incomplete last record' } },
    ],
    [
      'a bad checksum at the tail',
      lines(a, b) + badChecksum(c),
      { records: [a, b], dropped: { why: 'checksum mismatch' } },
    ],
    [
      'a valid frame that is not a record, at the tail',
      lines(a) + encodeLine({ t: 'put', seq: 1 }),
      { records: [a], dropped: { why: expect.stringContaining('not a valid record') as never } },
    ],
    [
      'a bad tail followed by another torn one',
      lines(a) + badChecksum(b) + encodeLine(c).slice(0, 10),
      { records: [a], dropped: { why: 'checksum mismatch' } },
    ],
  ])('%s', (_name, text, expected) => {
    const decoded = decodeLog('log.0.jsonl', Buffer.from(text));
    expect(decoded.records).toEqual(expected.records);
    const validBytes = Buffer.byteLength(lines(...expected.records));
    expect(decoded.validBytes).toBe(validBytes);
    if (expected.dropped === undefined) expect(decoded.dropped).toBeUndefined();
    else
      expect(decoded.dropped).toEqual({
        offset: validBytes,
        bytes: Buffer.byteLength(text) - validBytes,
        why: expected.dropped.why,
      });
  });

  it.each([
    ['a bad checksum in the middle', lines(a) + badChecksum(b) + lines(c), 'checksum mismatch'],
    ['garbage in the middle', lines(a) + 'garbage\n' + lines(c), 'not a framed record'],
    ['a torn record in the middle', lines(a) + '0bad' + lines(b, c), 'not a framed record'],
  ])('refuses %s, naming the file and the offset', (_name, text, why) => {
    const offset = Buffer.byteLength(lines(a));
    let caught: unknown;
    try {
      decodeLog('/var/lib/maxine/log.3.jsonl', Buffer.from(text));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreCorruptError);
    expect(caught).toMatchObject({ file: '/var/lib/maxine/log.3.jsonl', offset, why });
    expect((caught as StoreCorruptError).advice).toBe(
      `To keep the records before the damage: truncate -s ${offset} /var/lib/maxine/log.3.jsonl. ` +
        'To start with an empty store, move the folder aside and keep it for inspection: mv /var/lib/maxine /var/lib/maxine.damaged',
    );
  });
});

describe('snapshots', () => {
  const header = { seq: 42, generation: 3, writtenAt: '2026-01-01T00:00:00.000Z' };
  const items = [instance('a'), instance('b', { owner: 'User:alice', ports: { grpc: 9090 } })];
  it('reads back what it wrote', () => {
    const snapshot = decodeSnapshot('s', Buffer.from(encodeSnapshot(header, items)));
    expect(snapshot).toEqual({
      header: { t: 'snapshot', format: 1, ...header, count: 2 },
      instances: items,
    });
  });
  const good = encodeSnapshot(header, items);
  const [first = '', second = ''] = good.split('\n');
  it.each([
    ['an empty file', '', 'no valid snapshot header'],
    ['a cut-short file', good.slice(0, -5), 'incomplete last line'],
    ['a missing record', `${first}\n${second}\n`, 'the header counts 2 records, the file holds 1'],
    ['a damaged record', good.replace('"id":"b"', '"id":"c"'), 'checksum mismatch'],
    ['no header', lines(items[0]), 'no valid snapshot header'],
    [
      'a record that is not an instance',
      encodeLine({ t: 'snapshot', format: 1, ...header, count: 1 }) + encodeLine({ id: 1 }),
      'not a valid instance record',
    ],
  ])('refuses %s', (_name, text, why) => {
    expect(() => decodeSnapshot('snapshot.jsonl', Buffer.from(text))).toThrow(
      expect.objectContaining({ file: 'snapshot.jsonl', why }),
    );
  });
});

describe('replay and compaction', () => {
  /** A deterministic history of puts and deletes over a few ids. */
  function history(n: number): LogRecord[] {
    const out: LogRecord[] = [];
    for (let i = 0; i < n; i++) {
      const id = `i${(i * 7) % 11}`;
      out.push(i % 5 === 4 ? del(id, i + 1) : put(id, i + 1, { lastHeartbeat: 1000 + i }));
    }
    return out;
  }
  it.each([0, 1, 7, 30, 59, 60])(
    'a snapshot after %i records, then the rest, replays to the same state as the whole log',
    (cut) => {
      const records = history(60);
      const whole = new Map<string, PersistedInstance>();
      const seq = applyRecords(whole, records);

      const before = new Map<string, PersistedInstance>();
      const snapSeq = applyRecords(before, records.slice(0, cut));
      const text = encodeSnapshot({ seq: snapSeq, generation: 1, writtenAt: 'now' }, [
        ...before.values(),
      ]);
      const snapshot = decodeSnapshot('s', Buffer.from(text));
      const compacted = new Map(snapshot.instances.map((i) => [i.id, i]));
      const log = decodeLog('l', Buffer.from(lines(...records.slice(cut))));
      expect(applyRecords(compacted, log.records, snapshot.header.seq)).toBe(seq);
      expect(compacted).toEqual(whole);

      // A compaction cut short replays the old log over the new snapshot: the same state.
      const overlap = new Map(compacted);
      applyRecords(overlap, records);
      expect(overlap).toEqual(whole);
    },
  );
});
