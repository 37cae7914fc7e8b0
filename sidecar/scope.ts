/**
 * Which services the sidecar's local copy holds (pure), by the pod's `maxine.io/discovery-scope`
 * (`MAXINE_DISCOVERY_SCOPE`):
 * - `pod` (the default): what the pod needs — its own service, every service its MaxineService
 *   lists in `dependencies`, and every destination an intention allows it to call (a source
 *   matching the pod's service with `allow`, or with permissions that allow something). The
 *   cost Istio's `Sidecar` resource exists to cut: a pod calling three services holds three
 *   services, not the cluster.
 * - `namespace`: the pod's namespace and its service's `dependencies` elsewhere.
 * - `cluster`: everything its token may read (undefined: no filter).
 *
 * The list is sent as the event stream's `services=` filter, so the operator does not send what
 * is outside it. A list too long for one request (over `MAX_SCOPE_PATTERNS` patterns or
 * `MAX_SCOPE_CHARS` characters) is widened to whole namespaces, then to everything, never cut:
 * a copy must not silently miss a service the pod needs.
 */
import { MaxineError } from '../common/errors.js';
import { ANNOTATION_DISCOVERY_SCOPE } from '../common/injection.js';
import type { DiscoveryScopeKind } from '../common/injection.js';
import { sourcesNaming } from '../common/policy/intentions.js';
import type { IntentionEntry } from '../common/policy/intentions.js';
import type { ServiceSpec } from '../common/resources.js';
import type { ServiceRef } from '../common/wire.js';
import { scopeCovers } from './proxy/authorizer.js';

export type { DiscoveryScopeKind };

/** Patterns the `services=` filter may carry in this scope (the operator accepts 1024). */
export const MAX_SCOPE_PATTERNS = 512;
/** Characters of the joined filter (the request line must stay well under 16 KiB). */
export const MAX_SCOPE_CHARS = 8_000;

/** What `pod` scope reads besides the own spec: the pod's service and the mirrored intentions. */
export interface PodScopeInput {
  service: string;
  intentions: Iterable<IntentionEntry>;
}

export function discoveryScope(
  scope: DiscoveryScopeKind,
  namespace: string,
  ownSpec: Pick<ServiceSpec, 'dependencies'> | undefined,
  pod?: PodScopeInput,
): string[] | undefined {
  if (scope === 'cluster') return undefined;
  const deps = (ownSpec?.dependencies ?? []).map((d) => `${d.namespace ?? namespace}/${d.name}`);
  if (scope === 'namespace') {
    const refs = deps.filter((r) => !r.startsWith(`${namespace}/`));
    return [`${namespace}/*`, ...new Set(refs)].sort();
  }
  const patterns = new Set(deps);
  if (pod !== undefined) {
    const own = { namespace, name: pod.service };
    patterns.add(`${namespace}/${pod.service}`);
    for (const destination of allowedDestinations(own, pod.intentions)) patterns.add(destination);
  }
  return bounded([...patterns].sort());
}

/**
 * The destinations (`ns/name`, `ns/*`) of the intentions with a source matching `caller` that
 * allows something: `action: allow`, or permissions with an allow among them. A destination an
 * intention denies is left out; one that a more precise intention denies again stays in (the
 * authorizer decides each call from all the intentions of the destinations in scope).
 */
export function allowedDestinations(
  caller: ServiceRef,
  intentions: Iterable<IntentionEntry>,
): string[] {
  const out = new Set<string>();
  for (const entry of intentions) {
    const allows = sourcesNaming(entry, caller).some(
      (s) =>
        s.action === 'allow' ||
        (s.action === undefined && (s.permissions ?? []).some((p) => p.action === 'allow')),
    );
    if (!allows) continue;
    const { destination } = entry.spec;
    out.add(`${destination.namespace ?? entry.namespace}/${destination.name}`);
  }
  return [...out];
}

/** The list, or a wider one when it does not fit a request (namespaces, then everything). */
function bounded(patterns: string[]): string[] | undefined {
  if (fits(patterns)) return patterns;
  const namespaces = [...new Set(patterns.map((p) => `${p.slice(0, p.indexOf('/'))}/*`))].sort();
  return fits(namespaces) ? namespaces : undefined;
}

function fits(patterns: readonly string[]): boolean {
  return (
    patterns.length <= MAX_SCOPE_PATTERNS &&
    patterns.reduce((n, p) => n + p.length + 1, 0) <= MAX_SCOPE_CHARS
  );
}

/** How to take a service into each scope, for the refusal. */
const WIDEN: Record<Exclude<DiscoveryScopeKind, 'cluster'>, string> = {
  pod: "list it in the pod's MaxineService spec.dependencies, allow the call with a MaxineIntention, or widen the scope with the pod annotation maxine.io/discovery-scope: namespace (or cluster)",
  namespace:
    "list it in the pod's MaxineService spec.dependencies, or widen the scope with the pod annotation maxine.io/discovery-scope: cluster",
};

const SCOPE_HOLDS: Record<Exclude<DiscoveryScopeKind, 'cluster'>, string> = {
  pod: 'its own service, its dependencies and the services intentions allow it to call',
  namespace: "its namespace and its service's dependencies",
};

/**
 * The answer to a discovery or a proxied call of a service the copy does not hold because it
 * is outside the pod's scope; undefined when it is within (then `fallback`, the "unknown
 * service" answer, stands). In `pod` scope it is 404 `OUTSIDE_DISCOVERY_SCOPE`; `namespace`
 * scope keeps the code it always answered (`fallback`'s) and gains the same explanation.
 */
export function outsideScope(
  kind: DiscoveryScopeKind,
  scope: readonly string[] | undefined,
  destination: ServiceRef,
  fallback: MaxineError,
): MaxineError | undefined {
  if (kind === 'cluster' || scopeCovers(scope, destination)) return undefined;
  const ref = `${destination.namespace}/${destination.name}`;
  const message = `Service ${ref} is outside this pod's discovery scope (${kind}: ${SCOPE_HOLDS[kind]}), so this sidecar does not hold it; to reach it, ${WIDEN[kind]}`;
  const details = {
    ...(isRecord(fallback.details) && fallback.details),
    service: ref,
    scope: kind,
    annotation: ANNOTATION_DISCOVERY_SCOPE,
  };
  // The forward listener keeps its 502 UNKNOWN_PROXY_HOST (the host may be no Maxine service
  // at all) and namespace scope the 404 it always answered; both gain the explanation.
  const code =
    kind === 'pod' && fallback.code === 'SERVICE_NOT_FOUND'
      ? 'OUTSIDE_DISCOVERY_SCOPE'
      : fallback.code;
  return new MaxineError(code, message, details);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
