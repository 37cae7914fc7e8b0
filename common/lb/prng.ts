// Math's functions are read once: inside a node:vm context (jest) each `Math.x` is a slow
// global lookup (about 1 µs); in the main context this is as fast as `Math.x`.
const { imul } = Math;

/**
 * mulberry32: a tiny, fast, seeded PRNG with a 2^32 period. Good enough to drive the
 * `random` option of the balancers deterministically (tests, simulations); not for secrets.
 */
export function mulberry32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = imul(state ^ (state >>> 15), 1 | state);
    t = (t + imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
