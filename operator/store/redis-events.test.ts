import { describe, expect, it } from '@jest/globals';
import { keptFromRedis } from './redis-events.js';

const event = (seq: number) =>
  JSON.stringify({
    seq,
    time: '2026-01-01T00:00:00Z',
    type: 'service_deleted',
    service: { namespace: 'ns', name: 'a' },
    data: { declared: true },
  });
const meta = (clean: number | null) => JSON.stringify({ epoch: 'ep0ch', clean });

describe('keptFromRedis', () => {
  it.each<[string, string[], string | undefined, number[] | string]>([
    ['a clean stop after the last event', [event(5), event(6)], meta(6), [5, 6]],
    ['no clean stop', [event(5), event(6)], meta(null), 'did not stop cleanly'],
    ['events missing after the last pushed', [event(5)], meta(6), 'the clean stop was at 6'],
    ['a hole', [event(5), event(7)], meta(7), 'event 7 follows 5'],
    ['not an event', [event(5), '{"seq":6}'], meta(6), 'not an event'],
    ['no meta (first start)', [], undefined, 'no valid meta'],
    ['nothing kept', [], meta(4), 'no events kept'],
  ])('%s', (_, items, metaText, want) => {
    const got = keptFromRedis(items, metaText);
    if (typeof want === 'string') expect('why' in got && got.why).toContain(want);
    else if ('kept' in got) {
      expect(got.kept.events.map((e) => e.seq)).toEqual(want);
      expect(got.kept).toMatchObject({ epoch: 'ep0ch', after: want[0]! - 1, lastSeq: want.at(-1) });
    } else throw new Error(got.why);
  });
});
