/**
 * Weighted random choice of an index: prefix sums and a binary search, O(log n); O(1) when
 * all weights are equal. Weights must be > 0.
 */

// Math's functions are read once: inside a node:vm context (jest) each `Math.x` is a slow
// global lookup (about 1 µs); in the main context this is as fast as `Math.x`.
const { floor, min } = Math;
export class WeightedSampler {
  /** prefix[i] = weights[0] + … + weights[i]; strictly increasing. */
  private readonly prefix: Float64Array;
  private readonly uniform: boolean;
  readonly total: number;

  constructor(private readonly weights: Float64Array) {
    const prefix = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) {
      sum += weights[i]!;
      prefix[i] = sum;
    }
    this.prefix = prefix;
    this.total = sum;
    this.uniform = weights.every((w) => w === weights[0]);
  }

  /** The index that owns `u` in [0, total): the first i with prefix[i] > u. */
  private search(u: number): number {
    const { prefix } = this;
    let lo = 0;
    let hi = prefix.length - 1; // the last index owns anything rounding pushed past the total
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (prefix[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** An index drawn with probability weight / total, from `r` uniform in [0, 1). */
  index(r: number): number {
    const n = this.prefix.length;
    if (this.uniform) return min(n - 1, floor(r * n));
    return this.search(r * this.total);
  }

  /**
   * An index other than `excluded` drawn with probability weight / (total - weight of
   * `excluded`), from `r` uniform in [0, 1). Needs at least two indices.
   */
  indexExcluding(r: number, excluded: number): number {
    const n = this.prefix.length;
    if (this.uniform) {
      const i = min(n - 2, floor(r * (n - 1)));
      return i >= excluded ? i + 1 : i;
    }
    const w = this.weights[excluded]!;
    const before = excluded === 0 ? 0 : this.prefix[excluded - 1]!;
    let u = r * (this.total - w);
    if (u >= before) u += w; // skip the excluded interval
    const i = this.search(u);
    if (i !== excluded) return i;
    return excluded === n - 1 ? excluded - 1 : excluded + 1; // only reachable through rounding
  }
}
