import { describe, expect, it } from '@jest/globals';
import { PublishQueue } from './queue.js';
import type { Publication } from './queue.js';

const ev = (n: number): Publication => ({ topic: `t/${n}`, payload: 'x'.repeat(7), retain: false });
const state = (svc: string, payload: string): Publication => ({
  topic: `s/${svc}`,
  payload,
  retain: true,
});

function drain(q: PublishQueue): string[] {
  const out: string[] = [];
  for (let p = q.shift(); p !== undefined; p = q.shift()) out.push(`${p.topic}=${p.payload}`);
  return out;
}

describe('PublishQueue', () => {
  it.each([
    // [bounds, pushed, kept topics, dropped]
    [{ messages: 3, bytes: 1e6 }, [1, 2, 3], ['t/1', 't/2', 't/3'], 0],
    [{ messages: 3, bytes: 1e6 }, [1, 2, 3, 4, 5], ['t/3', 't/4', 't/5'], 2],
    // each message is 3 + 7 = 10 bytes
    [{ messages: 100, bytes: 25 }, [1, 2, 3, 4], ['t/3', 't/4'], 2],
    [{ messages: 100, bytes: 5 }, [1], [], 1],
  ])('bounds %j, pushed %j → %j, %d dropped', (bounds, pushed, kept, dropped) => {
    const q = new PublishQueue(bounds);
    for (const n of pushed) q.push(ev(n));
    expect(q.dropped).toBe(dropped);
    expect(q.size).toBe(kept.length);
    expect(q.bytes).toBe(kept.length * 10);
    expect(drain(q).map((s) => s.split('=')[0])).toEqual(kept);
    expect(q.size).toBe(0);
    expect(q.bytes).toBe(0);
  });

  it('coalesces retained messages per topic, keeping the newest at its newest place', () => {
    const q = new PublishQueue({ messages: 10, bytes: 1e6 });
    q.push(state('a', '1'));
    q.push(ev(1));
    q.push(state('b', '1'));
    q.push(state('a', '2'));
    q.push(state('a', '3'));
    expect(q.size).toBe(3);
    expect(drain(q)).toEqual(['t/1=xxxxxxx', 's/b=1', 's/a=3']);
    expect(q.bytes).toBe(0);
  });

  it('a coalesced state does not count against the bound', () => {
    const q = new PublishQueue({ messages: 2, bytes: 1e6 });
    q.push(ev(1));
    for (let i = 0; i < 50; i++) q.push(state('a', String(i)));
    expect(q.dropped).toBe(0);
    expect(drain(q)).toEqual(['t/1=xxxxxxx', 's/a=49']);
  });

  it('agrees with a plain array model across many pushes and shifts (compaction)', () => {
    const q = new PublishQueue({ messages: 5000, bytes: 1e9 });
    const model: Publication[] = [];
    let next = 0;
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 1500; i++) {
        const p = ev(next++);
        q.push(p);
        model.push(p);
      }
      for (let i = 0; i < 1400; i++) expect(q.shift()).toBe(model.shift());
      const s = state('z', String(round));
      const at = model.findIndex((m) => m.topic === s.topic);
      if (at >= 0) model.splice(at, 1);
      q.push(s);
      model.push(s);
      expect(q.size).toBe(model.length);
    }
    expect(q.dropped).toBe(0);
    expect(drain(q)).toEqual(model.map((p) => `${p.topic}=${p.payload}`));
  });
});
