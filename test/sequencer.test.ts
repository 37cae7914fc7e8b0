/**
 * test/sequencer.js: on a fresh clone (no recorded durations) the suites are ordered by an
 * estimate, file size weighed by tier, so a large e2e suite starts before the unit files; a
 * recorded duration, when there is one, decides instead.
 */
import { describe, expect, it } from '@jest/globals';
import TierSequencer, { estimate } from './sequencer.js';

/** A test as jest hands it to a sequencer: a path, and a context that knows file sizes. */
function suite(path: string, size: number, cache = false) {
  return {
    path,
    context: {
      config: { cache, cacheDirectory: '/nonexistent', id: 'x' },
      hasteFS: { getSize: () => size },
    },
  };
}

describe('suite order for jest workers', () => {
  it.each([
    ['e2e/a.e2e.test.ts', 1000, 4000],
    ['test/integration/b.int.test.ts', 1000, 1000],
    ['common/c.test.ts', 1000, 250],
  ])('estimate(%s, %d bytes) = %d', (path, size, expected) => {
    expect(estimate(path, size)).toBe(expected);
  });

  it('a fresh clone: a smaller e2e suite starts before a larger unit file', () => {
    const tests = [
      suite('common/big.test.ts', 20_000),
      suite('test/integration/mid.int.test.ts', 6_000),
      suite('e2e/small.e2e.test.ts', 3_000),
    ];
    const order = new TierSequencer({} as never).sort(tests as never) as unknown as {
      path: string;
    }[];
    expect(order.map((t) => t.path)).toEqual([
      'e2e/small.e2e.test.ts',
      'test/integration/mid.int.test.ts',
      'common/big.test.ts',
    ]);
  });

  it('a recorded duration decides over the estimate', () => {
    const sequencer = new TierSequencer({} as never);
    const unit = suite('common/slow.test.ts', 100);
    const e2e = suite('e2e/quick.e2e.test.ts', 100);
    (sequencer as unknown as { _cache: Map<unknown, unknown> })._cache.set(unit.context, {
      'common/slow.test.ts': [1, 60_000],
    });
    const order = sequencer.sort([e2e, unit] as never) as unknown as { path: string }[];
    expect(order.map((t) => t.path)).toEqual(['common/slow.test.ts', 'e2e/quick.e2e.test.ts']);
  });
});
