import { describe, expect, it } from '@jest/globals';
import { CircuitEventGate } from './circuit-gate.js';
import type { CircuitEvent } from './circuit-gate.js';

type State = 'closed' | 'open' | 'half-open';

function transition(instanceId: string, from: State, to: State, pod = 'web-1'): CircuitEvent {
  return {
    type: 'circuit_state_changed',
    service: { namespace: 'shop', name: 'orders' },
    data: {
      from,
      to,
      instanceId,
      reporter: { service: { namespace: 'shop', name: 'web' }, pod },
    },
  };
}

const brief = (e: CircuitEvent) =>
  `${e.data.reporter.pod}:${e.data.instanceId}:${e.data.from}>${e.data.to}`;

/** Releases until nothing is held, a second of tokens at a time; everything emitted. */
function drain(gate: CircuitEventGate, startMs: number): CircuitEvent[] {
  const out: CircuitEvent[] = [];
  for (let t = startMs; gate.size > 0 && t < startMs + 600_000; t += 1000) {
    out.push(...gate.release(t));
  }
  return out;
}

describe('CircuitEventGate', () => {
  it('emits within the rate at once, in order', () => {
    const gate = new CircuitEventGate({ requestsPerSecond: 1, burst: 2 });
    const out = gate.offer(
      'shop/web',
      [transition('a', 'closed', 'open'), transition('b', 'closed', 'open')],
      0,
    );
    expect(out.emit.map(brief)).toEqual(['web-1:a:closed>open', 'web-1:b:closed>open']);
    expect(out).toMatchObject({ held: 0, refused: 0 });
  });

  it.each([
    [
      'a flapping circuit ends in its last state (open)',
      [
        ['a', 'closed', 'open'],
        ['a', 'open', 'half-open'],
        ['a', 'half-open', 'open'],
      ],
      ['web-1:a:closed>open'],
    ],
    [
      'a circuit that closes again after being held emits nothing more',
      [
        ['a', 'closed', 'open'],
        ['a', 'open', 'half-open'],
        ['a', 'half-open', 'closed'],
      ],
      [],
    ],
    [
      'each circuit keeps its own last state, oldest released first',
      [
        ['a', 'closed', 'open'],
        ['b', 'closed', 'open'],
        ['a', 'open', 'half-open'],
        ['b', 'open', 'half-open'],
        ['b', 'half-open', 'closed'],
        ['b', 'closed', 'open'],
      ],
      ['web-1:a:closed>half-open', 'web-1:b:closed>open'],
    ],
  ] as const)('past the rate: %s', (_name, flood, expected) => {
    const gate = new CircuitEventGate({ requestsPerSecond: 1, burst: 1 });
    // The only token goes to an unrelated circuit: everything after is held.
    expect(gate.offer('shop/web', [transition('z', 'closed', 'open')], 0).emit).toHaveLength(1);
    const out = gate.offer(
      'shop/web',
      flood.map(([id, from, to]) => transition(id, from, to)),
      0,
    );
    expect(out.emit).toEqual([]);
    expect(out.held).toBe(flood.length);
    expect(drain(gate, 1000).map(brief)).toEqual(expected);
    expect(gate.size).toBe(0);
  });

  it('never loses the last state of any circuit in an outage flood, whatever the order', () => {
    const gate = new CircuitEventGate({ requestsPerSecond: 10, burst: 20 });
    const states: State[] = ['closed', 'open', 'half-open'];
    const last = new Map<string, State>();
    const current = new Map<string, State>();
    const seen = new Map<string, State>();
    let t = 0;
    // 50 instances, each flapping 1–9 times, reported interleaved by 3 pods in 64s.
    for (let round = 0; round < 9; round++) {
      const batch: CircuitEvent[] = [];
      for (let i = 0; i < 50; i++) {
        if ((i * 7 + round) % 9 > i % 9) continue;
        const pod = `web-${i % 3}`;
        const key = `${pod}:i${i}`;
        const from = current.get(key) ?? 'closed';
        const to = states[(states.indexOf(from) + 1 + (round % 2)) % 3] ?? 'open';
        current.set(key, to);
        last.set(key, to);
        batch.push(transition(`i${i}`, from, to, pod));
      }
      for (const e of gate.offer('shop/web', batch, t).emit) {
        seen.set(`${e.data.reporter.pod}:${e.data.instanceId}`, e.data.to);
      }
      t += 100;
    }
    for (const e of drain(gate, t)) {
      seen.set(`${e.data.reporter.pod}:${e.data.instanceId}`, e.data.to);
    }
    for (const [key, state] of last) expect([key, seen.get(key) ?? 'closed']).toEqual([key, state]);
    expect(gate.coalesced).toBeGreaterThan(0);
  });

  it('refuses a new circuit past the bound, but still takes a newer state of a held one', () => {
    const gate = new CircuitEventGate({ requestsPerSecond: 1, burst: 1 }, 2);
    gate.offer('shop/web', [transition('z', 'closed', 'open')], 0);
    const out = gate.offer(
      'shop/web',
      [
        transition('a', 'closed', 'open'),
        transition('b', 'closed', 'open'),
        transition('c', 'closed', 'open'),
        transition('a', 'open', 'half-open'),
      ],
      0,
    );
    expect(out).toMatchObject({ emit: [], held: 3, refused: 1 });
    expect(drain(gate, 1000).map(brief)).toEqual([
      'web-1:a:closed>half-open',
      'web-1:b:closed>open',
    ]);
  });

  it('one caller past its rate does not hold back another', () => {
    const gate = new CircuitEventGate({ requestsPerSecond: 1, burst: 1 });
    gate.offer(
      'shop/web',
      [transition('a', 'closed', 'open'), transition('b', 'closed', 'open')],
      0,
    );
    expect(gate.offer('shop/cart', [transition('a', 'closed', 'open')], 0).emit).toHaveLength(1);
  });
});
