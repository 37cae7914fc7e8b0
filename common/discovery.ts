/**
 * The discovery answer of one service: its healthy instances, pre-serialized, with the
 * balancers of every strategy and filter combination asked for so far. Built once per
 * membership change (register, deregister, health or spec change) and then only read, so a
 * discovery request costs a map lookup, a pick and a socket write. Shared by the operator's
 * registry and the sidecar's local copy, so both answer alike.
 */
import { createBalancer, needsKey } from './lb/index.js';
import { VersionSplit } from './lb/versions.js';
import type { Balancer, BalancerOptions, Endpoint, PickContext } from './lb/index.js';
import { MaxineError } from './errors.js';
import type { ServiceSpec, Strategy } from './resources.js';
import { DISCOVER_QUERY_KEYS } from './wire.js';
import type { DiscoveredInstance, DiscoverQuery, Instance } from './wire.js';

interface Candidate extends Endpoint {
  readonly view: DiscoveredInstance;
  /** `{"instance":{...}}`, written as-is to the socket. */
  readonly body: Buffer;
}

/** Filters that select a subset; strategy and locality only steer the pick inside it. */
export interface DiscoveryFilter {
  version?: string;
  zone?: string;
  datacenter?: string;
  metadata?: readonly (readonly [string, string])[];
}

/** A parsed discovery query, built once per distinct query string and then reused. */
export interface ParsedDiscover {
  filter: DiscoveryFilter;
  /** Cache key of the filter ('' for none), so a subset lookup builds no string. */
  filterKey: string;
  pick: PickRequest;
  all: boolean;
}

export interface PickRequest {
  strategy?: Strategy;
  key?: string;
  localZone?: string;
  localDatacenter?: string;
}

/** Resolves the service's `loadBalancing.hashKey` source when no `key` is given. */
export type KeySource = (source: string) => string | undefined;

/** Everything a single subset needs: candidates, balancers per strategy, the version split. */
class Subset {
  readonly candidates: readonly Candidate[];
  private allBody: Buffer | undefined;
  private readonly balancers = new Map<Strategy, Balancer<Candidate>>();
  /** `spec.versions` over the candidates (common/lb/versions.ts); undefined: no split. */
  private readonly versionSplit: VersionSplit<Subset> | undefined;
  /** Reused for every pick: discovery is synchronous, so one context per subset suffices. */
  private readonly ctx: PickContext;

  constructor(
    candidates: readonly Candidate[],
    private readonly load: ((id: string) => number) | undefined,
    private readonly options: BalancerOptions,
    versions?: readonly { name: string; weight: number }[],
  ) {
    this.candidates = candidates;
    this.ctx = { key: undefined, localZone: undefined, localDatacenter: undefined, load };
    // No declared version has a healthy instance: no split, route to whatever is healthy
    // rather than answer "none" (documented in docs/api.md, "Version weights").
    this.versionSplit = VersionSplit.of(
      candidates,
      versions,
      (c) => c.view.version,
      (members) => new Subset(members, load, options),
    );
  }

  all(): Buffer {
    this.allBody ??= Buffer.from(
      `{"instances":[${this.candidates.map((c) => JSON.stringify(c.view)).join(',')}]}`,
    );
    return this.allBody;
  }

  pick(strategy: Strategy, key: string | undefined, req: PickRequest): Candidate | undefined {
    if (this.versionSplit !== undefined) {
      // With a key the version is chosen by the key too, so a session sticks across the split.
      return this.versionSplit.next(key)?.pick(strategy, key, req);
    }
    let balancer = this.balancers.get(strategy);
    if (balancer === undefined) {
      balancer = createBalancer(strategy, this.candidates, this.options);
      this.balancers.set(strategy, balancer);
    }
    const ctx = this.ctx;
    ctx.key = key;
    ctx.localZone = req.localZone;
    ctx.localDatacenter = req.localDatacenter;
    return balancer.pick(ctx);
  }
}

/** Arbitrary filter combinations must not grow memory without bound. */
const MAX_SUBSETS = 256;

export class ServiceAnswer {
  private readonly root: Subset;
  private readonly subsets = new Map<string, Subset>();
  readonly defaultStrategy: Strategy;
  private readonly options: BalancerOptions;

  constructor(
    instances: readonly DiscoveredInstance[],
    private readonly spec: ServiceSpec | undefined,
    private readonly load?: (id: string) => number,
  ) {
    const candidates = instances.map(toCandidate);
    this.defaultStrategy = spec?.loadBalancing?.strategy ?? 'round-robin';
    this.options = { virtualNodes: spec?.loadBalancing?.virtualNodes };
    this.root = new Subset(candidates, load, this.options, spec?.versions);
  }

  get size(): number {
    return this.root.candidates.length;
  }

  /** One instance as `{"instance":...}` bytes, or a MaxineError when none fits. */
  pick(
    filter: DiscoveryFilter,
    req: PickRequest,
    keyFrom?: KeySource,
    filterCacheKey?: string,
  ): Buffer {
    const strategy = req.strategy ?? this.defaultStrategy;
    let key = req.key;
    if (needsKey(strategy) && key === undefined) {
      const source = this.spec?.loadBalancing?.hashKey;
      key = source === undefined ? undefined : keyFrom?.(source);
      if (key === undefined) {
        throw new MaxineError(
          'HASH_KEY_REQUIRED',
          `Strategy "${strategy}" needs a key: pass ?key=${source !== undefined && /^(header|cookie):/.test(source) ? ` or send ${source}` : ''}`,
        );
      }
    }
    const chosen = this.subset(filter, filterCacheKey).pick(strategy, key, req);
    if (chosen === undefined) throw new MaxineError('NO_HEALTHY_INSTANCE', noneMessage(filter));
    return chosen.body;
  }

  /** Every healthy instance that passes the filter as `{"instances":[...]}` bytes. */
  all(filter: DiscoveryFilter, filterCacheKey?: string): Buffer {
    const subset = this.subset(filter, filterCacheKey);
    if (subset.candidates.length === 0)
      throw new MaxineError('NO_HEALTHY_INSTANCE', noneMessage(filter));
    return subset.all();
  }

  private subset(filter: DiscoveryFilter, cacheKey?: string): Subset {
    const key = cacheKey ?? filterKey(filter);
    if (key === '') return this.root;
    let subset = this.subsets.get(key);
    if (subset === undefined) {
      if (this.subsets.size >= MAX_SUBSETS) this.subsets.clear();
      const members = this.root.candidates.filter((c) => matches(c.view, filter));
      // An explicit version filter bypasses the version split.
      subset = new Subset(
        members,
        this.load,
        this.options,
        filter.version === undefined ? this.spec?.versions : undefined,
      );
      this.subsets.set(key, subset);
    }
    return subset;
  }
}

function toCandidate(view: DiscoveredInstance): Candidate {
  return {
    id: view.id,
    weight: view.weight,
    zone: view.zone,
    datacenter: view.datacenter,
    view,
    body: Buffer.from(`{"instance":${JSON.stringify(view)}}`),
  };
}

function filterKey(f: DiscoveryFilter): string {
  if (
    f.version === undefined &&
    f.zone === undefined &&
    f.datacenter === undefined &&
    f.metadata === undefined
  ) {
    return '';
  }
  // JSON, so that no value can forge a separator: joining `k=v` pairs with a control character
  // let `?meta.a=x%01b%3Dy` share the cache entry of `?meta.a=x&meta.b=y` (cache poisoning).
  return JSON.stringify([
    f.version ?? null,
    f.zone ?? null,
    f.datacenter ?? null,
    f.metadata ?? null,
  ]);
}

function matches(view: DiscoveredInstance, f: DiscoveryFilter): boolean {
  if (f.version !== undefined && view.version !== f.version) return false;
  if (f.zone !== undefined && view.zone !== f.zone) return false;
  if (f.datacenter !== undefined && view.datacenter !== f.datacenter) return false;
  return (f.metadata ?? []).every(([k, v]) => view.metadata[k] === v);
}

function noneMessage(f: DiscoveryFilter): string {
  const parts = [
    f.version && `version=${f.version}`,
    f.zone && `zone=${f.zone}`,
    f.datacenter && `datacenter=${f.datacenter}`,
    ...(f.metadata ?? []).map(([k, v]) => `meta.${k}=${v}`),
  ].filter(Boolean);
  return parts.length === 0
    ? 'The service has no healthy instance'
    : `The service has no healthy instance matching ${parts.join(', ')}`;
}

/**
 * Splits a parsed discover query into the filter and the pick request. Query keys other than
 * the known ones must be `meta.KEY` (metadata filters); anything else is a 400 so that a typo
 * such as `?verison=` does not silently return unfiltered answers.
 */
export function splitDiscoverQuery(q: DiscoverQuery): ParsedDiscover {
  const metadata: [string, string][] = [];
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (DISCOVER_QUERY_KEYS.has(k)) continue;
    if (k.startsWith('meta.') && k.length > 5) metadata.push([k.slice(5), String(v)]);
    else unknown.push(k);
  }
  if (unknown.length > 0) {
    throw new MaxineError('VALIDATION_FAILED', `Unknown query parameter "${unknown[0]}"`, {
      issues: unknown.map((k) => ({
        path: k,
        message: 'unknown query parameter (metadata filters are meta.KEY=VALUE)',
      })),
    });
  }
  metadata.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const filter: DiscoveryFilter = {
    version: q.version,
    zone: q.zone,
    datacenter: q.datacenter,
    metadata: metadata.length > 0 ? metadata : undefined,
  };
  return {
    filter,
    filterKey: filterKey(filter),
    pick: {
      strategy: q.strategy,
      key: q.key,
      localZone: q.localZone,
      localDatacenter: q.localDatacenter,
    },
    all: q.all === true,
  };
}

/** The discovery view of an API instance (the sidecar's copy builds its answers from these). */
export function discoveredOf(i: Instance): DiscoveredInstance {
  return {
    id: i.id,
    service: i.service,
    host: i.host,
    port: i.port,
    ...(i.ports && { ports: i.ports }),
    ...(i.version !== undefined && { version: i.version }),
    ...(i.zone !== undefined && { zone: i.zone }),
    ...(i.datacenter !== undefined && { datacenter: i.datacenter }),
    weight: i.weight,
    metadata: i.metadata,
    health: i.health.status,
  };
}

/** What discovery hands out of a service: its non-critical instances in a stable order. */
export function discoverable<T extends { id: string }>(
  instances: Iterable<T>,
  status: (i: T) => string,
): T[] {
  return [...instances]
    .filter((i) => status(i) !== 'critical')
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Answers a parsed discovery query for one service, as the operator and the sidecar both do:
 * blocked discovery is refused with its reason, else one pick or every healthy instance.
 */
export function answerQuery(
  service: { namespace: string; name: string; spec: ServiceSpec | undefined },
  answer: ServiceAnswer,
  query: ParsedDiscover,
  keyFrom?: KeySource,
): Buffer {
  const blocked = service.spec?.blocked;
  if (blocked?.discovery === true) {
    throw new MaxineError(
      'SERVICE_BLOCKED',
      `Discovery of ${service.namespace}/${service.name} is blocked: ${blocked.reason}`,
      { reason: blocked.reason },
    );
  }
  return query.all
    ? answer.all(query.filter, query.filterKey)
    : answer.pick(query.filter, query.pick, keyFrom, query.filterKey);
}
