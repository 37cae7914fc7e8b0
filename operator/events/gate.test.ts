import { describe, expect, it } from '@jest/globals';
import { getEventListeners } from 'node:events';
import { Gate, Turnstile } from './gate.js';

describe('Gate', () => {
  it('lets `limit` in, queues up to `queueLimit` in order, refuses the rest', async () => {
    const gate = new Gate(2, 2);
    const a = await gate.acquire();
    const b = await gate.acquire();
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    const order: string[] = [];
    const c = gate.acquire().then((r) => (order.push('c'), r));
    const d = gate.acquire().then((r) => (order.push('d'), r));
    expect(await gate.acquire()).toBeUndefined(); // the queue is full
    expect([gate.inFlight, gate.queued]).toEqual([2, 2]);
    a!();
    a!(); // a second release of the same slot changes nothing
    const rc = await c;
    expect(rc).toBeDefined();
    expect([gate.inFlight, gate.queued]).toEqual([2, 1]);
    b!();
    const rd = await d;
    expect(order).toEqual(['c', 'd']);
    rc!();
    rd!();
    expect([gate.inFlight, gate.queued]).toEqual([0, 0]);
  });

  it('a waiter that gives up leaves the queue', async () => {
    const gate = new Gate(1, 4);
    const held = await gate.acquire();
    const gone = new AbortController();
    const waiting = gate.acquire(gone.signal);
    expect(gate.queued).toBe(1);
    gone.abort();
    expect(await waiting).toBeUndefined();
    expect(gate.queued).toBe(0);
    held!();
    expect(gate.inFlight).toBe(0);
  });
});

describe('Gate and its waiters’ signals', () => {
  it('a granted waiter leaves no abort listener behind on its signal', async () => {
    const gate = new Gate(1, 100);
    let holder = (await gate.acquire())!;
    const stream = new AbortController();
    // One stream, one queued acquisition per snapshot chunk, each granted in turn.
    for (let i = 0; i < 20; i++) {
      const waiting = gate.acquire(stream.signal);
      expect(getEventListeners(stream.signal, 'abort')).toHaveLength(1);
      holder();
      holder = (await waiting)!;
      expect(holder).toBeInstanceOf(Function);
      expect(getEventListeners(stream.signal, 'abort')).toHaveLength(0);
    }
    holder();
    expect(gate.inFlight).toBe(0);
  });

  it('a signal already aborted gets undefined at once and queues nothing', async () => {
    const gate = new Gate(1, 10);
    const held = await gate.acquire();
    const gone = new AbortController();
    gone.abort();
    await expect(gate.acquire(gone.signal)).resolves.toBeUndefined();
    expect(gate.queued).toBe(0);
    held!();
  });
});

describe('Turnstile', () => {
  it('lets one waiter through per turn of the event loop, in arrival order', async () => {
    const turns = new Turnstile();
    const log: string[] = [];
    const waits = ['a', 'b', 'c'].map((name) => turns.next().then(() => log.push(name)));
    // Other work scheduled now runs between the turns.
    setImmediate(() => log.push('x'));
    setImmediate(() => setImmediate(() => log.push('y')));
    await Promise.all(waits);
    expect(log.filter((l) => l !== 'y')).toEqual(['a', 'x', 'b', 'c']);
    expect(log.indexOf('y')).toBeLessThan(log.indexOf('c'));
  });
});
