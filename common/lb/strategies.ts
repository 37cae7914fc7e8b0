/**
 * The balancers behind `createBalancer`. Each one receives the endpoints already filtered
 * to weight > 0 (see `activeEndpoints`), precomputes what it can, and keeps only the state
 * its algorithm needs (a cursor, the nginx schedule position). No pick allocates.
 */
import { idRanks } from './endpoints.js';
import { murmur3, pairHash, unitInterval } from './hash.js';
import { HashRing } from './ring.js';
import { WeightedSampler } from './sampler.js';
import { SmoothWeighted } from './swrr.js';
import type { Balancer, Endpoint, PickContext } from './types.js';

// Math's functions are read once: inside a node:vm context (jest) each `Math.x` is a slow
// global lookup (about 1 µs); in the main context this is as fast as `Math.x`.
const { floor, log, min } = Math;

function weightsOf(endpoints: readonly Endpoint[]): Float64Array {
  return Float64Array.from(endpoints, (e) => e.weight);
}

function smoothWeighted<E extends Endpoint>(endpoints: readonly E[]): SmoothWeighted<E> {
  return new SmoothWeighted(endpoints.map((e) => ({ item: e, weight: e.weight })));
}

/** Cycles through the endpoints in the given order, starting at index 0. O(1). */
export class RoundRobinBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private cursor = 0;

  constructor(private readonly endpoints: readonly E[]) {
    this.size = endpoints.length;
  }

  pick(): E | undefined {
    const e = this.endpoints[this.cursor];
    this.cursor = this.cursor + 1 >= this.size ? 0 : this.cursor + 1;
    return e;
  }
}

/** Smooth weighted round robin (nginx). O(1) with a precomputed cycle, else O(n). */
export class WeightedRoundRobinBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private readonly sequence: SmoothWeighted<E>;

  constructor(endpoints: readonly E[]) {
    this.size = endpoints.length;
    this.sequence = smoothWeighted(endpoints);
  }

  pick(): E | undefined {
    return this.sequence.next();
  }
}

/** Uniform over the endpoints, ignoring weights (other than drained). O(1). */
export class RandomBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;

  constructor(
    private readonly endpoints: readonly E[],
    private readonly random: () => number,
  ) {
    this.size = endpoints.length;
  }

  pick(): E | undefined {
    if (this.size === 0) return undefined;
    return this.endpoints[min(this.size - 1, floor(this.random() * this.size))];
  }
}

/** Probability weight / total weight: prefix sums + binary search, O(log n). */
export class WeightedRandomBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private readonly sampler: WeightedSampler;

  constructor(
    private readonly endpoints: readonly E[],
    private readonly random: () => number,
  ) {
    this.size = endpoints.length;
    this.sampler = new WeightedSampler(weightsOf(endpoints));
  }

  pick(): E | undefined {
    if (this.size === 0) return undefined;
    return this.endpoints[this.sampler.index(this.random())];
  }
}

/**
 * The endpoint with the lowest load / weight (compared as load_a · weight_b < load_b ·
 * weight_a, exact for integers). The scan starts just after the previous pick and keeps
 * the first minimum, so endpoints with equal loads are taken in turn; with no `load`
 * function every load is 0 and this is round robin. O(n) calls of `load`.
 */
export class LeastConnectionsBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private readonly weights: Float64Array;
  private start = 0;

  constructor(private readonly endpoints: readonly E[]) {
    this.size = endpoints.length;
    this.weights = weightsOf(endpoints);
  }

  pick(ctx?: PickContext): E | undefined {
    const { endpoints, weights, size } = this;
    if (size === 0) return undefined;
    const load = ctx?.load;
    let best = this.start;
    if (load !== undefined) {
      let bestLoad = load(endpoints[best]!.id);
      let bestWeight = weights[best]!;
      for (let step = 1, i = best + 1; step < size; step++, i++) {
        if (i === size) i = 0;
        const l = load(endpoints[i]!.id);
        const w = weights[i]!;
        if (l * bestWeight < bestLoad * w) {
          best = i;
          bestLoad = l;
          bestWeight = w;
        }
      }
    }
    this.start = best + 1 === size ? 0 : best + 1;
    return endpoints[best];
  }
}

/**
 * Power of two choices: two distinct endpoints drawn with probability proportional to
 * weight, the one with the lower load / weight wins (the first drawn on a tie, so with
 * equal loads the picks follow the weights). O(log n), O(1) with equal weights; 2 calls of
 * `load`.
 */
export class PowerOfTwoChoicesBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private readonly weights: Float64Array;
  private readonly sampler: WeightedSampler;

  constructor(
    private readonly endpoints: readonly E[],
    private readonly random: () => number,
  ) {
    this.size = endpoints.length;
    this.weights = weightsOf(endpoints);
    this.sampler = new WeightedSampler(this.weights);
  }

  pick(ctx?: PickContext): E | undefined {
    const { endpoints, weights, sampler } = this;
    if (this.size < 2) return endpoints[0];
    const a = sampler.index(this.random());
    const load = ctx?.load;
    if (load === undefined) return endpoints[a]; // every load is 0: the first draw wins
    const b = sampler.indexExcluding(this.random(), a);
    const loadA = load(endpoints[a]!.id);
    const loadB = load(endpoints[b]!.id);
    return loadB * weights[a]! < loadA * weights[b]! ? endpoints[b] : endpoints[a];
  }
}

/** Consistent hashing on a ring with virtual nodes (see HashRing). O(|key| + log(V·n)). */
export class ConsistentHashBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private readonly ring: HashRing<E>;

  constructor(endpoints: readonly E[], virtualNodes: number) {
    this.size = endpoints.length;
    this.ring = new HashRing(endpoints, virtualNodes);
  }

  pick(ctx?: PickContext): E | undefined {
    const key = ctx?.key;
    return key === undefined ? undefined : this.ring.lookup(murmur3(key));
  }
}

/**
 * Rendezvous (highest random weight) hashing: every endpoint scores the key, the highest
 * score wins. With h = pairHash(murmur3(key), murmur3(id)) and u = h mapped into (0, 1),
 * the score is -weight / ln(u), which gives each endpoint a share of keys proportional to
 * its weight (and is just h's order when weights are equal). Ties go to the smaller id.
 *
 * The score grows with h for a given weight, so endpoints are grouped by weight at
 * construction: a pick finds the highest h of each group by integer comparison and takes a
 * logarithm only for each group's leader. O(|key| + n) pair hashes + one log per distinct
 * weight.
 */
export class RendezvousHashBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  /** Endpoint indices, grouped by weight. */
  private readonly order: Uint32Array;
  /** Per slot of `order`: murmur3 of the endpoint's id, and its rank by id. */
  private readonly idHashes: Uint32Array;
  private readonly ranks: Uint32Array;
  /** Per group: the slot after its last one, and its weight. */
  private readonly groupEnds: Uint32Array;
  private readonly groupWeights: Float64Array;

  constructor(private readonly endpoints: readonly E[]) {
    this.size = endpoints.length;
    const ranks = idRanks(endpoints);
    const order = endpoints.map((_, i) => i);
    order.sort((a, b) => endpoints[a]!.weight - endpoints[b]!.weight || a - b);
    this.order = Uint32Array.from(order);
    this.idHashes = Uint32Array.from(order, (i) => murmur3(endpoints[i]!.id));
    this.ranks = Uint32Array.from(order, (i) => ranks[i]!);
    const ends: number[] = [];
    const weights: number[] = [];
    order.forEach((index, slot) => {
      const weight = endpoints[index]!.weight;
      if (weights.at(-1) === weight) ends[ends.length - 1] = slot + 1;
      else {
        ends.push(slot + 1);
        weights.push(weight);
      }
    });
    this.groupEnds = Uint32Array.from(ends);
    this.groupWeights = Float64Array.from(weights);
  }

  /** The slot in [start, end) with the highest pair hash (the smaller id on a tie). */
  private leader(keyHash: number, start: number, end: number): number {
    const { idHashes, ranks } = this;
    let best = start;
    let bestHash = pairHash(keyHash, idHashes[start]!);
    for (let slot = start + 1; slot < end; slot++) {
      const h = pairHash(keyHash, idHashes[slot]!);
      if (h > bestHash || (h === bestHash && ranks[slot]! < ranks[best]!)) {
        best = slot;
        bestHash = h;
      }
    }
    return best;
  }

  pick(ctx?: PickContext): E | undefined {
    const key = ctx?.key;
    if (key === undefined || this.size === 0) return undefined;
    const { groupEnds, groupWeights, idHashes, ranks } = this;
    const keyHash = murmur3(key);
    let best = 0;
    let bestScore = -1;
    for (let group = 0, start = 0; group < groupEnds.length; group++) {
      const end = groupEnds[group]!;
      const slot = this.leader(keyHash, start, end);
      const u = unitInterval(pairHash(keyHash, idHashes[slot]!));
      const score = -groupWeights[group]! / log(u);
      if (score > bestScore || (score === bestScore && ranks[slot]! < ranks[best]!)) {
        best = slot;
        bestScore = score;
      }
      start = end;
    }
    return this.endpoints[this.order[best]!];
  }
}

/**
 * Locality-aware: tiers tried in order, the first non-empty one wins (failover):
 * 1. the caller's zone: endpoints whose zone is `localZone` and, when `localDatacenter` is
 *    given too, whose datacenter is `localDatacenter`;
 * 2. the caller's datacenter: endpoints whose datacenter is `localDatacenter`;
 * 3. every endpoint.
 * A tier without a matching caller field is skipped. Each tier runs its own smooth
 * weighted round robin. O(1): at most three map lookups and an O(1) SWRR step (see
 * SmoothWeighted for when that is O(n)).
 */
export class LocalityAwareBalancer<E extends Endpoint> implements Balancer<E> {
  readonly size: number;
  private readonly all: SmoothWeighted<E>;
  private readonly byZone = new Map<string, SmoothWeighted<E>>();
  private readonly byDatacenterZone = new Map<string, Map<string, SmoothWeighted<E>>>();
  private readonly byDatacenter = new Map<string, SmoothWeighted<E>>();

  constructor(endpoints: readonly E[]) {
    this.size = endpoints.length;
    this.all = smoothWeighted(endpoints);
    const zones = groupBy(endpoints, (e) => e.zone);
    const datacenters = groupBy(endpoints, (e) => e.datacenter);
    for (const [zone, members] of zones) this.byZone.set(zone, smoothWeighted(members));
    for (const [datacenter, members] of datacenters) {
      this.byDatacenter.set(datacenter, smoothWeighted(members));
      const tiers = new Map<string, SmoothWeighted<E>>();
      for (const [zone, inZone] of groupBy(members, (e) => e.zone)) {
        tiers.set(zone, smoothWeighted(inZone));
      }
      this.byDatacenterZone.set(datacenter, tiers);
    }
  }

  pick(ctx?: PickContext): E | undefined {
    const zone = ctx?.localZone;
    const datacenter = ctx?.localDatacenter;
    if (zone !== undefined) {
      const tier =
        datacenter === undefined
          ? this.byZone.get(zone)
          : this.byDatacenterZone.get(datacenter)?.get(zone);
      if (tier !== undefined) return tier.next();
    }
    if (datacenter !== undefined) {
      const tier = this.byDatacenter.get(datacenter);
      if (tier !== undefined) return tier.next();
    }
    return this.all.next();
  }
}

function groupBy<E>(items: readonly E[], keyOf: (item: E) => string | undefined): Map<string, E[]> {
  const groups = new Map<string, E[]>();
  for (const item of items) {
    const key = keyOf(item);
    if (key === undefined) continue;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return groups;
}
