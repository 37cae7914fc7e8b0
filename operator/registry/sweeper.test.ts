import { describe, expect, it } from '@jest/globals';
import type { SweepResult } from './registry.js';
import { LeaseSweeper } from './sweeper.js';

type Line = [level: 'info' | 'warn', fields: Record<string, unknown>, message: string];

function harness(results: SweepResult[]) {
  const lines: Line[] = [];
  const queue = [...results];
  const logger = {
    info: (fields: Record<string, unknown>, message: string) =>
      lines.push(['info', fields, message]),
    warn: (fields: Record<string, unknown>, message: string) =>
      lines.push(['warn', fields, message]),
  };
  const sweeper = new LeaseSweeper({
    registry: { sweep: () => queue.shift()! },
    logger: logger as never,
    intervalMs: 1000,
    massExpiryThreshold: 0.85,
  });
  return { sweeper, lines };
}

const r = (over: Partial<SweepResult>): SweepResult => ({
  lapsed: 0,
  removed: 0,
  leased: 10,
  guardActive: false,
  ...over,
});

describe('LeaseSweeper', () => {
  it.each([
    { name: 'a quiet sweep logs nothing', results: [r({})], messages: [] },
    {
      name: 'removals are logged with their count',
      results: [r({ lapsed: 2, removed: 2 })],
      messages: ['info expired instances removed'],
    },
    {
      name: 'the guard engaging is one warning, however many sweeps it holds',
      results: [
        r({ lapsed: 9, guardActive: true }),
        r({ lapsed: 9, guardActive: true }),
        r({ lapsed: 10, guardActive: true }),
      ],
      messages: [
        'warn mass-expiry guard engaged: too many leases lapsed at once, evictions are paused',
      ],
    },
    {
      name: 'the guard releasing is one info line, then the removals it allowed',
      results: [r({ lapsed: 9, guardActive: true }), r({ lapsed: 3, removed: 3 }), r({})],
      messages: [
        'warn mass-expiry guard engaged: too many leases lapsed at once, evictions are paused',
        'info mass-expiry guard released: evictions resume',
        'info expired instances removed',
      ],
    },
  ])('$name', ({ results, messages }) => {
    const { sweeper, lines } = harness(results);
    for (let i = 0; i < results.length; i++) expect(sweeper.sweepOnce()).toBe(results[i]);
    expect(lines.map(([level, , message]) => `${level} ${message}`)).toEqual(messages);
  });

  it('names the threshold and the counts in the engage line', () => {
    const { sweeper, lines } = harness([r({ lapsed: 9, leased: 10, guardActive: true })]);
    sweeper.sweepOnce();
    expect(lines[0]![1]).toEqual({ lapsed: 9, leased: 10, threshold: 0.85 });
  });
});
