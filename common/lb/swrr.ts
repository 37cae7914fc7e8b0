/**
 * Smooth weighted round robin, the nginx algorithm: on every pick each item's `current`
 * grows by its weight, the item with the largest `current` (the first one on a tie) wins
 * and pays the total weight back. Over a cycle of `total` picks every item is picked
 * exactly `weight` times, well interleaved: weights {a: 5, b: 1, c: 1} give
 * a a b a c a a.
 *
 * The sequence repeats after `total / gcd(weights)` picks, so for integer weights with a
 * short enough cycle it is computed once at construction and a pick is an array read
 * (O(1)). Otherwise (fractional weights, or a cycle longer than {@link MAX_CYCLE} or
 * costing more than {@link MAX_BUILD_STEPS} to compute) the nginx step runs live, O(n) per
 * pick. Both give the same sequence.
 */

/** Longest precomputed cycle (picks), i.e. at most 256 KiB of schedule. */
export const MAX_CYCLE = 1 << 16;
/** Most work (cycle length × items) spent precomputing a schedule at construction. */
export const MAX_BUILD_STEPS = 1 << 20;

/** The nginx state machine over item indices. */
class NginxStep {
  private readonly current: Float64Array;

  constructor(
    private readonly weights: Float64Array,
    private readonly total: number,
  ) {
    this.current = new Float64Array(weights.length);
  }

  next(): number {
    const { weights, current } = this;
    let best = 0;
    let bestCurrent = -Infinity;
    for (let i = 0; i < weights.length; i++) {
      const c = current[i]! + weights[i]!;
      current[i] = c;
      if (c > bestCurrent) {
        best = i;
        bestCurrent = c;
      }
    }
    current[best] = bestCurrent - this.total;
    return best;
  }
}

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) {
    const r = x % y;
    x = y;
    y = r;
  }
  return x;
}

/** The precomputed cycle of item indices, or undefined when it should run live. */
function buildSchedule(weights: Float64Array): Uint32Array | undefined {
  if (weights.length === 0) return undefined;
  let divisor = 0;
  for (const w of weights) {
    if (!Number.isSafeInteger(w)) return undefined;
    divisor = gcd(w, divisor);
  }
  const normalised = weights.map((w) => w / divisor);
  const cycle = normalised.reduce((sum, w) => sum + w, 0);
  if (cycle > MAX_CYCLE || cycle * weights.length > MAX_BUILD_STEPS) return undefined;
  const step = new NginxStep(normalised, cycle);
  const schedule = new Uint32Array(cycle);
  for (let i = 0; i < cycle; i++) schedule[i] = step.next();
  return schedule;
}

/** Throws unless `weight` is a finite number >= 0. */
export function checkWeight(weight: number, what: string): void {
  if (!(Number.isFinite(weight) && weight >= 0)) {
    throw new RangeError(`${what}: weight must be a finite number >= 0, got ${weight}`);
  }
}

/** Smooth weighted round robin over arbitrary items (nginx); weight 0 items are never returned. */
export class SmoothWeighted<T> {
  private readonly items: T[] = [];
  private readonly schedule: Uint32Array | undefined;
  private readonly live: NginxStep | undefined;
  private position = 0;

  constructor(items: readonly { item: T; weight: number }[]) {
    const weights: number[] = [];
    for (const { item, weight } of items) {
      checkWeight(weight, 'SmoothWeighted');
      if (weight === 0) continue;
      this.items.push(item);
      weights.push(weight);
    }
    const w = Float64Array.from(weights);
    this.schedule = buildSchedule(w);
    this.live =
      this.schedule === undefined && w.length > 0
        ? new NginxStep(
            w,
            weights.reduce((sum, x) => sum + x, 0),
          )
        : undefined;
  }

  /** The next item of the sequence; undefined only when no item has weight > 0. */
  next(): T | undefined {
    const { schedule } = this;
    if (schedule !== undefined) {
      const index = schedule[this.position]!;
      this.position = this.position + 1 === schedule.length ? 0 : this.position + 1;
      return this.items[index];
    }
    return this.live === undefined ? undefined : this.items[this.live.next()];
  }
}
