import type { DiscoveredInstance, HealthStatus, Instance } from '../../common/wire.js';
import { isoTime } from '../../common/iso-time.js';

/**
 * The pod's `maxine.io/healthy` condition as the pod informer sees it: the health the leader
 * decided and wrote (operator/kube/health-condition.ts). Reasons are the leader's.
 */
export interface PodHealthCondition {
  status: 'True' | 'False';
  reason?: string;
  message?: string;
}

/** The condition reasons, by the health that makes them (see healthOfCondition for the way back). */
export const CONDITION_REASONS = {
  passing: 'Passing',
  warning: 'Warning',
  check: 'CheckFailed',
  'lease-expired': 'LeaseLapsed',
  'no-sidecar': 'NoSidecar',
  deregistered: 'SidecarDeregistered',
} as const;

/** The health a pod's condition says (what a follower, or a new leader, starts from). */
export function healthOfCondition(c: PodHealthCondition): {
  status: HealthStatus;
  reason: string;
  output?: string;
} {
  const output = c.message !== undefined && c.message !== '' ? { output: c.message } : {};
  if (c.status === 'True')
    return {
      status: c.reason === CONDITION_REASONS.warning ? 'warning' : 'passing',
      reason: 'check',
      ...output,
    };
  const reason =
    (Object.entries(CONDITION_REASONS).find(([, v]) => v === c.reason)?.[0] as
      keyof typeof CONDITION_REASONS | undefined) ?? 'check';
  return {
    status: 'critical',
    reason: reason === 'passing' || reason === 'warning' ? 'check' : reason,
    ...output,
  };
}

/** The registry's own record of an instance. Mutable; only the registry changes it. */
export interface InstanceRecord {
  readonly id: string;
  readonly namespace: string;
  readonly service: string;
  host: string;
  port: number;
  ports?: Record<string, number>;
  version?: string;
  zone?: string;
  datacenter?: string;
  weight: number;
  metadata: Record<string, string>;
  source: 'registration' | 'kubernetes';
  /** The principal whose registration created it (pods have none). */
  owner?: string;
  registeredAt: number;
  /** Lease: absent for instances that do not heartbeat (a Kubernetes pod without sidecar). */
  lastHeartbeat?: number;
  ttlMs?: number;
  /**
   * Time added to a lease a new leader adopted from a pod's condition, until the pod's sidecar
   * next heartbeats or registers here: the sidecar was told to wait a Retry-After during the
   * handover, so a short TTL must not lapse before it could come back.
   */
  leaseGraceMs?: number;
  leaseLapsed: boolean;
  /** Pod readiness (always true for registrations). */
  ready: boolean;
  /** A pod without the sidecar its service's healthCheck needs (Kubernetes pods only). */
  noSidecar?: boolean;
  check: { status: HealthStatus; output?: string };
  connections: number;
  /** The pod carries the `maxine.io/healthy` readiness gate (Kubernetes pods only). */
  gated?: boolean;
  /** Its `maxine.io/healthy` condition as the informer last saw it. */
  condition?: PodHealthCondition;
  /** A sidecar registered here (with this replica) since the record was made or adopted. */
  attached?: boolean;
  /** This replica follows the condition (a follower) instead of its own heartbeat state. */
  followsCondition?: boolean;
  /** Its sidecar registered, but the service's health check has not reported yet. */
  awaitsCheck?: boolean;
}

/** Whether this replica's own sidecar state decides a gated pod's health (else its condition). */
function ownsHealth(r: InstanceRecord): boolean {
  return r.attached === true && r.awaitsCheck !== true && r.followsCondition !== true;
}

/** What healthOf says, one frozen object per answer: asked several times per heartbeat. */
type Health = Readonly<{ status: HealthStatus; reason: string }>;
const health = (status: HealthStatus, reason: string): Health => Object.freeze({ status, reason });
const NO_SIDECAR = health('critical', 'no-sidecar');
const NOT_READY = health('critical', 'not-ready');
const LEASE_EXPIRED = health('critical', 'lease-expired');
const BY_CHECK: Readonly<Record<HealthStatus, Health>> = Object.freeze({
  passing: health('passing', 'check'),
  warning: health('warning', 'check'),
  critical: health('critical', 'check'),
});

export function healthOf(r: InstanceRecord): Health {
  // First: it is the lasting cause (the pod must be recreated), and what a person acts on.
  if (r.noSidecar === true && r.lastHeartbeat === undefined) return NO_SIDECAR;
  if (!r.ready) return NOT_READY;
  // A gated pod with a condition: a follower answers with what the leader wrote; so does the
  // leader for a pod whose sidecar has not reported here. Without one, as any pod.
  if (r.gated === true && r.condition !== undefined && !ownsHealth(r)) {
    const { status, reason } = healthOfCondition(r.condition);
    return { status, reason };
  }
  if (r.leaseLapsed) return LEASE_EXPIRED;
  return BY_CHECK[r.check.status];
}

/**
 * The health this replica's own sidecar state says, for the pod condition the leader writes:
 * pod readiness left out (the gate is one of its inputs). Undefined while it has no say: a
 * gated pod whose sidecar has not registered here yet.
 */
export function ownHealthOf(
  r: InstanceRecord,
): { status: HealthStatus; reason: keyof typeof CONDITION_REASONS; output?: string } | undefined {
  if (r.noSidecar === true && r.lastHeartbeat === undefined)
    return { status: 'critical', reason: 'no-sidecar' };
  if (r.attached !== true) return undefined;
  if (r.ttlMs === undefined) return { status: 'critical', reason: 'deregistered' };
  if (r.awaitsCheck === true) return undefined;
  if (r.leaseLapsed) return { status: 'critical', reason: 'lease-expired' };
  const output = r.check.output !== undefined ? { output: r.check.output } : {};
  if (r.check.status === 'critical') return { status: 'critical', reason: 'check', ...output };
  return { status: r.check.status, reason: r.check.status, ...output };
}

/** The check output shown: the condition's message where the condition is what counts. */
function outputOf(r: InstanceRecord): string | undefined {
  if (r.gated === true && r.condition !== undefined && !ownsHealth(r)) return r.condition.message;
  return r.check.output;
}

export function leaseExpiry(r: InstanceRecord): number | undefined {
  return r.lastHeartbeat === undefined || r.ttlMs === undefined
    ? undefined
    : r.lastHeartbeat + r.ttlMs + (r.leaseGraceMs ?? 0);
}

/**
 * The instance as the API shows it. Built field by field, optional ones only when set (the
 * same keys in the same order as before): the heartbeat's answer, so built on every one, and
 * the spreads of temporary objects it was built from were garbage of their own (issue 17).
 */
export function toInstance(r: InstanceRecord): Instance {
  const h = healthOf(r);
  const expiresAt = leaseExpiry(r);
  const out = outputOf(r);
  const instance: Instance = {
    id: r.id,
    service: { namespace: r.namespace, name: r.service },
    host: r.host,
    port: r.port,
  } as Instance;
  if (r.ports) instance.ports = r.ports;
  if (r.version !== undefined) instance.version = r.version;
  if (r.zone !== undefined) instance.zone = r.zone;
  if (r.datacenter !== undefined) instance.datacenter = r.datacenter;
  instance.weight = r.weight;
  instance.metadata = r.metadata;
  instance.health =
    out === undefined
      ? { status: h.status, reason: h.reason }
      : { status: h.status, reason: h.reason, output: out };
  instance.source = r.source;
  instance.registeredAt = isoTime(r.registeredAt);
  if (r.lastHeartbeat !== undefined) instance.lastHeartbeat = isoTime(r.lastHeartbeat);
  if (expiresAt !== undefined && r.ttlMs !== undefined)
    instance.lease = { ttlSeconds: Math.round(r.ttlMs / 1000), expiresAt: isoTime(expiresAt) };
  return instance;
}

/** What discovery hands out: routing fields only, so heartbeats do not invalidate answers. */
export function toDiscovered(r: InstanceRecord): DiscoveredInstance {
  return {
    id: r.id,
    service: { namespace: r.namespace, name: r.service },
    host: r.host,
    port: r.port,
    ...(r.ports && { ports: r.ports }),
    ...(r.version !== undefined && { version: r.version }),
    ...(r.zone !== undefined && { zone: r.zone }),
    ...(r.datacenter !== undefined && { datacenter: r.datacenter }),
    weight: r.weight,
    metadata: r.metadata,
    health: healthOf(r).status,
  };
}

/** Every field discovery routes by, health aside, as one comparable string. */
export function routeOf(r: InstanceRecord): string {
  return JSON.stringify({ ...toDiscovered(r), health: undefined });
}
