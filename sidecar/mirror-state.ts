/**
 * The sidecar's copy of the registry (pure): services with their specs and instances, kept
 * equal to the operator's by applying its event stream — a `resync` snapshot, then deltas —
 * and answering discovery exactly as the operator does (common/discovery.ts): same healthy
 * set, same order, same strategies and filters.
 */
import { answerQuery, discoverable, discoveredOf, ServiceAnswer } from '../common/discovery.js';
import type { KeySource, ParsedDiscover } from '../common/discovery.js';
import type { DiscoverySource } from '../common/discover-request.js';
import { MaxineError } from '../common/errors.js';
import { serviceKey } from '../common/names.js';
import type { ServiceSpec } from '../common/resources.js';
import type { Instance, MaxineEvent, ServiceRef } from '../common/wire.js';

interface MirroredService {
  readonly namespace: string;
  readonly name: string;
  spec: ServiceSpec | undefined;
  readonly instances: Map<string, Instance>;
  answer: ServiceAnswer | undefined;
}

interface SnapshotService {
  namespace: string;
  name: string;
  spec?: ServiceSpec;
  items?: Instance[];
}

export class MirrorState implements DiscoverySource {
  private services = new Map<string, MirroredService>();
  /** The seq of the last event applied; the stream resumes after it. */
  lastSeq: number | undefined;

  /** Applies one event; returns the service it changed (for spec watchers), if any. */
  apply(event: MaxineEvent): ServiceRef | undefined {
    this.lastSeq = event.seq;
    if (event.type === 'resync') {
      this.replaceAll((event.data?.services as SnapshotService[] | undefined) ?? []);
      return undefined;
    }
    const ref = event.service;
    if (ref === undefined) return undefined;
    switch (event.type) {
      case 'service_updated': {
        const entry = this.entry(ref);
        entry.spec = event.data?.declared === true ? (event.data.spec as ServiceSpec) : undefined;
        entry.answer = undefined;
        return ref;
      }
      case 'service_deleted':
        this.services.delete(serviceKey(ref.namespace, ref.name));
        return ref;
      case 'service_registered':
      case 'service_healthy':
      case 'service_unhealthy':
        if (event.instance !== undefined) this.upsert(ref, event.instance);
        return undefined;
      case 'service_deregistered':
        if (event.instance !== undefined) this.remove(ref, event.instance.id);
        return undefined;
      default:
        return undefined;
    }
  }

  discoverParsed(key: string, query: ParsedDiscover, keyFrom?: KeySource): Buffer {
    const entry = this.services.get(key);
    if (entry === undefined)
      throw new MaxineError('SERVICE_NOT_FOUND', `Service ${key} is not registered`);
    return answerQuery(entry, this.answerOf(entry), query, keyFrom);
  }

  spec(namespace: string, name: string): ServiceSpec | undefined {
    return this.services.get(serviceKey(namespace, name))?.spec;
  }

  instances(namespace: string, name: string): Instance[] {
    return [...(this.services.get(serviceKey(namespace, name))?.instances.values() ?? [])];
  }

  get size(): number {
    return this.services.size;
  }

  private replaceAll(services: SnapshotService[]): void {
    const next = new Map<string, MirroredService>();
    for (const s of services) {
      next.set(serviceKey(s.namespace, s.name), {
        namespace: s.namespace,
        name: s.name,
        spec: s.spec,
        instances: new Map((s.items ?? []).map((i) => [i.id, i])),
        answer: undefined,
      });
    }
    this.services = next;
  }

  private entry(ref: ServiceRef): MirroredService {
    const key = serviceKey(ref.namespace, ref.name);
    let entry = this.services.get(key);
    if (entry === undefined) {
      entry = {
        namespace: ref.namespace,
        name: ref.name,
        spec: undefined,
        instances: new Map(),
        answer: undefined,
      };
      this.services.set(key, entry);
    }
    return entry;
  }

  private upsert(ref: ServiceRef, instance: Instance): void {
    const entry = this.entry(ref);
    const before = entry.instances.get(instance.id);
    entry.instances.set(instance.id, instance);
    // Heartbeat-only renewals change no routing field: keep the answer (and its balancers).
    if (before === undefined || !sameRoute(before, instance)) entry.answer = undefined;
  }

  private remove(ref: ServiceRef, id: string): void {
    const entry = this.services.get(serviceKey(ref.namespace, ref.name));
    if (entry?.instances.delete(id) === true) entry.answer = undefined;
  }

  private answerOf(entry: MirroredService): ServiceAnswer {
    entry.answer ??= new ServiceAnswer(
      discoverable(entry.instances.values(), (i) => i.health.status).map(discoveredOf),
      entry.spec,
    );
    return entry.answer;
  }
}

function sameRoute(a: Instance, b: Instance): boolean {
  return JSON.stringify(discoveredOf(a)) === JSON.stringify(discoveredOf(b));
}
