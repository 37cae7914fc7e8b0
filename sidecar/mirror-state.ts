/**
 * The sidecar's copy of the registry (pure): services with their specs and instances, kept
 * equal to the operator's by applying its event stream — a chunked snapshot (`resync_begin`,
 * `resync_chunk`s, `resync_end`, applied atomically at the end), then deltas —
 * and answering discovery exactly as the operator does (common/discovery.ts): same healthy
 * set, same order, same strategies and filters.
 *
 * It also holds the intentions in force that the operator lets this sidecar see (those whose
 * destination it watches and may read) and the cluster's intention default, swapped in with
 * the rest at `resync_end` and kept by `intention_changed` events; `policyVersion` moves on
 * every change, so the call authorizer (proxy/authorizer.ts) rebuilds only then.
 */
import type { ConfigSecrets } from '../common/config-sources.js';
import { answerQuery, discoverable, discoveredOf, ServiceAnswer } from '../common/discovery.js';
import type { KeySource, ParsedDiscover } from '../common/discovery.js';
import type { DiscoverySource } from '../common/discover-request.js';
import { MaxineError } from '../common/errors.js';
import { serviceKey } from '../common/names.js';
import type { ServiceSpec } from '../common/resources.js';
import type { IntentionEntry } from '../common/policy/intentions.js';
import type {
  DiscoveredInstance,
  Instance,
  RegistryEvent,
  ResyncMessage,
  ServiceRef,
  SnapshotService,
} from '../common/wire.js';

export type IntentionDefault = 'allow' | 'deny';

/** What the call authorizer reads: the intentions in force and the default. */
export interface IntentionSource {
  /** Moves on every change of `intentions()` or `intentionDefault`. */
  readonly policyVersion: number;
  /** Undefined until a snapshot from an operator that sends intentions was applied. */
  readonly intentionDefault: IntentionDefault | undefined;
  intentions(): Iterable<IntentionEntry>;
  /** Whether the copy holds this service (so what is computed for it may be kept). */
  has(namespace: string, name: string): boolean;
}

interface MirroredService {
  readonly namespace: string;
  readonly name: string;
  spec: ServiceSpec | undefined;
  /** The operator's version of `spec.config` (absent from older operators). */
  configVersion?: number | undefined;
  /** Config keys whose values come from Secrets: names and digests (the sidecar reads values). */
  configSecrets?: ConfigSecrets | undefined;
  readonly instances: Map<string, Instance>;
  answer: ServiceAnswer | undefined;
  /** What the outbound proxy calls; rebuilt with `answer`. */
  route?: ProxyRoute | undefined;
}

/**
 * A service as the outbound proxy sees it: its spec and the instances discovery would hand out
 * (the same healthy set, in the same order). A new object after every membership or spec change,
 * so the proxy may cache its balancers on it.
 */
export interface ProxyRoute {
  readonly namespace: string;
  readonly name: string;
  readonly spec: ServiceSpec | undefined;
  readonly instances: readonly DiscoveredInstance[];
}

/** A snapshot being received: built aside, swapped in whole at `resync_end`. */
interface PendingSnapshot {
  readonly seq: number;
  readonly services: Map<string, MirroredService>;
  readonly intentions: Map<string, IntentionEntry>;
  readonly intentionDefault: IntentionDefault | undefined;
}

export class MirrorState implements DiscoverySource, IntentionSource {
  private services = new Map<string, MirroredService>();
  /** Intentions in force by `namespace/name` of the MaxineIntention. */
  private intentionMap = new Map<string, IntentionEntry>();
  private pending: PendingSnapshot | undefined;
  intentionDefault: IntentionDefault | undefined;
  policyVersion = 0;
  /**
   * The seq of the last event applied; the stream resumes after it. A snapshot moves it only
   * when complete, so a connection lost mid-snapshot asks again from where the copy stands.
   */
  lastSeq: number | undefined;

  /** Whether a snapshot is being received (begun, not yet ended). */
  get receiving(): boolean {
    return this.pending !== undefined;
  }

  /**
   * Applies one snapshot message. Discovery keeps answering from the current copy until
   * `resync_end` swaps the new one in; returns true then.
   */
  applyResync(message: ResyncMessage): boolean {
    switch (message.type) {
      case 'resync_begin':
        this.pending = {
          seq: message.seq,
          services: new Map(),
          intentions: new Map(),
          intentionDefault: message.data.intentionDefault,
        };
        return false;
      case 'resync_chunk': {
        const pending = this.expectPending(message.seq);
        for (const part of message.data.services) addPart(pending.services, part);
        for (const i of message.data.intentions ?? [])
          pending.intentions.set(`${i.namespace}/${i.name}`, i);
        return false;
      }
      case 'resync_end': {
        const pending = this.expectPending(message.seq);
        this.services = pending.services;
        this.intentionMap = pending.intentions;
        this.intentionDefault = pending.intentionDefault;
        this.policyVersion += 1;
        this.pending = undefined;
        this.lastSeq = message.seq;
        return true;
      }
    }
  }

  /** Forgets a snapshot that will not be completed (the connection was lost). */
  abortResync(): void {
    this.pending = undefined;
  }

  private expectPending(seq: number): PendingSnapshot {
    if (this.pending?.seq !== seq)
      throw new Error(`snapshot message for seq ${seq} without its resync_begin`);
    return this.pending;
  }

  /**
   * Applies one event (parsed with its schema: mirror.ts skips what does not parse); returns
   * the service it changed (for spec watchers), if any.
   */
  apply(event: RegistryEvent): ServiceRef | undefined {
    if (this.pending !== undefined)
      throw new Error(`event ${event.type} arrived in the middle of a snapshot`);
    this.lastSeq = event.seq;
    const ref = event.service;
    switch (event.type) {
      case 'service_updated': {
        const entry = this.entry(ref);
        entry.spec = event.data.declared ? event.data.spec : undefined;
        entry.configVersion = event.data.declared ? event.data.configVersion : undefined;
        entry.configSecrets = event.data.declared ? event.data.configSecrets : undefined;
        entry.answer = undefined;
        entry.route = undefined;
        return ref;
      }
      case 'service_deleted':
        this.services.delete(serviceKey(ref.namespace, ref.name));
        return ref;
      case 'service_registered':
      case 'service_healthy':
      case 'service_unhealthy':
        this.upsert(ref, event.instance);
        return undefined;
      case 'service_deregistered':
        this.remove(ref, event.instance.id);
        return undefined;
      case 'intention_changed':
        this.applyIntention(event.data);
        return undefined;
      default:
        return undefined;
    }
  }

  /**
   * An intention applied in force (with its spec) is kept; one deleted, moved away, confined
   * out (`inForce: false`) or announced without a spec is dropped.
   */
  private applyIntention(
    data: Extract<RegistryEvent, { type: 'intention_changed' }>['data'],
  ): void {
    const key = `${data.intention.namespace}/${data.intention.name}`;
    if (data.change === 'applied' && data.inForce !== false && data.spec !== undefined)
      this.intentionMap.set(key, { ...data.intention, spec: data.spec });
    else if (!this.intentionMap.delete(key)) return;
    this.policyVersion += 1;
  }

  get intentionCount(): number {
    return this.intentionMap.size;
  }

  intentions(): Iterable<IntentionEntry> {
    return this.intentionMap.values();
  }

  /** The intention named `namespace/name`, if held. */
  intention(namespace: string, name: string): IntentionEntry | undefined {
    return this.intentionMap.get(`${namespace}/${name}`);
  }

  has(namespace: string, name: string): boolean {
    return this.services.has(serviceKey(namespace, name));
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

  /** The operator's version of the service's `spec.config`, when it sent one. */
  configVersion(namespace: string, name: string): number | undefined {
    return this.services.get(serviceKey(namespace, name))?.configVersion;
  }

  /** The service's config keys whose values come from Secrets (names and digests), if any. */
  configSecrets(namespace: string, name: string): ConfigSecrets | undefined {
    return this.services.get(serviceKey(namespace, name))?.configSecrets;
  }

  instances(namespace: string, name: string): Instance[] {
    return [...(this.services.get(serviceKey(namespace, name))?.instances.values() ?? [])];
  }

  /** The service's proxy route; undefined when the copy does not hold the service. */
  route(namespace: string, name: string): ProxyRoute | undefined {
    const entry = this.services.get(serviceKey(namespace, name));
    if (entry === undefined) return undefined;
    entry.route ??= {
      namespace: entry.namespace,
      name: entry.name,
      spec: entry.spec,
      instances: discoverable(entry.instances.values(), (i) => i.health.status).map(discoveredOf),
    };
    return entry.route;
  }

  get size(): number {
    return this.services.size;
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
    if (before === undefined || !sameRoute(before, instance)) {
      entry.answer = undefined;
      entry.route = undefined;
    }
  }

  private remove(ref: ServiceRef, id: string): void {
    const entry = this.services.get(serviceKey(ref.namespace, ref.name));
    if (entry?.instances.delete(id) === true) {
      entry.answer = undefined;
      entry.route = undefined;
    }
  }

  private answerOf(entry: MirroredService): ServiceAnswer {
    entry.answer ??= new ServiceAnswer(
      discoverable(entry.instances.values(), (i) => i.health.status).map(discoveredOf),
      entry.spec,
    );
    return entry.answer;
  }
}

/** Adds a snapshot part: a service's first part, or the continuation of one seen before. */
function addPart(services: Map<string, MirroredService>, part: SnapshotService): void {
  const key = serviceKey(part.namespace, part.name);
  let entry = services.get(key);
  if (entry === undefined) {
    entry = {
      namespace: part.namespace,
      name: part.name,
      spec: part.spec,
      configVersion: part.configVersion,
      configSecrets: part.configSecrets,
      instances: new Map(),
      answer: undefined,
    };
    services.set(key, entry);
  }
  for (const item of part.items) entry.instances.set(item.id, item);
}

function sameRoute(a: Instance, b: Instance): boolean {
  return JSON.stringify(discoveredOf(a)) === JSON.stringify(discoveredOf(b));
}
