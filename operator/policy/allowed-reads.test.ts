import { describe, expect, it } from '@jest/globals';
import { AllowedReadCounts } from './allowed-reads.js';
import type { AllowedReadsEntry } from './allowed-reads.js';
import { NO_SOURCE } from './discovery-cache.js';

const A = { id: 'u:a', who: 'User a' };
const B = { id: 'u:b', who: 'User b' };
const T0 = Date.parse('2026-12-06T20:00:00.000Z');

function counts(maxKeys = 10): {
  c: AllowedReadCounts;
  written: AllowedReadsEntry[];
  early: number[];
} {
  const written: AllowedReadsEntry[] = [];
  const early: number[] = [];
  const c = new AllowedReadCounts(
    (e) => written.push(e),
    maxKeys,
    () => early.push(1),
  );
  return { c, written, early };
}

describe('allowed reads counted per principal, source and service', () => {
  // reads (principal id, source, service) → the records one flush writes (source, service, count)
  it.each<[string, [string, string, string][], [string | undefined, string, number][]]>([
    [
      'one key',
      [
        ['u:a', 'shop/web', 'shop/orders'],
        ['u:a', 'shop/web', 'shop/orders'],
      ],
      [['shop/web', 'service shop/orders', 2]],
    ],
    [
      'two sources',
      [
        ['u:a', 'shop/web', 'shop/orders'],
        ['u:a', 'shop/cart', 'shop/orders'],
      ],
      [
        ['shop/web', 'service shop/orders', 1],
        ['shop/cart', 'service shop/orders', 1],
      ],
    ],
    [
      'two services',
      [
        ['u:a', 'shop/web', 'shop/orders'],
        ['u:a', 'shop/web', 'shop/pay'],
      ],
      [
        ['shop/web', 'service shop/orders', 1],
        ['shop/web', 'service shop/pay', 1],
      ],
    ],
    [
      'two principals',
      [
        ['u:a', 'shop/web', 'shop/orders'],
        ['u:b', 'shop/web', 'shop/orders'],
      ],
      [
        ['shop/web', 'service shop/orders', 1],
        ['shop/web', 'service shop/orders', 1],
      ],
    ],
    [
      'no source header: no source field',
      [['u:a', NO_SOURCE, 'shop/orders']],
      [[undefined, 'service shop/orders', 1]],
    ],
  ])('%s', (_what, reads, expected) => {
    const { c, written } = counts();
    for (const [id, source, service] of reads)
      c.add({ id, who: `User ${id}` }, source, service, T0);
    expect(c.pending).toBe(reads.length);
    c.flush(T0 + 1000);
    expect(written.map((w) => [w.source, w.object, w.count])).toEqual(expected);
    expect(c.size).toBe(0);
    for (const w of written) {
      expect(w).toMatchObject({
        action: 'discover',
        outcome: 'allowed',
        from: '2026-12-06T20:00:00.000Z',
        to: '2026-12-06T20:00:01.000Z',
      });
    }
  });

  it('writes nothing when nothing was counted, and starts every interval from zero', () => {
    const { c, written } = counts();
    c.flush(T0);
    expect(written).toEqual([]);
    c.add(A, 'shop/web', 'shop/orders', T0);
    c.flush(T0 + 10);
    c.add(A, 'shop/web', 'shop/orders', T0 + 20);
    c.flush(T0 + 30);
    expect(written.map((w) => w.count)).toEqual([1, 1]);
  });

  it('at the bound writes every count early, then counts the new key', () => {
    const { c, written, early } = counts(2);
    c.add(A, 'shop/web', 'shop/orders', T0);
    c.add(A, 'shop/web', 'shop/orders', T0);
    c.add(A, 'shop/cart', 'shop/orders', T0);
    expect(written).toEqual([]);
    c.add(B, 'shop/web', 'shop/orders', T0 + 5);
    expect(written.map((w) => [w.who, w.source, w.count])).toEqual([
      ['User a', 'shop/web', 2],
      ['User a', 'shop/cart', 1],
    ]);
    expect(early).toHaveLength(1);
    expect(c.earlyFlushes).toBe(1);
    expect(c.size).toBe(1);
    expect(c.pending).toBe(1);
  });
});
