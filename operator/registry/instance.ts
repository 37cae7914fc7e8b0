import type { DiscoveredInstance, HealthStatus, Instance } from '../../common/wire.js';

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
  leaseLapsed: boolean;
  /** Pod readiness (always true for registrations). */
  ready: boolean;
  /** A pod without the sidecar its service's healthCheck needs (Kubernetes pods only). */
  noSidecar?: boolean;
  check: { status: HealthStatus; output?: string };
  connections: number;
}

export function healthOf(r: InstanceRecord): { status: HealthStatus; reason: string } {
  // First: it is the lasting cause (the pod must be recreated), and what a person acts on.
  if (r.noSidecar === true && r.lastHeartbeat === undefined)
    return { status: 'critical', reason: 'no-sidecar' };
  if (!r.ready) return { status: 'critical', reason: 'not-ready' };
  if (r.leaseLapsed) return { status: 'critical', reason: 'lease-expired' };
  return { status: r.check.status, reason: 'check' };
}

export function leaseExpiry(r: InstanceRecord): number | undefined {
  return r.lastHeartbeat === undefined || r.ttlMs === undefined
    ? undefined
    : r.lastHeartbeat + r.ttlMs;
}

export function toInstance(r: InstanceRecord): Instance {
  const health = healthOf(r);
  const expiresAt = leaseExpiry(r);
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
    health: {
      status: health.status,
      reason: health.reason,
      ...(r.check.output !== undefined && { output: r.check.output }),
    },
    source: r.source,
    registeredAt: new Date(r.registeredAt).toISOString(),
    ...(r.lastHeartbeat !== undefined && {
      lastHeartbeat: new Date(r.lastHeartbeat).toISOString(),
    }),
    ...(expiresAt !== undefined &&
      r.ttlMs !== undefined && {
        lease: {
          ttlSeconds: Math.round(r.ttlMs / 1000),
          expiresAt: new Date(expiresAt).toISOString(),
        },
      }),
  };
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
