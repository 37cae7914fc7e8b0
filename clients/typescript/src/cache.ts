/**
 * The client's local copy of the services it watches (pure): a chunked snapshot built aside and
 * swapped in at `resync_end`, then the deltas of the event stream, answering discovery with
 * the operator's own code (common/discovery.ts: same healthy set, order, strategies, filters,
 * version weights). The sidecar keeps its copy the same way (sidecar/mirror-state.ts); this one
 * is smaller (no intentions, no config) and bounded: past `maxInstances` instances or
 * `maxServices` services it drops its content and says so (`overflowed`), and discovery goes
 * back to the operator until a snapshot fits again.
 */
import { ClientError } from '../../../common/client.js';
import {
  answerQuery,
  discoverable,
  discoveredOf,
  ServiceAnswer,
} from '../../../common/discovery.js';
import type { ParsedDiscover } from '../../../common/discovery.js';
import { serviceKey } from '../../../common/names.js';
import type { ServiceSpec } from '../../../common/resources.js';
import type {
  Instance,
  RegistryEvent,
  ResyncMessage,
  ServiceRef,
  SnapshotService,
} from '../../../common/wire.js';

export interface CacheLimits {
  /** Instances held in all (default 100,000). */
  maxInstances?: number;
  /** Services held (default 10,000). */
  maxServices?: number;
}

interface CachedService {
  readonly namespace: string;
  readonly name: string;
  spec: ServiceSpec | undefined;
  readonly instances: Map<string, Instance>;
  answer: ServiceAnswer | undefined;
}

export type CacheState = 'empty' | 'synced' | 'overflowed';

export class ServiceCache {
  private services = new Map<string, CachedService>();
  private pending: { seq: number; services: Map<string, CachedService>; count: number } | undefined;
  private instanceCount = 0;
  private readonly maxInstances: number;
  private readonly maxServices: number;
  /** `synced` once a snapshot was swapped in; `overflowed` when a bound was passed since. */
  state: CacheState = 'empty';

  constructor(limits: CacheLimits = {}) {
    this.maxInstances = limits.maxInstances ?? 100_000;
    this.maxServices = limits.maxServices ?? 10_000;
  }

  get size(): { services: number; instances: number } {
    return { services: this.services.size, instances: this.instanceCount };
  }

  /**
   * Applies a snapshot message; true when `resync_end` swapped a snapshot in. Throws
   * BUFFER_FULL (and drops the snapshot) when it holds more than the bounds allow.
   */
  applyResync(message: ResyncMessage): boolean {
    if (message.type === 'resync_begin') {
      this.pending = { seq: message.seq, services: new Map(), count: 0 };
      return false;
    }
    const pending = this.pending;
    if (pending?.seq !== message.seq) return false; // a part without its beginning: ignored
    if (message.type === 'resync_chunk') {
      for (const part of message.data.services) pending.count += addPart(pending.services, part);
      if (pending.count > this.maxInstances || pending.services.size > this.maxServices) {
        this.pending = undefined;
        throw this.overflow(pending.count, pending.services.size);
      }
      return false;
    }
    this.services = pending.services;
    this.instanceCount = pending.count;
    this.pending = undefined;
    this.state = 'synced';
    return true;
  }

  /** Forgets a snapshot that will not be completed (its connection was lost). */
  abortResync(): void {
    this.pending = undefined;
  }

  /** Applies one registry event; throws BUFFER_FULL (and empties the copy) past a bound. */
  apply(event: RegistryEvent): void {
    if (this.state !== 'synced') return; // deltas mean nothing without a base
    const ref = event.service;
    switch (event.type) {
      case 'service_updated':
        this.entry(ref).spec = event.data.declared ? event.data.spec : undefined;
        this.entry(ref).answer = undefined;
        break;
      case 'service_deleted': {
        const key = serviceKey(ref.namespace, ref.name);
        this.instanceCount -= this.services.get(key)?.instances.size ?? 0;
        this.services.delete(key);
        break;
      }
      case 'service_registered':
      case 'service_healthy':
      case 'service_unhealthy':
        this.upsert(ref, event.instance);
        break;
      case 'service_deregistered': {
        const entry = this.services.get(serviceKey(ref.namespace, ref.name));
        if (entry?.instances.delete(event.instance.id) === true) {
          this.instanceCount -= 1;
          entry.answer = undefined;
        }
        break;
      }
      default:
        break;
    }
    if (this.instanceCount > this.maxInstances || this.services.size > this.maxServices)
      throw this.overflow(this.instanceCount, this.services.size);
  }

  /** Whether the copy is synced and holds `namespace/name`. */
  has(namespace: string, name: string): boolean {
    return this.state === 'synced' && this.services.has(serviceKey(namespace, name));
  }

  /**
   * Answers a discovery query as the operator would: the JSON bytes of `{"instance":…}` or
   * `{"instances":[…]}`, or the operator's error (MaxineError: NO_HEALTHY_INSTANCE, …).
   */
  discover(namespace: string, name: string, query: ParsedDiscover): Buffer {
    const entry = this.services.get(serviceKey(namespace, name));
    if (entry === undefined) throw new Error(`${namespace}/${name} is not in the cache`);
    entry.answer ??= new ServiceAnswer(
      discoverable(entry.instances.values(), (i) => i.health.status).map(discoveredOf),
      entry.spec,
    );
    return answerQuery(entry, entry.answer, query);
  }

  /** Every instance held of a service (any health). */
  instances(namespace: string, name: string): Instance[] {
    return [...(this.services.get(serviceKey(namespace, name))?.instances.values() ?? [])];
  }

  private entry(ref: ServiceRef): CachedService {
    const key = serviceKey(ref.namespace, ref.name);
    let entry = this.services.get(key);
    if (entry === undefined) {
      entry = newEntry(ref.namespace, ref.name, undefined);
      this.services.set(key, entry);
    }
    return entry;
  }

  private upsert(ref: ServiceRef, instance: Instance): void {
    const entry = this.entry(ref);
    if (!entry.instances.has(instance.id)) this.instanceCount += 1;
    entry.instances.set(instance.id, instance);
    entry.answer = undefined;
  }

  private overflow(instances: number, services: number): ClientError {
    this.services = new Map();
    this.instanceCount = 0;
    this.state = 'overflowed';
    return new ClientError(
      0,
      'BUFFER_FULL',
      `the watched services hold ${instances} instances in ${services} services, more than the cache's bounds (maxInstances ${this.maxInstances}, maxServices ${this.maxServices}); discovery asks the operator instead`,
      { instances, services, maxInstances: this.maxInstances, maxServices: this.maxServices },
    );
  }
}

function newEntry(namespace: string, name: string, spec: ServiceSpec | undefined): CachedService {
  return { namespace, name, spec, instances: new Map(), answer: undefined };
}

/** Adds a snapshot part (a service's first, or more items of one seen before); returns how many instances it added. */
function addPart(services: Map<string, CachedService>, part: SnapshotService): number {
  const key = serviceKey(part.namespace, part.name);
  let entry = services.get(key);
  if (entry === undefined) {
    entry = newEntry(part.namespace, part.name, part.spec);
    services.set(key, entry);
  }
  const before = entry.instances.size;
  for (const item of part.items) entry.instances.set(item.id, item);
  return entry.instances.size - before;
}
