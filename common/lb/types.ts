import type { Strategy } from '../resources.js';

/** The strategy names of `STRATEGIES` in common/resources.ts. */
export type StrategyName = Strategy;

export interface Endpoint {
  /** Unique and stable: hash strategies place endpoints by id. */
  readonly id: string;
  /** >= 0; weight 0 means drained: never picked by any strategy. */
  readonly weight: number;
  readonly zone?: string;
  readonly datacenter?: string;
}

export interface PickContext {
  /** Required by the hash strategies; a hash pick without a key returns undefined. */
  key?: string;
  localZone?: string;
  localDatacenter?: string;
  /** Active connections of an endpoint; absent means every endpoint has load 0. */
  load?: (id: string) => number;
}

export interface Balancer<E extends Endpoint> {
  /** How many endpoints it can pick from (those with weight > 0). */
  readonly size: number;
  /** Undefined only when `size === 0`, or for a hash strategy called without a key. */
  pick(ctx?: PickContext): E | undefined;
}

export interface BalancerOptions {
  /** Uniform in [0, 1); defaults to `Math.random`. Inject a seeded PRNG for determinism. */
  random?: () => number;
  /** Ring points per endpoint of average weight (consistent-hash); default 160. */
  virtualNodes?: number;
}
