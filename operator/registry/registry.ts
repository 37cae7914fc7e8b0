/**
 * The registry: services keyed by `namespace/name`, their instances and leases, and the
 * cached discovery answer of each service. Pure: no timers, no sockets, no logging. Time
 * comes from an injected clock, and every change leaves as an event through `emit`.
 */
import { isoTime } from '../../common/iso-time.js';
import { configHash } from '../../common/config-version.js';
import type { ConfigChanges } from '../../common/config-version.js';
import { versionedConfig } from '../../common/config-sources.js';
import type { ConfigSecrets } from '../../common/config-sources.js';
import { ConfigHistory } from './config-history.js';
import { createHash } from 'node:crypto';
import {
  answerQuery,
  discoverable,
  ServiceAnswer,
  splitDiscoverQuery,
} from '../../common/discovery.js';
import type { KeySource, ParsedDiscover } from '../../common/discovery.js';
import { MaxineError } from '../../common/errors.js';
import { serviceKey } from '../../common/names.js';
import type { ServiceSpec } from '../../common/resources.js';
import type {
  DiscoverQuery,
  HealthStatus,
  HeartbeatRequest,
  Instance,
  InstanceCounts,
  RegisterRequest,
  RegistryEventDraft,
  ServiceRef,
  ServiceSummary,
} from '../../common/wire.js';
import type { Clock } from './clock.js';
import type { InstanceRecord, PodHealthCondition } from './instance.js';
import {
  healthOf,
  healthOfCondition,
  leaseExpiry,
  ownHealthOf,
  routeOf,
  toDiscovered,
  toInstance,
} from './instance.js';
import { countRefusal, DEFAULT_LIMITS, LIMIT_NAMES, sizeRefusal } from './limits.js';
import type { CountCheck, LimitName, RegistryLimits } from './limits.js';

/** What the registry emits: one of the event cases of common/wire.ts, before `seq` and `time`. */
export type { RegistryEventDraft };

/** A pod as an instance: what the Kubernetes source derives from a selected pod. */
export interface PodInstance {
  id: string;
  host: string;
  port: number;
  ports?: Record<string, number>;
  version?: string;
  zone?: string;
  weight: number;
  metadata: Record<string, string>;
  /** Running, Ready and not terminating. */
  ready: boolean;
  /**
   * The service has a healthCheck, which only the sidecar runs, and the pod has no sidecar
   * (it was not injected): its health can never be known.
   */
  noSidecar?: boolean;
  /** The pod carries the `maxine.io/healthy` readiness gate (the webhook adds it). */
  gated?: boolean;
  /** Its `maxine.io/healthy` condition, when it has one. */
  condition?: PodHealthCondition;
}

/** A gated pod's health as the leader knows it, and the condition its pod carries now. */
export interface PodHealthGate {
  id: string;
  namespace: string;
  service: string;
  pod: string;
  /** Undefined while the leader has no say yet (the sidecar has not reported). */
  own: ReturnType<typeof ownHealthOf>;
  observed: PodHealthCondition | undefined;
}

/** What a registration is, whoever keeps it (a store, the API server): no lease state. */
export interface RegistrationFields {
  id: string;
  namespace: string;
  service: string;
  host: string;
  port: number;
  ports?: Record<string, number>;
  version?: string;
  zone?: string;
  datacenter?: string;
  weight: number;
  metadata: Record<string, string>;
  owner?: string;
  registeredAt: number;
  check: { status: HealthStatus; output?: string };
}

/** A registration as a standalone store keeps it (operator/store/) and gives it back on start. */
export interface PersistedInstance extends RegistrationFields {
  lastHeartbeat: number;
  ttlMs: number;
}

/**
 * A registration as the API server keeps it in Kubernetes mode (a MaxineRegistration): no
 * renewal time (the leader keeps leases in memory), the lease state as of the last transition.
 */
export interface KeptRegistration extends RegistrationFields {
  ttlMs: number;
  leaseLapsed: boolean;
}

export interface RegistryOptions {
  clock: Clock;
  emit: (event: RegistryEventDraft) => void;
  /**
   * Whether anyone takes `service_heartbeat` events now (a subscriber that asked for them, a
   * store renewing leases, the health-condition writer). Without one, a heartbeat emits
   * nothing: heartbeats are the hottest write, and an event nobody reads cost its building
   * (three ISO times) on every one (issue 17). Default: always emitted.
   */
  heartbeatsWanted?: () => boolean;
  /** May a service that no resource declares be created by its first registration? */
  allowUndeclared: boolean;
  defaultTtlSeconds: number;
  /** Grace between a lapsed lease (critical) and removal of the instance. */
  defaultRemoveAfterSeconds: number;
  /** Mass-expiry guard: removals stop while more than this fraction of leases has lapsed. */
  massExpiryThreshold: number;
  /** ...but only when at least this many instances hold a lease. */
  massExpiryMinInstances: number;
  /** What the registry holds at most (DEFAULT_LIMITS for any not given). */
  limits?: Partial<RegistryLimits>;
  /**
   * Added to each lease a new leader adopts from a pod's condition (until its sidecar is heard
   * here): the Retry-After followers gave the sidecars during the handover. Default 0.
   */
  adoptedLeaseGraceMs?: number;
  /** Config versions and their history (default: the last 10 versions, in memory). */
  configHistory?: ConfigHistory;
}

/** A change of a service's config: the map after it (undefined: gone) and the keys changed. */
interface ConfigChange {
  after: Record<string, string> | undefined;
  changes: ConfigChanges;
  /** The keys of `after` whose values come from Secrets (names and digests only). */
  secrets?: ConfigSecrets | undefined;
}

interface ServiceEntry {
  readonly namespace: string;
  readonly name: string;
  spec: ServiceSpec | undefined;
  declared: boolean;
  generation: number;
  /** The version of `spec.config`: +1 on each change of its content (common/config-version.ts). */
  configVersion: number;
  /** Keys of `spec.config` that come from Secrets (configFrom): names and digests, no values. */
  configSecrets?: ConfigSecrets | undefined;
  readonly instances: Map<string, InstanceRecord>;
  /** Rebuilt lazily after any membership change; undefined means stale. */
  answer: ServiceAnswer | undefined;
}

export interface SweepResult {
  lapsed: number;
  removed: number;
  leased: number;
  guardActive: boolean;
}

/** Which service (and pod, for a pod's instance) an instance belongs to. */
export interface InstanceOwner {
  id: string;
  service: ServiceRef;
  pod: string | undefined;
}

export interface RegisterResult {
  instance: Instance;
  created: boolean;
}

/**
 * The one answer for an unknown instance id. The HTTP layer gives the same answer for an
 * instance of a service the caller has no right on, so ids cannot be probed across tenants.
 */
export function instanceNotFound(id: string): MaxineError {
  return new MaxineError('INSTANCE_NOT_FOUND', `Instance "${id}" is not registered`);
}

/** Services whose config versions are kept, by default. */
export const DEFAULT_CONFIG_SERVICES = 50_000;

export class Registry {
  private readonly services = new Map<string, ServiceEntry>();
  private readonly instances = new Map<string, InstanceRecord>();
  private guardActive = false;
  /** Gated pods' health comes from their condition (a follower replica), not from heartbeats. */
  private followConditions = false;
  private readonly loadOf = (id: string): number => this.instances.get(id)?.connections ?? 0;
  readonly counters = { registrations: 0, heartbeats: 0, deregistrations: 0, evictions: 0 };
  readonly limits: Readonly<RegistryLimits>;
  /** Registrations refused by each limit, since start. */
  readonly limitRefusals = Object.fromEntries(LIMIT_NAMES.map((n) => [n, 0])) as Record<
    LimitName,
    number
  >;
  /** Registered instances per principal (the owner a registration names). */
  private readonly ownedInstances = new Map<string, number>();
  /** Undeclared services (created by a registration) → the principal whose registration did. */
  private readonly undeclared = new Map<string, string | undefined>();
  private readonly ownedServices = new Map<string, number>();

  /** Config versions and history (config-history.ts): they outlive service entries. */
  readonly configs: ConfigHistory;

  constructor(private readonly opts: RegistryOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.configs =
      opts.configHistory ??
      new ConfigHistory({ clock: opts.clock, limit: 10, maxServices: DEFAULT_CONFIG_SERVICES });
  }

  // ---- services (declared by resources) ----

  /**
   * Declares or updates a service from a MaxineService spec; `configSecrets` names the config
   * keys whose values come from Secrets (common/config-sources.ts), never their values.
   */
  upsertService(
    namespace: string,
    name: string,
    spec: ServiceSpec,
    configSecrets?: ConfigSecrets,
  ): void {
    const existing = this.services.get(serviceKey(namespace, name));
    const entry = existing ?? this.createEntry(namespace, name);
    this.unmarkUndeclared(serviceKey(namespace, name));
    const previous = entry.spec;
    const secrets =
      configSecrets !== undefined && Object.keys(configSecrets).length > 0
        ? configSecrets
        : undefined;
    entry.spec = spec;
    entry.configSecrets = secrets;
    entry.declared = true;
    entry.generation += 1;
    entry.answer = undefined;
    const ref = { namespace, name };
    // Versioned with each Secret-sourced key's digest in place of its value (a rotation is a
    // new version); the history keeps those keys as redacted.
    const configChange = this.nextConfigVersion(
      entry,
      versionedConfig(configOf(spec, secrets), secrets),
      secrets,
    );
    if (configChange !== undefined) {
      configChange.after = configChange.after && configOf(spec, secrets);
      configChange.secrets = secrets;
    }
    this.opts.emit({
      type: 'service_updated',
      service: ref,
      // The spec travels with the event, so a local copy (the sidecar's) answers alike.
      data: {
        declared: true,
        generation: entry.generation,
        blocked: spec.blocked ?? null,
        spec,
        configVersion: entry.configVersion,
        ...(secrets !== undefined && { configSecrets: secrets }),
      },
    });
    this.emitConfigChange(ref, entry.configVersion, configChange);
    this.emitBlockedChange(ref, previous?.blocked, spec.blocked);
  }

  /** `service_blocked` when a block starts or changes, `service_unblocked` when it ends. */
  private emitBlockedChange(
    service: ServiceRef,
    before: ServiceSpec['blocked'],
    after: ServiceSpec['blocked'],
  ): void {
    if (after !== undefined) {
      if (JSON.stringify(before) !== JSON.stringify(after))
        this.opts.emit({ type: 'service_blocked', service, data: { ...after } });
    } else if (before !== undefined) {
      this.opts.emit({ type: 'service_unblocked', service, data: { previous: { ...before } } });
    }
  }

  /** Removes a declaration. Registered instances stay (as undeclared) when that is allowed. */
  removeService(namespace: string, name: string): void {
    const key = serviceKey(namespace, name);
    const entry = this.services.get(key);
    if (entry === undefined || !entry.declared) return;
    const ref = { namespace, name };
    const configChange = this.nextConfigVersion(entry, undefined);
    entry.spec = undefined;
    entry.configSecrets = undefined;
    entry.declared = false;
    entry.answer = undefined;
    this.emitConfigChange(ref, entry.configVersion, configChange);
    // Pod-sourced instances exist only through the declaration: they go with it.
    for (const record of [...entry.instances.values()]) {
      if (record.source === 'kubernetes') this.removeRecord(entry, record, 'service_deleted');
    }
    if (!this.opts.allowUndeclared || entry.instances.size === 0) {
      for (const record of [...entry.instances.values()])
        this.removeRecord(entry, record, 'service_deleted');
      this.services.delete(key);
      this.opts.emit({ type: 'service_deleted', service: ref, data: { declared: true } });
    } else {
      this.markUndeclared(key, undefined);
      this.opts.emit({ type: 'service_updated', service: ref, data: { declared: false } });
    }
  }

  // ---- instances (registrations) ----

  /**
   * Registers or renews an instance. `owner` is the principal registering (counted against
   * the per-principal limit). Every check comes before any change: a refusal changes nothing.
   */
  register(req: RegisterRequest, owner?: string): RegisterResult {
    const { id, existing, found } = this.admit(req, owner);
    const entry = found ?? this.createUndeclared(req.namespace, req.service, owner);
    const now = this.opts.clock.now();
    const ttlSeconds =
      req.ttlSeconds ?? entry.spec?.heartbeat?.ttlSeconds ?? this.opts.defaultTtlSeconds;
    const record = recordOf(req, id, { now, ttlMs: ttlSeconds * 1000, existing, owner, entry });
    if (existing === undefined && owner !== undefined) increment(this.ownedInstances, owner);
    entry.instances.set(id, record);
    this.instances.set(id, record);
    entry.answer = undefined;
    this.counters.registrations += 1;
    const instance = toInstance(record);
    const before = existing === undefined ? undefined : healthOf(existing).status;
    this.opts.emit({
      type: 'service_registered',
      service: { namespace: req.namespace, name: req.service },
      instance,
      data: { renewed: existing !== undefined },
    });
    if (before !== undefined && before !== 'passing') {
      this.opts.emit({
        type: 'service_healthy',
        service: refOf(record),
        instance,
        data: { status: 'passing', previous: before },
      });
    }
    return { instance, created: existing === undefined };
  }

  /** Every check of a registration, made before anything changes. */
  private admit(
    req: RegisterRequest,
    owner: string | undefined,
  ): { id: string; existing: InstanceRecord | undefined; found: ServiceEntry | undefined } {
    const found = this.services.get(serviceKey(req.namespace, req.service));
    if (found === undefined) this.assertMayCreateService(req.namespace, req.service, owner);
    else assertRegistrationOpen(found);
    const id = req.id ?? instanceId(req.namespace, req.service, req.host, req.port);
    const existing = this.instances.get(id);
    if (
      existing !== undefined &&
      (existing.namespace !== req.namespace || existing.service !== req.service)
    ) {
      throw new MaxineError(
        'INSTANCE_CONFLICT',
        `Instance id "${id}" belongs to service ${existing.namespace}/${existing.service}`,
      );
    }
    // A pod's instance comes from the pod and its sidecar (attachSidecar), never from a
    // registration naming its id.
    if (existing?.source === 'kubernetes') {
      throw new MaxineError(
        'INSTANCE_CONFLICT',
        `Instance id "${id}" is pod ${existing.metadata.pod ?? '?'}'s: only its sidecar writes it`,
      );
    }
    this.refuse(sizeRefusal(this.limits, req));
    if (existing === undefined) this.assertRoomForInstance(req, found, owner);
    return { id, existing, found };
  }

  heartbeat(id: string, body: HeartbeatRequest): Instance {
    const record = this.instances.get(id);
    if (record === undefined) throw instanceNotFound(id);
    // A pod's instance without a lease has no sidecar attached here (this operator restarted,
    // or the sidecar deregistered): 404, so the sidecar registers again and the lease is back.
    if (record.source === 'kubernetes' && record.ttlMs === undefined) {
      throw new MaxineError(
        'INSTANCE_NOT_FOUND',
        `Instance "${id}" has no sidecar registered; register again`,
      );
    }
    const before = healthOf(record).status;
    record.lastHeartbeat = this.opts.clock.now();
    // Only written when set: a registration's record has neither field, and writing one (even
    // undefined) on every heartbeat gave each record a second shape, and a property, of its own.
    if (record.leaseGraceMs !== undefined) record.leaseGraceMs = undefined;
    record.leaseLapsed = false;
    if (body.status !== undefined) {
      record.check = checkOf(body.status, body.output);
      if (record.awaitsCheck === true) record.awaitsCheck = false;
    }
    if (body.connections !== undefined) record.connections = body.connections;
    this.counters.heartbeats += 1;
    this.afterHealthChange(record, before);
    // Small on purpose: heartbeats are the most frequent event, and a subscriber that asked
    // for them learns the instance's state from the other events (metadata is not here).
    if (this.opts.heartbeatsWanted?.() ?? true) {
      this.opts.emit({
        type: 'service_heartbeat',
        service: refOf(record),
        data: heartbeatOf(record),
      });
    }
    return toInstance(record);
  }

  deregister(id: string): void {
    const record = this.instances.get(id);
    if (record === undefined) throw instanceNotFound(id);
    if (record.source === 'kubernetes') {
      // A pod's instance lives as long as the pod; its sidecar leaving (pod shutting down)
      // takes it out of discovery at once, before the pod's readiness says so.
      const before = healthOf(record).status;
      record.lastHeartbeat = undefined;
      record.ttlMs = undefined;
      record.leaseLapsed = false;
      record.check = { status: 'critical', output: 'deregistered by its sidecar' };
      this.counters.deregistrations += 1;
      this.afterHealthChange(record, before);
      return;
    }
    const entry = this.services.get(serviceKey(record.namespace, record.service));
    if (entry !== undefined) this.removeRecord(entry, record, 'deregistered');
    this.counters.deregistrations += 1;
  }

  /**
   * A pod's sidecar registers: its heartbeats (a lease) and check results are added on top of
   * the pod's readiness. The pod instance must exist (the pod informer made it).
   */
  attachSidecar(
    id: string,
    opts: { ttlSeconds?: number; status?: HealthStatus; output?: string },
  ): RegisterResult {
    const record = this.instances.get(id);
    if (record?.source !== 'kubernetes')
      throw new MaxineError(
        'NOT_READY',
        `The pod of instance "${id}" is not known yet (no IP yet, or no port: see its MaxineService's PortsMissing condition); retry`,
      );
    const entry = this.services.get(serviceKey(record.namespace, record.service));
    if (entry !== undefined) assertRegistrationOpen(entry);
    const before = healthOf(record).status;
    const created = record.lastHeartbeat === undefined;
    const ttlSeconds =
      opts.ttlSeconds ?? entry?.spec?.heartbeat?.ttlSeconds ?? this.opts.defaultTtlSeconds;
    record.lastHeartbeat = this.opts.clock.now();
    record.ttlMs = ttlSeconds * 1000;
    record.leaseGraceMs = undefined;
    record.leaseLapsed = false;
    record.check = checkOf(opts.status ?? 'passing', opts.output);
    record.attached = true;
    // A service with a health check: the sidecar's first result decides, not the registration.
    record.awaitsCheck = entry?.spec?.healthCheck !== undefined && opts.status === undefined;
    this.counters.registrations += 1;
    const instance = toInstance(record);
    this.opts.emit({
      type: 'service_registered',
      service: refOf(record),
      instance,
      data: { source: 'kubernetes', sidecar: true, renewed: !created },
    });
    this.afterHealthChange(record, before);
    return { instance, created };
  }

  // ---- instances from Kubernetes (every Ready pod a MaxineService selects) ----

  /**
   * Makes the service's pod-sourced instances equal to `pods`, as the Endpoints controller
   * does: new pods are added, changed ones updated (readiness, address, version), pods gone
   * are removed at once. Registrations and their leases are left alone.
   */
  syncPodInstances(
    namespace: string,
    name: string,
    pods: readonly PodInstance[],
  ): { added: number; removed: number; overLimit: number } {
    const entry = this.services.get(serviceKey(namespace, name));
    if (entry === undefined) return { added: 0, removed: 0, overLimit: this.instancesOverLimit };
    const wanted = new Map(pods.map((p) => [p.id, p]));
    let removed = 0;
    for (const record of [...entry.instances.values()]) {
      if (record.source === 'kubernetes' && !wanted.has(record.id)) {
        this.removeRecord(entry, record, 'pod_deleted');
        removed += 1;
      }
    }
    let added = 0;
    // Pods are never refused by a limit: a Ready pod a MaxineService selects is an endpoint the
    // cluster already holds (the informer caches the whole pod), and dropping it would make it
    // silently undiscoverable. They count towards the limits, so registrations are refused
    // instead, and `overLimit` says when pods alone go past the total.
    for (const pod of pods) if (this.upsertPod(entry, pod)) added += 1;
    return { added, removed, overLimit: this.instancesOverLimit };
  }

  /** Instances beyond the total limit (only pods can put them there). */
  get instancesOverLimit(): number {
    return Math.max(0, this.instances.size - this.limits.instances);
  }

  private upsertPod(entry: ServiceEntry, pod: PodInstance): boolean {
    const existing = this.instances.get(pod.id);
    if (
      existing !== undefined &&
      (existing.namespace !== entry.namespace || existing.service !== entry.name)
    )
      return false;
    if (existing === undefined) {
      const record: InstanceRecord = {
        ...pod,
        namespace: entry.namespace,
        service: entry.name,
        source: 'kubernetes',
        registeredAt: this.opts.clock.now(),
        leaseLapsed: false,
        metadata: compactMetadata(pod.metadata),
        check: BARE_CHECKS.passing,
        connections: 0,
        ...(pod.gated === true && { followsCondition: this.followConditions }),
      };
      entry.instances.set(pod.id, record);
      this.instances.set(pod.id, record);
      entry.answer = undefined;
      this.opts.emit({
        type: 'service_registered',
        service: refOf(record),
        instance: toInstance(record),
        data: { source: 'kubernetes' },
      });
      return true;
    }
    const before = healthOf(existing).status;
    const route = routeOf(existing);
    Object.assign(existing, {
      host: pod.host,
      port: pod.port,
      ports: pod.ports,
      version: pod.version,
      zone: pod.zone,
      weight: pod.weight,
      // An unchanged map keeps its object: events and answers share it instead of copies.
      metadata: compactMetadata(reuse(existing.metadata, pod.metadata)),
      ready: pod.ready,
      noSidecar: pod.noSidecar,
      gated: pod.gated,
      condition: pod.condition,
      followsCondition: pod.gated === true ? this.followConditions : undefined,
    });
    // Any routing field (address, ports, version, zone, weight, metadata) changed.
    if (routeOf(existing) !== route) {
      entry.answer = undefined;
      this.opts.emit({
        type: 'service_registered',
        service: refOf(existing),
        instance: toInstance(existing),
        data: { source: 'kubernetes', renewed: true },
      });
    }
    this.afterHealthChange(existing, before);
    return false;
  }

  // ---- the pod health condition (maxine.io/healthy; Kubernetes mode) ----

  /**
   * Who decides a gated pod's health on this replica. A follower (`true`) answers with the
   * condition the leader wrote, so every replica answers alike. A replica that becomes leader
   * (`false`) adopts each pod's condition as its own state, a check result and a fresh lease,
   * so it starts from the health the old leader knew; its sidecars' heartbeats take over from
   * there (a sidecar that is gone lapses one TTL, plus `adoptedLeaseGraceMs`, later).
   */
  followPodConditions(follow: boolean): void {
    if (this.followConditions === follow) return;
    this.followConditions = follow;
    const now = this.opts.clock.now();
    for (const record of this.instances.values()) {
      if (record.source !== 'kubernetes' || record.gated !== true) continue;
      const before = healthOf(record).status;
      record.followsCondition = follow;
      if (!follow && record.condition !== undefined) this.adoptCondition(record, now);
      this.afterHealthChange(record, before);
    }
  }

  get followsPodConditions(): boolean {
    return this.followConditions;
  }

  private adoptCondition(record: InstanceRecord, now: number): void {
    const health = healthOfCondition(record.condition as PodHealthCondition);
    // The informer's own finding (no sidecar) stands; a leaving sidecar has left.
    if (health.reason === 'no-sidecar' || health.reason === 'deregistered') return;
    const entry = this.services.get(serviceKey(record.namespace, record.service));
    const ttlSeconds = entry?.spec?.heartbeat?.ttlSeconds ?? this.opts.defaultTtlSeconds;
    record.attached = true;
    record.awaitsCheck = false;
    record.lastHeartbeat = now;
    record.ttlMs = ttlSeconds * 1000;
    record.leaseGraceMs = this.opts.adoptedLeaseGraceMs;
    record.leaseLapsed = health.reason === 'lease-expired';
    record.check = checkOf(
      health.reason === 'lease-expired' ? 'passing' : health.status,
      health.output,
    );
  }

  /** One gated pod's health gate (undefined for an unknown id or a pod without the gate). */
  podHealthGate(id: string): PodHealthGate | undefined {
    const record = this.instances.get(id);
    return record === undefined ? undefined : gateOf(record);
  }

  /** Every gated pod's health gate. */
  *podHealthGates(): Generator<PodHealthGate, void, undefined> {
    for (const record of this.instances.values()) {
      const gate = gateOf(record);
      if (gate !== undefined) yield gate;
    }
  }

  getInstance(id: string): Instance | undefined {
    const record = this.instances.get(id);
    return record && toInstance(record);
  }

  /**
   * Whose instance `id` is: its service, and its pod when it is a pod's. What a write's
   * authorization asks on every heartbeat, without building the whole Instance (ISO times
   * and all) that getInstance does.
   */
  instanceOwner(id: string): InstanceOwner | undefined {
    const record = this.instances.get(id);
    if (record === undefined) return undefined;
    return { id, service: refOf(record), pod: record.metadata.pod };
  }

  // ---- persistence (standalone stores, operator/store/) ----

  /** What a store keeps of registration `id`; undefined when it is gone or a pod's. */
  persisted(id: string): PersistedInstance | undefined {
    const record = this.instances.get(id);
    return record === undefined ? undefined : persistedOf(record);
  }

  /** Every registration as a store keeps it (for a snapshot). */
  *persistedAll(): Iterable<PersistedInstance> {
    for (const record of this.instances.values()) {
      const p = persistedOf(record);
      if (p !== undefined) yield p;
    }
  }

  /**
   * Re-creates registrations a store kept, with their ids, leases and reported health. The
   * renewal times are kept, not refreshed: a lease that lapsed while the operator was down
   * lapses at the next sweep, and goes the normal way (critical, removal after the grace,
   * the mass-expiry guard). A registration the configuration now refuses (undeclared service
   * not allowed, a limit) is left out and named in `refused`.
   */
  restore(items: Iterable<PersistedInstance>): {
    restored: number;
    refused: { id: string; code: string; message: string }[];
  } {
    let restored = 0;
    const refused: { id: string; code: string; message: string }[] = [];
    for (const p of items) {
      const req: RegisterRequest = {
        service: p.service,
        namespace: p.namespace,
        host: p.host,
        port: p.port,
        weight: p.weight,
        metadata: p.metadata,
        ...(p.ports && { ports: p.ports }),
      };
      const found = this.services.get(serviceKey(p.namespace, p.service));
      try {
        if (this.instances.has(p.id))
          throw new MaxineError('INSTANCE_CONFLICT', `Instance id "${p.id}" is already held`);
        if (found === undefined) this.assertMayCreateService(p.namespace, p.service, p.owner);
        this.refuse(sizeRefusal(this.limits, req));
        this.assertRoomForInstance(req, found, p.owner);
      } catch (err) {
        if (!(err instanceof MaxineError)) throw err;
        refused.push({ id: p.id, code: err.code, message: err.message });
        continue;
      }
      const entry = found ?? this.createUndeclared(p.namespace, p.service, p.owner);
      const record: InstanceRecord = {
        ...p,
        namespace: entry.namespace,
        service: entry.name,
        metadata: compactMetadata(p.metadata),
        source: 'registration',
        leaseLapsed: false,
        ready: true,
        connections: 0,
      };
      if (p.owner !== undefined) increment(this.ownedInstances, p.owner);
      entry.instances.set(p.id, record);
      this.instances.set(p.id, record);
      entry.answer = undefined;
      restored += 1;
      this.opts.emit({
        type: 'service_registered',
        service: refOf(record),
        instance: toInstance(record),
        data: { restored: true },
      });
    }
    return { restored, refused };
  }

  /**
   * Takes a registration as another operator sharing the store wrote it
   * (operator/store/redis-shared.ts): creates it, or updates it in place keeping the later
   * renewal (a heartbeat this operator took and has not written yet stays). The lease's lapse
   * follows the record's times. False when refused (the configuration, a limit, a conflict).
   */
  applyStored(p: PersistedInstance): boolean {
    const record = this.instances.get(p.id);
    if (record === undefined) return this.restore([p]).restored === 1;
    if (record.source !== 'registration' || record.service !== p.service) return false;
    if (record.namespace !== p.namespace) return false;
    const before = healthOf(record).status;
    const mine = record.lastHeartbeat ?? 0;
    const newer = p.lastHeartbeat >= mine;
    delete record.ports;
    delete record.version;
    delete record.zone;
    delete record.datacenter;
    const { check, lastHeartbeat, ...rest } = p;
    // The owner stays (it counts against the per-principal limit where it registered).
    Object.assign(record, { ...rest, owner: record.owner });
    if (record.owner === undefined) delete record.owner;
    if (newer) {
      record.lastHeartbeat = lastHeartbeat;
      record.check = check;
    }
    const expiry = leaseExpiry(record);
    record.leaseLapsed = expiry !== undefined && this.opts.clock.now() > expiry;
    const entry = this.services.get(serviceKey(record.namespace, record.service));
    if (entry !== undefined) entry.answer = undefined;
    this.afterHealthChange(record, before);
    return true;
  }

  // ---- registrations kept in the API server (Kubernetes mode, operator/kube/registrations.ts) ----

  /** Registration `id` as the API server keeps it; undefined when gone, a pod's, or leaseless. */
  kept(id: string): KeptRegistration | undefined {
    const r = this.instances.get(id);
    if (r?.source !== 'registration' || r.ttlMs === undefined) return undefined;
    return {
      ...registrationOf(r),
      ttlMs: r.ttlMs,
      leaseLapsed: r.leaseLapsed,
    };
  }

  /**
   * Makes registration `k.id` what the API server keeps. A new one is admitted as a
   * registration is (declared service or --allow-undeclared, sizes, counts: a refusal throws
   * and changes nothing). `leased`: a new one's lease starts now (the leader holds leases);
   * otherwise it has none here (a follower: its health comes from the object). An existing
   * one gets the kept routing fields and, unless `leased`, the kept health; its lease, owner
   * and registration time stay.
   */
  mirror(k: KeptRegistration, leased: boolean): 'added' | 'updated' | 'unchanged' {
    const existing = this.instances.get(k.id);
    const req = requestOf(k);
    if (existing !== undefined) {
      if (
        existing.source !== 'registration' ||
        existing.namespace !== k.namespace ||
        existing.service !== k.service
      )
        throw new MaxineError(
          'INSTANCE_CONFLICT',
          `Instance id "${k.id}" belongs to another instance`,
        );
      this.refuse(sizeRefusal(this.limits, req));
      return this.updateMirrored(existing, k, leased);
    }
    const found = this.services.get(serviceKey(k.namespace, k.service));
    if (found === undefined) this.assertMayCreateService(k.namespace, k.service, k.owner);
    else assertRegistrationOpen(found);
    this.refuse(sizeRefusal(this.limits, req));
    this.assertRoomForInstance(req, found, k.owner);
    const entry = found ?? this.createUndeclared(k.namespace, k.service, k.owner);
    const record: InstanceRecord = {
      ...k,
      namespace: entry.namespace,
      service: entry.name,
      metadata: compactMetadata(k.metadata),
      source: 'registration',
      ...(leased && { lastHeartbeat: this.opts.clock.now() }),
      ready: true,
      connections: 0,
    };
    if (k.owner !== undefined) increment(this.ownedInstances, k.owner);
    entry.instances.set(k.id, record);
    this.instances.set(k.id, record);
    entry.answer = undefined;
    this.opts.emit({
      type: 'service_registered',
      service: refOf(record),
      instance: toInstance(record),
      data: { mirrored: true },
    });
    return 'added';
  }

  private updateMirrored(
    record: InstanceRecord,
    k: KeptRegistration,
    leased: boolean,
  ): 'updated' | 'unchanged' {
    const before = healthOf(record).status;
    const route = routeOf(record);
    const check = JSON.stringify(record.check);
    Object.assign(record, {
      host: k.host,
      port: k.port,
      ports: k.ports && reuse(record.ports, k.ports),
      version: k.version,
      zone: k.zone,
      datacenter: k.datacenter,
      weight: k.weight,
      metadata: compactMetadata(reuse(record.metadata, k.metadata)),
      ttlMs: k.ttlMs,
    });
    if (!leased) {
      record.check = k.check;
      record.leaseLapsed = k.leaseLapsed;
    }
    const moved = routeOf(record) !== route;
    if (moved) {
      const entry = this.services.get(serviceKey(record.namespace, record.service));
      if (entry !== undefined) entry.answer = undefined;
      this.opts.emit({
        type: 'service_registered',
        service: refOf(record),
        instance: toInstance(record),
        data: { mirrored: true, renewed: true },
      });
    }
    this.afterHealthChange(record, before);
    return moved || healthOf(record).status !== before || JSON.stringify(record.check) !== check
      ? 'updated'
      : 'unchanged';
  }

  /** Removes registration `id` (its object is gone from the API server). False: not held. */
  unmirror(id: string, reason = 'removed_from_api_server'): boolean {
    const record = this.instances.get(id);
    if (record?.source !== 'registration') return false;
    const entry = this.services.get(serviceKey(record.namespace, record.service));
    if (entry !== undefined) this.removeRecord(entry, record, reason);
    return true;
  }

  /**
   * A new leader takes registration `id`'s lease: it runs from now, a full TTL of grace, so
   * clients heartbeating through the new leader keep their instance. A lapsed lease stays
   * lapsed (critical) until a heartbeat comes; without one it is removed after TTL and grace.
   */
  restartLease(id: string): void {
    const record = this.instances.get(id);
    if (record?.source !== 'registration' || record.ttlMs === undefined) return;
    record.lastHeartbeat = this.opts.clock.now();
  }

  /** This replica stops holding registration `id`'s lease (it no longer leads). */
  releaseLease(id: string): void {
    const record = this.instances.get(id);
    if (record?.source === 'registration') record.lastHeartbeat = undefined;
  }

  // ---- leases ----

  /**
   * Marks lapsed leases critical and removes instances whose grace has passed, unless the
   * mass-expiry guard holds: when more than the threshold of leases lapsed at once, the
   * likelier cause is a partition between the registry and its clients, so removals stop
   * (as Eureka's self-preservation) until heartbeats come back.
   */
  sweep(): SweepResult {
    const now = this.opts.clock.now();
    let leased = 0;
    let lapsed = 0;
    const due: InstanceRecord[] = [];
    for (const record of this.instances.values()) {
      const expiry = leaseExpiry(record);
      if (expiry === undefined) continue;
      leased += 1;
      if (now <= expiry) continue;
      lapsed += 1;
      if (!record.leaseLapsed) {
        const before = healthOf(record).status;
        record.leaseLapsed = true;
        this.afterHealthChange(record, before);
      }
      const entry = this.services.get(serviceKey(record.namespace, record.service));
      const grace =
        (entry?.spec?.heartbeat?.removeAfterSeconds ?? this.opts.defaultRemoveAfterSeconds) * 1000;
      // A pod's instance goes with its pod, never by lease: a silent sidecar only makes it critical.
      if (now > expiry + grace && record.source !== 'kubernetes') due.push(record);
    }
    this.guardActive =
      leased >= this.opts.massExpiryMinInstances &&
      lapsed / Math.max(leased, 1) > this.opts.massExpiryThreshold;
    let removed = 0;
    if (!this.guardActive) {
      for (const record of due) {
        const entry = this.services.get(serviceKey(record.namespace, record.service));
        if (entry !== undefined) this.removeRecord(entry, record, 'expired');
        removed += 1;
      }
      this.counters.evictions += removed;
    }
    return { lapsed, removed, leased, guardActive: this.guardActive };
  }

  get massExpiryGuardActive(): boolean {
    return this.guardActive;
  }

  // ---- discovery ----

  /** The answer bytes for a discovery request. O(1) in the number of services. */
  discover(namespace: string, name: string, query: DiscoverQuery, keyFrom?: KeySource): Buffer {
    return this.discoverParsed(serviceKey(namespace, name), splitDiscoverQuery(query), keyFrom);
  }

  /**
   * The hot-path form: the service key `namespace/name` as the request path has it, and a
   * query parsed once per distinct query string. Allocates nothing on a cache hit.
   */
  discoverParsed(key: string, query: ParsedDiscover, keyFrom?: KeySource): Buffer {
    const entry = this.services.get(key);
    if (entry === undefined)
      throw new MaxineError('SERVICE_NOT_FOUND', `Service ${key} is not registered`);
    return answerQuery(entry, this.answerOf(entry), query, keyFrom);
  }

  // ---- reads ----

  listServices(namespace?: string): ServiceSummary[] {
    const out: ServiceSummary[] = [];
    for (const entry of this.services.values()) {
      if (namespace !== undefined && entry.namespace !== namespace) continue;
      out.push(summaryOf(entry));
    }
    return out.sort((a, b) =>
      (a.namespace + '/' + a.name).localeCompare(b.namespace + '/' + b.name),
    );
  }

  getService(
    namespace: string,
    name: string,
  ):
    | (ServiceSummary & {
        spec?: ServiceSpec;
        configSecrets?: ConfigSecrets;
        instances: InstanceCounts;
        items: Instance[];
      })
    | undefined {
    const entry = this.services.get(serviceKey(namespace, name));
    if (entry === undefined) return undefined;
    return {
      ...summaryOf(entry),
      ...(entry.spec && { spec: entry.spec }),
      ...(entry.spec && entry.configSecrets && { configSecrets: entry.configSecrets }),
      items: [...entry.instances.values()].map(toInstance),
    };
  }

  /** Every service's namespace and name, sorted: no counts (O(services), not O(instances)). */
  /** Every service, unsorted and lazily: for a scan that may stop at the first it wants. */
  *eachServiceRef(): Generator<ServiceRef, void, undefined> {
    for (const entry of this.services.values())
      yield { namespace: entry.namespace, name: entry.name };
  }

  serviceRefs(): ServiceRef[] {
    const out: ServiceRef[] = [];
    for (const entry of this.services.values())
      out.push({ namespace: entry.namespace, name: entry.name });
    return out.sort((a, b) =>
      (a.namespace + '/' + a.name).localeCompare(b.namespace + '/' + b.name),
    );
  }

  /**
   * One service's summary, spec and instances, the instances made one at a time as they are
   * iterated (snapshots serialize a few at a time). Undefined when the service is gone.
   */
  snapshotOf(
    namespace: string,
    name: string,
  ):
    | {
        summary: ServiceSummary;
        spec?: ServiceSpec;
        configVersion?: number;
        configSecrets?: ConfigSecrets;
        items: Iterable<Instance>;
      }
    | undefined {
    const entry = this.services.get(serviceKey(namespace, name));
    if (entry === undefined) return undefined;
    const records = entry.instances;
    return {
      summary: summaryOf(entry),
      ...(entry.spec && { spec: entry.spec, configVersion: entry.configVersion }),
      ...(entry.spec && entry.configSecrets && { configSecrets: entry.configSecrets }),
      items: (function* () {
        for (const record of records.values()) yield toInstance(record);
      })(),
    };
  }

  /** All instances of one service, for snapshots. */
  instancesOf(namespace: string, name: string): Instance[] {
    const entry = this.services.get(serviceKey(namespace, name));
    return entry === undefined ? [] : [...entry.instances.values()].map(toInstance);
  }

  counts(namespace: string, name: string): InstanceCounts | undefined {
    const entry = this.services.get(serviceKey(namespace, name));
    return entry && countsOf(entry);
  }

  stats(): { services: number; declared: number; instances: InstanceCounts } {
    const instances: InstanceCounts = { total: 0, passing: 0, warning: 0, critical: 0 };
    for (const record of this.instances.values()) {
      instances.total += 1;
      instances[healthOf(record).status] += 1;
    }
    let declared = 0;
    for (const entry of this.services.values()) if (entry.declared) declared += 1;
    return { services: this.services.size, declared, instances };
  }

  // ---- internals ----

  private createEntry(namespace: string, name: string): ServiceEntry {
    const entry: ServiceEntry = {
      namespace,
      name,
      spec: undefined,
      declared: false,
      generation: 0,
      configVersion: 0,
      instances: new Map(),
      answer: undefined,
    };
    this.services.set(serviceKey(namespace, name), entry);
    return entry;
  }

  /** Throws unless a registration may create service `namespace/name` (undeclared). */
  private assertMayCreateService(namespace: string, name: string, owner?: string): void {
    if (!this.opts.allowUndeclared) {
      throw new MaxineError(
        'SERVICE_NOT_DECLARED',
        `Service ${namespace}/${name} is not declared by a MaxineService, and undeclared registration is off`,
      );
    }
    this.checkCount({
      limit: 'undeclaredServices',
      current: this.undeclared.size,
      of: 'The registry',
    });
    if (owner !== undefined) {
      this.checkCount({
        limit: 'undeclaredServicesPerPrincipal',
        current: this.ownedServices.get(owner) ?? 0,
        of: owner,
      });
    }
  }

  /** Throws unless one more instance fits: in total, in its service, for its owner. */
  private assertRoomForInstance(
    req: RegisterRequest,
    entry: ServiceEntry | undefined,
    owner: string | undefined,
  ): void {
    this.checkCount({ limit: 'instances', current: this.instances.size, of: 'The registry' });
    this.checkCount({
      limit: 'instancesPerService',
      current: entry?.instances.size ?? 0,
      of: `Service ${req.namespace}/${req.service}`,
    });
    if (owner !== undefined) {
      this.checkCount({
        limit: 'instancesPerPrincipal',
        current: this.ownedInstances.get(owner) ?? 0,
        of: owner,
      });
    }
  }

  private checkCount(check: CountCheck): void {
    this.refuse(countRefusal(this.limits, check));
  }

  private refuse(refusal: MaxineError | undefined): void {
    if (refusal === undefined) return;
    this.limitRefusals[(refusal.details as { limit: LimitName }).limit] += 1;
    throw refusal;
  }

  private createUndeclared(namespace: string, name: string, owner?: string): ServiceEntry {
    const created = this.createEntry(namespace, name);
    this.markUndeclared(serviceKey(namespace, name), owner);
    this.opts.emit({
      type: 'service_updated',
      service: { namespace, name },
      data: { declared: false },
    });
    return created;
  }

  private markUndeclared(key: string, owner: string | undefined): void {
    this.undeclared.set(key, owner);
    if (owner !== undefined) increment(this.ownedServices, owner);
  }

  private unmarkUndeclared(key: string): void {
    if (!this.undeclared.has(key)) return;
    const owner = this.undeclared.get(key);
    this.undeclared.delete(key);
    if (owner !== undefined) decrement(this.ownedServices, owner);
  }

  private answerOf(entry: ServiceEntry): ServiceAnswer {
    if (entry.answer === undefined) {
      const healthy = discoverable(entry.instances.values(), (r) => healthOf(r).status).map(
        toDiscovered,
      );
      entry.answer = new ServiceAnswer(healthy, entry.spec, this.loadOf);
    }
    return entry.answer;
  }

  private afterHealthChange(record: InstanceRecord, before: HealthStatus): void {
    const after = healthOf(record).status;
    if (after === before) return;
    const entry = this.services.get(serviceKey(record.namespace, record.service));
    if (entry !== undefined) entry.answer = undefined;
    this.opts.emit({
      type: after === 'passing' ? 'service_healthy' : 'service_unhealthy',
      service: refOf(record),
      instance: toInstance(record),
      data: { status: after, previous: before },
    });
  }

  private removeRecord(entry: ServiceEntry, record: InstanceRecord, reason: string): void {
    entry.instances.delete(record.id);
    this.instances.delete(record.id);
    if (record.owner !== undefined) decrement(this.ownedInstances, record.owner);
    entry.answer = undefined;
    this.opts.emit({
      type: 'service_deregistered',
      service: refOf(record),
      instance: toInstance(record),
      data: { reason },
    });
    if (!entry.declared && entry.instances.size === 0) {
      this.services.delete(serviceKey(entry.namespace, entry.name));
      this.unmarkUndeclared(serviceKey(entry.namespace, entry.name));
      this.opts.emit({
        type: 'service_deleted',
        service: refOf(record),
        data: { declared: false },
      });
    }
  }

  /**
   * The service's config version for `after` (config-history.ts: the same content keeps its
   * version, across restarts too); returns what changed (undefined: nothing, the version stays).
   */
  private nextConfigVersion(
    entry: ServiceEntry,
    after: Record<string, string> | undefined,
    secrets?: ConfigSecrets,
  ): ConfigChange | undefined {
    const secretKeys = new Set(Object.keys(secrets ?? {}));
    const step = this.configs.next(entry.namespace, entry.name, after, secretKeys);
    entry.configVersion = step.version;
    return step.change;
  }

  /** `config_changed` (the map, version, hash, changed keys) or `config_deleted`. */
  private emitConfigChange(
    service: ServiceRef,
    version: number,
    change: ConfigChange | undefined,
  ): void {
    if (change === undefined) return;
    const { after, changes, secrets } = change;
    if (after === undefined) {
      this.opts.emit({ type: 'config_deleted', service, data: { version, changes } });
      return;
    }
    // The hash covers each Secret-sourced key's digest (never its value): a rotation moves it.
    this.opts.emit({
      type: 'config_changed',
      service,
      data: {
        config: after,
        version,
        hash: configHash(versionedConfig(after, secrets)),
        changes,
        ...(secrets !== undefined && { secrets }),
      },
    });
  }
}

/**
 * A registration's record; a renewal keeps the first registration time, the reported load,
 * the owner, and the metadata and ports objects when they are unchanged (so a renewal every
 * few seconds does not leave a copy in each event the log holds).
 */
function recordOf(
  req: RegisterRequest,
  id: string,
  at: {
    now: number;
    ttlMs: number;
    existing: InstanceRecord | undefined;
    owner: string | undefined;
    /** The service's entry: its namespace and name strings are shared by all its records. */
    entry: ServiceEntry;
  },
): InstanceRecord {
  const { existing } = at;
  const owner = existing === undefined ? at.owner : existing.owner;
  return {
    id,
    namespace: at.entry.namespace,
    service: at.entry.name,
    host: req.host,
    port: req.port,
    ports: req.ports && reuse(existing?.ports, req.ports),
    version: req.version,
    zone: req.zone,
    datacenter: req.datacenter,
    weight: req.weight,
    metadata: compactMetadata(reuse(existing?.metadata, req.metadata ?? EMPTY_METADATA)),
    source: 'registration',
    ...(owner !== undefined && { owner }),
    registeredAt: at.existing?.registeredAt ?? at.now,
    lastHeartbeat: at.now,
    ttlMs: at.ttlMs,
    leaseLapsed: false,
    ready: true,
    // A registration starts healthy; its checks report otherwise with the next heartbeat.
    check: BARE_CHECKS.passing,
    connections: at.existing?.connections ?? 0,
  };
}

function gateOf(r: InstanceRecord): PodHealthGate | undefined {
  const pod = r.metadata.pod;
  if (r.source !== 'kubernetes' || r.gated !== true || pod === undefined) return undefined;
  return {
    id: r.id,
    namespace: r.namespace,
    service: r.service,
    pod,
    own: ownHealthOf(r),
    observed: r.condition,
  };
}

/** A registration as a store keeps it: no pods, no derived state (lapse, load). */
function persistedOf(r: InstanceRecord): PersistedInstance | undefined {
  if (r.source !== 'registration' || r.lastHeartbeat === undefined || r.ttlMs === undefined)
    return undefined;
  return { ...registrationOf(r), lastHeartbeat: r.lastHeartbeat, ttlMs: r.ttlMs };
}

/** What a registration is, whoever keeps it (a store, the API server): no lease, no derived state. */
function registrationOf(r: InstanceRecord): RegistrationFields {
  return {
    id: r.id,
    namespace: r.namespace,
    service: r.service,
    host: r.host,
    port: r.port,
    ...(r.ports && { ports: r.ports }),
    ...(r.version !== undefined && { version: r.version }),
    ...(r.zone !== undefined && { zone: r.zone }),
    ...(r.datacenter !== undefined && { datacenter: r.datacenter }),
    weight: r.weight,
    metadata: r.metadata,
    ...(r.owner !== undefined && { owner: r.owner }),
    registeredAt: r.registeredAt,
    check: r.check,
  };
}

/** The registration request a kept registration amounts to (for the size limits). */
function requestOf(k: KeptRegistration): RegisterRequest {
  return {
    service: k.service,
    namespace: k.namespace,
    host: k.host,
    port: k.port,
    weight: k.weight,
    metadata: k.metadata,
    ...(k.ports && { ports: k.ports }),
  };
}

/** Refuses registration to a service whose spec blocks it, with the reason. */
function assertRegistrationOpen(entry: ServiceEntry): void {
  const blocked = entry.spec?.blocked;
  if (blocked?.registration === true) {
    throw new MaxineError(
      'SERVICE_BLOCKED',
      `Registration to ${entry.namespace}/${entry.name} is blocked: ${blocked.reason}`,
      { reason: blocked.reason },
    );
  }
}

/** A check result as the record keeps it (no `output` key when there is none). */
function checkOf(status: HealthStatus, output: string | undefined): InstanceRecord['check'] {
  return output === undefined ? BARE_CHECKS[status] : { status, output };
}

/**
 * A check result without output, one object per status shared by every record (frozen: a
 * record's check is replaced, never changed). 100,000 instances held 100,000 equal copies.
 */
const BARE_CHECKS: Readonly<Record<HealthStatus, InstanceRecord['check']>> = Object.freeze({
  passing: Object.freeze({ status: 'passing' }),
  warning: Object.freeze({ status: 'warning' }),
  critical: Object.freeze({ status: 'critical' }),
});

/** No metadata: one frozen empty map shared by every record (events and answers share it too). */
const EMPTY_METADATA: Record<string, string> = Object.freeze({});

/** `metadata`, or the shared empty map when it has no keys. */
function compactMetadata(metadata: Record<string, string>): Record<string, string> {
  for (const _key in metadata) return metadata;
  return EMPTY_METADATA;
}

function refOf(r: InstanceRecord): ServiceRef {
  return { namespace: r.namespace, name: r.service };
}

function countsOf(entry: ServiceEntry): InstanceCounts {
  const counts: InstanceCounts = { total: 0, passing: 0, warning: 0, critical: 0 };
  for (const record of entry.instances.values()) {
    counts.total += 1;
    counts[healthOf(record).status] += 1;
  }
  return counts;
}

function summaryOf(entry: ServiceEntry): ServiceSummary {
  const blocked = entry.spec?.blocked;
  return {
    namespace: entry.namespace,
    name: entry.name,
    declared: entry.declared,
    ...(blocked && { blocked }),
    instances: countsOf(entry),
  };
}

/** `kept` when it equals `given`: an unchanged map is shared, not copied, by every event. */
function reuse<V>(
  kept: Record<string, V> | undefined,
  given: Record<string, V>,
): Record<string, V> {
  return kept !== undefined && sameRecord(kept, given) ? kept : given;
}

function sameRecord<V>(a: Record<string, V>, b: Record<string, V>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}

/** What a heartbeat event says: which instance, its health and lease now. */
function heartbeatOf(
  r: InstanceRecord,
): Extract<RegistryEventDraft, { type: 'service_heartbeat' }>['data'] {
  const expiresAt = leaseExpiry(r);
  return {
    id: r.id,
    status: healthOf(r).status,
    ...(r.lastHeartbeat !== undefined && { lastHeartbeat: isoTime(r.lastHeartbeat) }),
    ...(expiresAt !== undefined && { expiresAt: isoTime(expiresAt) }),
  };
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/**
 * A stable id, so that re-registering the same endpoint renews it instead of duplicating it.
 * Made one flat string: `${service}-${digest.slice(0, 16)}` was a concatenation (a cons string)
 * of a slice that kept the whole 64-character digest alive, five heap objects and ~176 bytes
 * held by both instance maps for as long as the instance lives (a flat one is ~40; issue 17).
 */
export function instanceId(namespace: string, service: string, host: string, port: number): string {
  const digest = createHash('sha256').update(`${namespace}/${service}/${host}:${port}`).digest();
  return flatString(`${service}-${digest.toString('hex', 0, 8)}`);
}

/**
 * `s` as one sequential string: V8 keeps a concatenation as a tree of its parts (and a slice
 * as a view of its parent) until something flattens it, and a Map key is never flattened.
 * Strings kept per instance are made flat once, when the instance is made.
 */
export function flatString(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/**
 * A spec's config for versioning: undefined when the spec has neither config nor Secret keys
 * (so a service without config keeps version 0), else the map (possibly empty).
 */
function configOf(
  spec: ServiceSpec | undefined,
  secrets: ConfigSecrets | undefined,
): Record<string, string> | undefined {
  if (spec === undefined) return undefined;
  return spec.config ?? (secrets !== undefined ? {} : undefined);
}
