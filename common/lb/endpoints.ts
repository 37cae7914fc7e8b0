import { checkWeight } from './swrr.js';
import type { Endpoint } from './types.js';

/**
 * The endpoints a balancer can pick from: those with weight > 0, in the given order.
 * Throws a RangeError on a weight that is negative or not finite, or on a repeated id.
 */
export function activeEndpoints<E extends Endpoint>(endpoints: readonly E[]): E[] {
  const seen = new Set<string>();
  const active: E[] = [];
  for (const endpoint of endpoints) {
    checkWeight(endpoint.weight, `endpoint "${endpoint.id}"`);
    if (seen.has(endpoint.id)) throw new RangeError(`endpoint id "${endpoint.id}" is repeated`);
    seen.add(endpoint.id);
    if (endpoint.weight > 0) active.push(endpoint);
  }
  return active;
}

/**
 * Each endpoint's rank when sorted by id (code-unit order): a tie-break that depends on
 * the set of endpoints only, not on the order they were given in.
 */
export function idRanks(endpoints: readonly Endpoint[]): Uint32Array {
  const order = endpoints.map((_, i) => i);
  order.sort((a, b) => {
    const x = endpoints[a]!.id;
    const y = endpoints[b]!.id;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const ranks = new Uint32Array(endpoints.length);
  order.forEach((index, rank) => (ranks[index] = rank));
  return ranks;
}
