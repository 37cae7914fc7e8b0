/**
 * Pods as instances (pure): which pods a MaxineService selects and what instance each one is.
 * Like Endpoints: a pod with an IP is an instance; it is discoverable only while Running,
 * Ready and not terminating.
 */
import { createHash } from 'node:crypto';
import type { ServiceSpec } from '../../common/resources.js';
import type { PodInstance } from '../registry/registry.js';

/** The few pod fields the mapping reads (structurally compatible with client-node's V1Pod). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
  spec?: {
    nodeName?: string;
    containers?: { ports?: { containerPort: number; name?: string }[] }[];
  };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

/** A selector selects a pod when every label matches; an empty or absent selector selects none. */
export function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

export function isPodReady(pod: PodLike): boolean {
  return (
    pod.metadata?.deletionTimestamp === undefined &&
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** The instance id of a pod in a service: stable, unique across namespaces and services. */
export function podInstanceId(namespace: string, pod: string, service: string): string {
  const id = `${namespace}.${pod}.${service}`;
  return id.length <= 253
    ? id
    : `${service}-${createHash('sha256').update(id).digest('hex').slice(0, 16)}`;
}

/** The version of a pod: the first declared version whose labels it carries, else its `version` label. */
export function versionOf(spec: ServiceSpec, labels: Record<string, string>): string | undefined {
  for (const v of spec.versions ?? []) {
    const wanted = v.labels ?? { version: v.name };
    if (Object.entries(wanted).every(([k, val]) => labels[k] === val)) return v.name;
  }
  return labels.version;
}

function portsOf(
  spec: ServiceSpec,
  pod: PodLike,
): { port?: number; ports?: Record<string, number> } {
  const containerPorts = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  const named = (spec.ports ?? [])
    .filter((p) => p.name !== undefined)
    .map((p) => [p.name as string, p.port]);
  return {
    port: spec.ports?.[0]?.port ?? containerPorts[0]?.containerPort,
    ...(named.length > 0 && { ports: Object.fromEntries(named) as Record<string, number> }),
  };
}

/** The instance a selected pod is, or undefined while it has no IP (or no port to route to). */
export function podInstance(
  namespace: string,
  service: string,
  spec: ServiceSpec,
  pod: PodLike,
): PodInstance | undefined {
  const name = pod.metadata?.name;
  const host = pod.status?.podIP;
  const { port, ports } = portsOf(spec, pod);
  if (name === undefined || host === undefined || host === '' || port === undefined)
    return undefined;
  const labels = pod.metadata?.labels ?? {};
  const version = versionOf(spec, labels);
  const zone = labels['topology.kubernetes.io/zone'];
  const node = pod.spec?.nodeName;
  return {
    id: podInstanceId(namespace, name, service),
    host,
    port,
    ...(ports && { ports }),
    ...(version !== undefined && { version }),
    ...(zone !== undefined && { zone }),
    weight: 1,
    metadata: node === undefined ? { pod: name } : { pod: name, node },
    ready: isPodReady(pod),
  };
}
