import { describe, expect, it } from '@jest/globals';
import { decodeEvents } from './event-file.js';
import { encodeLine, frame } from './codec.js';

const header = (after: number, epoch = 'ep0ch') =>
  encodeLine({ t: 'events', format: 1, epoch, after, writtenAt: '2026-01-01T00:00:00Z' });
const event = (seq: number) =>
  frame(
    JSON.stringify({
      seq,
      time: '2026-01-01T00:00:00Z',
      type: 'service_deleted',
      service: { namespace: 'ns', name: 'a' },
      data: { declared: true },
    }),
  );

interface Want {
  ok: boolean;
  seqs?: number[];
  lastSeq?: number;
  dropped?: string;
}

describe('decodeEvents', () => {
  it.each<[string, string, Want]>([
    ['header only', header(7), { ok: true, seqs: [], lastSeq: 7 }],
    ['consecutive events', header(7) + event(8) + event(9), { ok: true, seqs: [8, 9], lastSeq: 9 }],
    [
      'a torn last line: dropped',
      header(7) + event(8) + event(9).slice(0, 20),
      { ok: true, seqs: [8], lastSeq: 8, dropped: 'incomplete last record' },
    ],
    [
      'a bad last line: dropped',
      header(7) + event(8) + '00000000 {"seq":9}\n',
      { ok: true, seqs: [8], lastSeq: 8, dropped: 'checksum mismatch' },
    ],
    ['damage before a valid line', header(7) + 'junk\n' + event(9), { ok: false }],
    ['a hole in the numbering', header(7) + event(8) + event(10) + event(11), { ok: false }],
    ['no header', event(8), { ok: false }],
    ['empty', '', { ok: false }],
  ])('%s', (_, text, want) => {
    const got = decodeEvents(Buffer.from(text));
    expect(got.ok).toBe(want.ok);
    if (!got.ok) return;
    expect(got.kept.events.map((e) => e.seq)).toEqual(want.seqs);
    expect(got.kept.lastSeq).toBe(want.lastSeq);
    expect(got.kept.epoch).toBe('ep0ch');
    expect(got.dropped?.why).toBe(want.dropped);
  });
});
