import { describe, expect, it } from '@jest/globals';
import { RepeatLimiter } from './repeat.js';

describe('RepeatLimiter', () => {
  it.each<[string, [number, string][], boolean[]]>([
    [
      'says a problem once, then once per interval',
      [
        [0, 'a'],
        [5, 'a'],
        [59, 'a'],
        [60, 'a'],
        [65, 'a'],
        [120, 'a'],
      ],
      [true, false, false, true, false, true],
    ],
    [
      'says a different problem at once',
      [
        [0, 'a'],
        [5, 'b'],
        [10, 'b'],
        [15, 'a'],
      ],
      [true, true, false, true],
    ],
    [
      'says the first problem after a success at once',
      [
        [0, 'a'],
        [5, 'reset'],
        [10, 'a'],
      ],
      [true, true],
    ],
  ])('%s', (_what, steps, expected) => {
    let t = 0;
    const limiter = new RepeatLimiter(60, () => t);
    const said: boolean[] = [];
    for (const [at, key] of steps) {
      t = at;
      if (key === 'reset') limiter.reset();
      else said.push(limiter.check(key).log);
    }
    expect(said).toEqual(expected);
  });

  it('counts the repeats it kept quiet about', () => {
    let t = 0;
    const limiter = new RepeatLimiter(60, () => t);
    expect(limiter.check('a')).toEqual({ log: true, repeats: 0 });
    for (t = 5; t < 60; t += 5) limiter.check('a');
    expect(limiter.check('a')).toEqual({ log: true, repeats: 11 });
  });
});
