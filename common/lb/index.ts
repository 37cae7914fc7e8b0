/**
 * Load-balancing strategies: pure (no I/O, timers or globals; randomness comes from
 * `options.random`, `Math.random` by default), built once per endpoint set and then picked
 * from on the hot path. Everything a pick needs is precomputed at construction and no pick
 * allocates. Cost of one pick, n = endpoints with weight > 0:
 *
 * | strategy             | pick                                                                  |
 * | -------------------- | --------------------------------------------------------------------- |
 * | round-robin          | O(1)                                                                  |
 * | weighted-round-robin | O(1): a precomputed nginx cycle; O(n) when it cannot be precomputed ¹ |
 * | random               | O(1), 1 random draw                                                   |
 * | weighted-random      | O(log n) binary search of prefix sums; O(1) with equal weights        |
 * | least-connections    | O(n) calls of `load` (loads are only known at pick time)              |
 * | power-of-two-choices | O(log n), O(1) with equal weights; 2 random draws, 2 `load` calls     |
 * | consistent-hash      | O(key length) murmur3 + O(log(V·n)) binary search of the ring         |
 * | rendezvous-hash      | O(key length) murmur3 + O(n) pair hashes + 1 log per distinct weight  |
 * | locality-aware       | O(1): ≤ 3 map lookups + one weighted-round-robin step ¹               |
 *
 * ¹ The nginx sequence repeats every sum(weights) / gcd(weights) picks; it is precomputed
 *   when the weights are integers and that cycle is ≤ 65,536 picks and ≤ 2^20 steps of
 *   work to build; otherwise (fractional weights, huge cycles) each pick runs the O(n)
 *   nginx step. Construction is O(n) for most strategies, O(n log n) for the hash ones,
 *   O(cycle · n) for the precomputed weighted round robin.
 *
 * Consistent-hash virtual nodes: an endpoint gets max(1, round(V · weight / mean weight))
 * ring points (V = `virtualNodes`, default 160), so the ring holds about V · n points and
 * shares follow the weights. See ./ring.ts.
 *
 * Endpoints with weight 0 are drained and never picked by any strategy; a weight that is
 * negative or not finite, or a repeated id, makes `createBalancer` throw a RangeError.
 */
import { activeEndpoints } from './endpoints.js';
import { DEFAULT_VIRTUAL_NODES } from './ring.js';
import {
  ConsistentHashBalancer,
  LeastConnectionsBalancer,
  LocalityAwareBalancer,
  PowerOfTwoChoicesBalancer,
  RandomBalancer,
  RendezvousHashBalancer,
  RoundRobinBalancer,
  WeightedRandomBalancer,
  WeightedRoundRobinBalancer,
} from './strategies.js';
import type { Balancer, BalancerOptions, Endpoint, StrategyName } from './types.js';

export type { Balancer, BalancerOptions, Endpoint, PickContext, StrategyName } from './types.js';
export { SmoothWeighted } from './swrr.js';
export { murmur3 } from './hash.js';

/** Whether the strategy needs `PickContext.key` (a pick without one returns undefined). */
export function needsKey(strategy: StrategyName): boolean {
  return strategy === 'consistent-hash' || strategy === 'rendezvous-hash';
}

function virtualNodesOf(options: BalancerOptions): number {
  const v = options.virtualNodes ?? DEFAULT_VIRTUAL_NODES;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`virtualNodes must be an integer >= 1, got ${v}`);
  }
  return v;
}

/** A balancer over `endpoints` (in the registry's stable order) for `strategy`. */
export function createBalancer<E extends Endpoint>(
  strategy: StrategyName,
  endpoints: readonly E[],
  options: BalancerOptions = {},
): Balancer<E> {
  const active = activeEndpoints(endpoints);
  const random = options.random ?? Math.random;
  switch (strategy) {
    case 'round-robin':
      return new RoundRobinBalancer(active);
    case 'weighted-round-robin':
      return new WeightedRoundRobinBalancer(active);
    case 'random':
      return new RandomBalancer(active, random);
    case 'weighted-random':
      return new WeightedRandomBalancer(active, random);
    case 'least-connections':
      return new LeastConnectionsBalancer(active);
    case 'power-of-two-choices':
      return new PowerOfTwoChoicesBalancer(active, random);
    case 'consistent-hash':
      return new ConsistentHashBalancer(active, virtualNodesOf(options));
    case 'rendezvous-hash':
      return new RendezvousHashBalancer(active);
    case 'locality-aware':
      return new LocalityAwareBalancer(active);
    default: {
      const unknown: never = strategy;
      throw new RangeError(`unknown load-balancing strategy "${String(unknown)}"`);
    }
  }
}
