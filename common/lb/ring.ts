import { idRanks } from './endpoints.js';
import { murmur3 } from './hash.js';
import type { Endpoint } from './types.js';

// Math's functions are read once: inside a node:vm context (jest) each `Math.x` is a slow
// global lookup (about 1 µs); in the main context this is as fast as `Math.x`.
const { floor, max, round } = Math;

export const DEFAULT_VIRTUAL_NODES = 160;

/** Ranks are packed under the 32-bit point in one float64: point · 2^21 + rank < 2^53. */
const RANK_SPACE = 2 ** 21;

/**
 * A consistent-hash ring: a sorted Uint32Array of points, each owned by an endpoint; a key
 * belongs to the first point at or after its hash (wrapping around).
 *
 * Virtual nodes: endpoint i gets max(1, round(V · weightᵢ / mean weight)) points, so the
 * ring holds about V · n points whatever the weights' scale, and an endpoint's share of
 * keys is proportional to its weight. Point j of an endpoint is murmur3(id, seed j): it
 * depends on the id alone, so an endpoint keeps its points across rebuilds, and a change
 * of its point count (when the mean weight moves) only adds or drops points at the end.
 * Equal points of different endpoints are ordered by id, so the ring depends on the set of
 * endpoints only, not on their order.
 */
export class HashRing<E extends Endpoint> {
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;

  constructor(
    private readonly endpoints: readonly E[],
    virtualNodes: number,
  ) {
    if (endpoints.length > RANK_SPACE) throw new RangeError('too many endpoints for a hash ring');
    const ranks = idRanks(endpoints);
    const indexOfRank = new Uint32Array(endpoints.length);
    ranks.forEach((rank, index) => (indexOfRank[rank] = index));

    const mean = endpoints.reduce((sum, e) => sum + e.weight, 0) / endpoints.length;
    const counts = endpoints.map((e) => max(1, round((virtualNodes * e.weight) / mean)));
    const packed = new Float64Array(counts.reduce((sum, c) => sum + c, 0));
    let at = 0;
    endpoints.forEach((e, index) => {
      const rank = ranks[index]!;
      for (let j = 0; j < counts[index]!; j++) packed[at++] = murmur3(e.id, j) * RANK_SPACE + rank;
    });
    packed.sort();

    this.points = new Uint32Array(packed.length);
    this.owners = new Uint32Array(packed.length);
    packed.forEach((value, i) => {
      const point = floor(value / RANK_SPACE);
      this.points[i] = point;
      this.owners[i] = indexOfRank[value - point * RANK_SPACE]!;
    });
  }

  /** How many points the ring holds. */
  get length(): number {
    return this.points.length;
  }

  /** The endpoint owning `hash` (a uint32), by binary search; undefined on an empty ring. */
  lookup(hash: number): E | undefined {
    const { points } = this;
    if (points.length === 0) return undefined;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.endpoints[this.owners[lo === points.length ? 0 : lo]!];
  }
}
