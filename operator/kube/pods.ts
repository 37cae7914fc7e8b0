/**
 * Pods as instances (pure): which pods a MaxineService selects and what instance each one is.
 * Like Endpoints: a pod with an IP is an instance; it is discoverable only while Running,
 * Ready and not terminating.
 */
import { createHash } from 'node:crypto';
import type { ServiceSpec } from '../../common/resources.js';
import type { PodInstance } from '../registry/registry.js';
import type { PodHealthCondition } from '../registry/instance.js';
import { ANNOTATION_INJECT, HEALTH_CONDITION, SIDECAR_NAME } from '../../common/injection.js';

/** The few pod fields the mapping reads (structurally compatible with client-node's V1Pod). */
export interface PodLike {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: unknown;
  };
  spec?: {
    nodeName?: string;
    initContainers?: { name: string }[];
    containers?: { name?: string; ports?: { containerPort: number; name?: string }[] }[];
    readinessGates?: { conditionType: string }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/** A selector selects a pod when every label matches (common/selector.ts: the webhook's too). */
export { selects } from '../../common/selector.js';

/**
 * Running, not terminating, and Ready; for a pod with the health gate, its containers ready
 * (ContainersReady) is enough: its Ready also waits for the health condition, which is
 * Maxine's own verdict, so counting it here would let a failed check hold itself in place.
 */
export function isPodReady(pod: PodLike): boolean {
  const conditions = pod.status?.conditions ?? [];
  const is = (type: string): boolean =>
    conditions.some((c) => c.type === type && c.status === 'True');
  return (
    pod.metadata?.deletionTimestamp === undefined &&
    pod.status?.phase === 'Running' &&
    (is('Ready') || (hasHealthGate(pod) && is('ContainersReady')))
  );
}

/** The pod carries the `maxine.io/healthy` readiness gate (the webhook adds it). */
export function hasHealthGate(pod: PodLike): boolean {
  return (pod.spec?.readinessGates ?? []).some((g) => g.conditionType === HEALTH_CONDITION);
}

/** The pod's `maxine.io/healthy` condition, when it has one with a known status. */
export function healthConditionOf(pod: PodLike): PodHealthCondition | undefined {
  const c = (pod.status?.conditions ?? []).find((x) => x.type === HEALTH_CONDITION);
  if (c === undefined || (c.status !== 'True' && c.status !== 'False')) return undefined;
  return {
    status: c.status,
    ...(c.reason !== undefined && c.reason !== '' && { reason: c.reason }),
    ...(c.message !== undefined && c.message !== '' && { message: c.message }),
  };
}

/** The pod carries the sidecar the webhook injects (a native sidecar, or a plain container). */
export function hasSidecar(pod: PodLike): boolean {
  const named = (c: { name?: string }): boolean => c.name === SIDECAR_NAME;
  return (pod.spec?.initContainers ?? []).some(named) || (pod.spec?.containers ?? []).some(named);
}

/**
 * A pod whose service has a healthCheck but which has no sidecar to run it: its health can never
 * be known, so it is critical with the reason `no-sidecar` until it is recreated with one.
 */
export function lacksSidecar(spec: ServiceSpec, pod: PodLike): boolean {
  return spec.healthCheck !== undefined && !hasSidecar(pod);
}

/** What to do about pods without sidecar, by whether they asked for injection. */
export function noSidecarAdvice(pods: readonly PodLike[]): string {
  const asked = pods.filter((p) => p.metadata?.annotations?.[ANNOTATION_INJECT] === 'true');
  const advice: string[] = [];
  if (asked.length > 0)
    advice.push(
      `${names(asked)} asked for injection (${ANNOTATION_INJECT}: "true") but were admitted without it: ` +
        `make sure the operator's webhook runs and the API server reaches it (failurePolicy Ignore admits pods while it does not), then recreate them`,
    );
  const rest = pods.filter((p) => !asked.includes(p));
  if (rest.length > 0)
    advice.push(
      `${names(rest)} did not ask for injection: annotate the pod template with ${ANNOTATION_INJECT}: "true" ` +
        `(or label the namespace maxine.io/injection=enabled), then recreate them`,
    );
  return advice.join('; ');
}

const SHOWN_PODS = 5;

function names(pods: readonly PodLike[]): string {
  const shown = pods.slice(0, SHOWN_PODS).map((p) => p.metadata?.name ?? '?');
  const more = pods.length - shown.length;
  return `${pods.length === 1 ? 'pod' : 'pods'} ${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/** A selected pod the service cannot route to: neither spec.ports nor a containerPort gives a port. */
export function lacksPort(spec: ServiceSpec, pod: PodLike): boolean {
  return portsOf(spec, pod).port === undefined;
}

/** What to do about pods without a port. */
export function noPortAdvice(pods: readonly PodLike[]): string {
  return (
    `${names(pods)} ${pods.length === 1 ? 'declares' : 'declare'} no containerPort and the MaxineService has no spec.ports: ` +
    `add spec.ports to the MaxineService (or a containerPort to the pod template); until then no instance exists for ` +
    `${pods.length === 1 ? 'it' : 'them'} and ${pods.length === 1 ? 'its sidecar waits' : 'their sidecars wait'} with 503 NOT_READY`
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
    ...(lacksSidecar(spec, pod) && { noSidecar: true }),
    ...gateOf(pod),
  };
}

function gateOf(pod: PodLike): Pick<PodInstance, 'gated' | 'condition'> {
  if (!hasHealthGate(pod)) return {};
  const condition = healthConditionOf(pod);
  return { gated: true, ...(condition && { condition }) };
}
