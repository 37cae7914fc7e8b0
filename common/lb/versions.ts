/**
 * Canary version weights (`spec.versions`): which version's group takes the next pick. Without
 * a key the split follows smooth weighted round robin (over a cycle of `Σ weights` picks each
 * version gets exactly its weight); with a key the version is chosen by the key's hash, so a
 * session sticks to one version across the split. A version with weight 0 or without an
 * instance able to take traffic is left out; when no declared version has one, there is no
 * split (the caller routes to whatever is there). Shared by discovery (common/discovery.ts)
 * and the sidecar's proxy (`createVersionedBalancer`), so both split alike.
 */
import { murmur3 } from './hash.js';
import { createBalancer } from './index.js';
import { SmoothWeighted } from './swrr.js';
import type { Balancer, BalancerOptions, Endpoint, PickContext, StrategyName } from './types.js';

export interface VersionWeight {
  readonly name: string;
  readonly weight: number;
}

export class VersionSplit<G> {
  private readonly groups: Map<string, G>;
  private readonly split: SmoothWeighted<string>;
  /** Versions with their cumulative weights, for a key-sticky split. */
  private readonly ranges: { name: string; upTo: number }[];

  private constructor(groups: Map<string, G>, weighted: { item: string; weight: number }[]) {
    this.groups = groups;
    this.split = new SmoothWeighted(weighted);
    let upTo = 0;
    this.ranges = weighted.map((w) => ({ name: w.item, upTo: (upTo += w.weight) }));
  }

  /**
   * The split of `candidates` by `versions`, each version's members made into a group by
   * `group`; undefined when there is nothing to split (no versions, or none can take traffic).
   */
  static of<E extends Endpoint, G>(
    candidates: readonly E[],
    versions: readonly VersionWeight[] | undefined,
    versionOf: (e: E) => string | undefined,
    group: (members: E[]) => G,
  ): VersionSplit<G> | undefined {
    if (versions === undefined || versions.length === 0) return undefined;
    const groups = new Map<string, G>();
    const weighted: { item: string; weight: number }[] = [];
    for (const v of versions) {
      const members = candidates.filter((c) => versionOf(c) === v.name);
      // A version whose instances are all drained (weight 0) cannot take traffic.
      if (v.weight <= 0 || !members.some((c) => c.weight > 0)) continue;
      groups.set(v.name, group(members));
      weighted.push({ item: v.name, weight: v.weight });
    }
    return weighted.length > 0 ? new VersionSplit(groups, weighted) : undefined;
  }

  /** The group of the next pick: by the key's hash when there is a key, else by weight. */
  next(key: string | undefined): G | undefined {
    const version = key !== undefined ? this.versionForKey(key) : this.split.next();
    return version === undefined ? undefined : this.groups.get(version);
  }

  private versionForKey(key: string): string | undefined {
    const total = this.ranges.at(-1)?.upTo ?? 0;
    const point = murmur3(key, 0x9e3779b9) % total;
    return this.ranges.find((r) => point < r.upTo)?.name;
  }
}

/**
 * A balancer honouring `versions` as discovery does: the version is chosen first, then the
 * strategy picks among that version's instances. Without versions (or none able to take
 * traffic) it is the plain strategy's balancer.
 */
export interface VersionsOf<E> {
  readonly versions: readonly VersionWeight[] | undefined;
  readonly versionOf: (e: E) => string | undefined;
}

export function createVersionedBalancer<E extends Endpoint>(
  strategy: StrategyName,
  endpoints: readonly E[],
  options: BalancerOptions,
  { versions, versionOf }: VersionsOf<E>,
): Balancer<E> {
  const whole = createBalancer(strategy, endpoints, options);
  const split = VersionSplit.of(endpoints, versions, versionOf, (members) =>
    createBalancer(strategy, members, options),
  );
  if (split === undefined) return whole;
  return {
    size: whole.size,
    pick: (ctx?: PickContext) => split.next(ctx?.key)?.pick(ctx),
  };
}
