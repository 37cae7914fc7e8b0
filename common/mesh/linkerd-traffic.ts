/**
 * The traffic half of the Linkerd renderer (pure): version splits, retries and timeouts of a
 * MaxineService as Linkerd objects, and everything Linkerd configures elsewhere (annotations
 * of the Kubernetes Service, which Maxine does not own) or not at all, as differences.
 *
 * | Maxine                              | Linkerd                                                           |
 * | ----------------------------------- | ----------------------------------------------------------------- |
 * | `versions`                          | HTTPRoute `<svc>-split` (policy.linkerd.io/v1beta3) on the Service, |
 * |                                     | one backendRef per version Service `<svc>-<version>`              |
 * | `retries`, `requestTimeoutSeconds`  | with versions: the HTTPRoute's `retry.linkerd.io/*` annotations   |
 * |                                     | and `timeouts.request`; without: a ServiceProfile (linkerd.io/v1alpha2) |
 * | `circuitBreaker`                    | difference: `balancer.linkerd.io/failure-accrual*` Service annotations |
 * | `loadBalancing`                     | difference unless P2C-like: Linkerd always balances by EWMA P2C   |
 * | `rateLimit`                         | difference: HTTPLocalRateLimitPolicy is not rendered              |
 *
 * Linkerd gives a ServiceProfile precedence over HTTPRoutes and over retry/timeout
 * annotations for the same Service, so a service with versions gets no ServiceProfile: it
 * would silently undo the split.
 */
import type { RetryCondition, ServiceSpec, Strategy } from '../resources.js';
import { effectiveMaxOpenSeconds } from '../resources.js';
import { goDuration, meshObject, serviceHost } from './model.js';
import type { MeshDifference, MeshInput, MeshObject } from './model.js';

type Retries = NonNullable<ServiceSpec['retries']>;
type CircuitBreaker = NonNullable<ServiceSpec['circuitBreaker']>;
type Json = Record<string, unknown>;

export interface LinkerdTraffic {
  objects: MeshObject[];
  differences: MeshDifference[];
}

/** The traffic objects of `input.service` for Linkerd, and where they differ from Maxine. */
export function linkerdTraffic(input: MeshInput): LinkerdTraffic {
  const differences: MeshDifference[] = [];
  const objects: MeshObject[] = [];
  const spec = input.service.spec;
  if ((spec.versions ?? []).length > 0) {
    objects.push(splitRoute(input, differences));
  } else if (spec.retries !== undefined || spec.requestTimeoutSeconds !== undefined) {
    objects.push(serviceProfile(input, differences));
  }
  if (spec.circuitBreaker !== undefined) {
    differences.push(...breakerDifferences(input, spec.circuitBreaker));
  }
  const lb = balancerDifference(spec.loadBalancing?.strategy);
  if (lb !== undefined) differences.push(lb);
  if (spec.rateLimit !== undefined) {
    differences.push({
      subject: 'spec.rateLimit',
      message:
        'Not rendered: Linkerd limits rates with an HTTPLocalRateLimitPolicy on a Server, which Maxine does not render. Maxine applies spec.rateLimit to discovery calls at the registry, not to the calls between services.',
    });
  }
  if (input.external.length > 0) {
    differences.push({
      subject: 'instances registered from outside the cluster',
      message: `Not rendered: Linkerd meshes workloads outside the cluster as ExternalWorkloads, which Maxine does not render; the ${input.external.length} registered instance(s) stay reachable through Maxine discovery only.`,
    });
  }
  return { objects, differences };
}

// ---- versions: HTTPRoute ----

/** The name of the Service a version's pods must be selectable by. */
export function versionServiceName(service: string, version: string): string {
  return `${service}-${version}`;
}

function splitRoute(input: MeshInput, differences: MeshDifference[]): MeshObject {
  const { service } = input;
  const spec = service.spec;
  const name = `${service.name}-split`;
  const object = `HTTPRoute/${name}`;
  const port = spec.ports?.[0]?.port;
  const withPort = (ref: Json): Json => (port === undefined ? ref : { ...ref, port });
  const backendRefs = (spec.versions ?? []).map((v) =>
    withPort({ name: versionServiceName(service.name, v.name), weight: v.weight }),
  );
  const rule: Json = { backendRefs };
  if (spec.requestTimeoutSeconds !== undefined) {
    rule.timeouts = { request: goDuration(spec.requestTimeoutSeconds) };
  }
  const route = meshObject(
    'linkerd',
    service,
    { apiVersion: 'policy.linkerd.io/v1beta3', kind: 'HTTPRoute', name },
    {
      parentRefs: [withPort({ group: 'core', kind: 'Service', name: service.name })],
      rules: [rule],
    },
  );
  const names = backendRefs.map((b) => String(b.name)).join(', ');
  differences.push({
    object,
    subject: 'spec.versions',
    message: `Linkerd splits traffic between Services: a Service per version (${names}), selecting that version's pod labels, must exist; Maxine does not create them.`,
  });
  if (port === undefined) {
    differences.push({
      object,
      subject: 'spec.ports',
      message:
        'No port is declared, so the route names none: it applies to every port of the Service, and a backend without a port may be rejected. Declare spec.ports.',
    });
  }
  if (spec.retries !== undefined) {
    const annotations = retryAnnotations(spec.retries, object, differences);
    if (annotations !== undefined) route.metadata.annotations = annotations;
  }
  return route;
}

/** Linkerd's `retry.linkerd.io/http` status list for each Maxine condition, where there is one. */
const RETRY_STATUS: Partial<Record<RetryCondition, string>> = {
  '5xx': '5xx',
  'gateway-error': '502-504',
  'retriable-4xx': '409',
};

function retryAnnotations(
  retries: Retries,
  object: string,
  differences: MeshDifference[],
): Record<string, string> | undefined {
  const on = retries.retryOn.includes('5xx')
    ? retries.retryOn.filter((c) => c !== 'gateway-error')
    : retries.retryOn;
  const statuses = on.flatMap((c) => RETRY_STATUS[c] ?? []);
  const lost = on.filter((c) => RETRY_STATUS[c] === undefined);
  if (lost.length > 0) {
    differences.push({
      object,
      subject: 'spec.retries.retryOn',
      message: `Linkerd retries by response status only: ${lost.join(', ')} ${statuses.length > 0 ? 'are not retried' : 'cannot be expressed, so no retries are rendered'}.`,
    });
  }
  if (statuses.length === 0) return undefined;
  const annotations: Record<string, string> = {
    'retry.linkerd.io/http': statuses.join(','),
    'retry.linkerd.io/limit': String(retries.attempts),
  };
  if (retries.perTryTimeoutSeconds !== undefined) {
    annotations['retry.linkerd.io/timeout'] = goDuration(retries.perTryTimeoutSeconds);
  }
  return annotations;
}

// ---- retries and timeouts without versions: ServiceProfile ----

const RETRY_BUDGET = { retryRatio: 0.2, minRetriesPerSecond: 10, ttl: '10s' };

function serviceProfile(input: MeshInput, differences: MeshDifference[]): MeshObject {
  const { service } = input;
  const spec = service.spec;
  // Linkerd finds a ServiceProfile by the FQDN of its Service.
  const name = serviceHost(service, input.options);
  const object = `ServiceProfile/${name}`;
  const route: Json = { name: 'all', condition: { pathRegex: '.*' } };
  if (spec.requestTimeoutSeconds !== undefined) {
    route.timeout = goDuration(spec.requestTimeoutSeconds);
  }
  const body: Json = { routes: [route] };
  if (spec.retries !== undefined) {
    if (spec.retries.retryOn.includes('5xx')) route.isRetryable = true;
    body.retryBudget = RETRY_BUDGET;
    differences.push(...profileRetryDifferences(spec.retries, object));
  }
  return meshObject(
    'linkerd',
    service,
    { apiVersion: 'linkerd.io/v1alpha2', kind: 'ServiceProfile', name },
    body,
  );
}

function profileRetryDifferences(retries: Retries, object: string): MeshDifference[] {
  const out: MeshDifference[] = [
    {
      object,
      subject: 'spec.retries.attempts',
      message: `Linkerd retries within a budget (at most 20% extra requests, at least 10 retries per second), not ${retries.attempts} times per request.`,
    },
  ];
  const other = retries.retryOn.filter((c) => c !== '5xx');
  if (!retries.retryOn.includes('5xx')) {
    out.push({
      object,
      subject: 'spec.retries.retryOn',
      message: `A ServiceProfile retries responses classed as failures (5xx) only; without 5xx in the conditions (${retries.retryOn.join(', ')}) the route is not marked retryable.`,
    });
  } else if (other.length > 0) {
    out.push({
      object,
      subject: 'spec.retries.retryOn',
      message: `A ServiceProfile retries 5xx responses only: ${other.join(', ')} are not retried.`,
    });
  }
  if (retries.perTryTimeoutSeconds !== undefined) {
    out.push({
      object,
      subject: 'spec.retries.perTryTimeoutSeconds',
      message: 'A ServiceProfile has no per-try timeout; only the whole request is timed out.',
    });
  }
  return out;
}

// ---- circuit breaker and load balancing: differences only ----

function breakerDifferences(input: MeshInput, cb: CircuitBreaker): MeshDifference[] {
  const prefix = 'balancer.linkerd.io/failure-accrual';
  const annotations = {
    [prefix]: 'consecutive',
    [`${prefix}-consecutive-max-failures`]: String(cb.failureThreshold),
    [`${prefix}-consecutive-min-penalty`]: goDuration(cb.openSeconds),
    [`${prefix}-consecutive-max-penalty`]: goDuration(effectiveMaxOpenSeconds(cb)),
  };
  const list = Object.entries(annotations)
    .map(([k, v]) => `${k}: "${v}"`)
    .join(', ');
  const out: MeshDifference[] = [
    {
      subject: 'spec.circuitBreaker',
      message: `Not rendered: Linkerd reads failure accrual from annotations of the Kubernetes Service ${input.service.name}, which Maxine does not own. Set ${list}. Linkerd doubles the penalty (with jitter) instead of multiplying it by ${cb.backoffMultiplier}, and lets one probe request through instead of ${cb.halfOpenProbes}.`,
    },
  ];
  const limits = (['maxConnections', 'maxPendingRequests', 'maxRequests'] as const).filter(
    (k) => cb[k] !== undefined,
  );
  if (limits.length > 0) {
    out.push({
      subject: 'spec.circuitBreaker',
      message: `Linkerd has no connection-pool limits: ${limits.join(', ')} are not enforced by the mesh.`,
    });
  }
  return out;
}

/** Strategies Linkerd's EWMA power-of-two-choices balancer stands in for without comment. */
const LINKERD_LIKE: ReadonlySet<Strategy> = new Set([
  'round-robin',
  'power-of-two-choices',
  'least-connections',
]);

function balancerDifference(strategy: Strategy | undefined): MeshDifference | undefined {
  if (strategy === undefined || LINKERD_LIKE.has(strategy)) return undefined;
  return {
    subject: 'spec.loadBalancing.strategy',
    message: `Linkerd always balances by power of two choices over peak EWMA latency and cannot be configured: "${strategy}" applies to Maxine discovery only.`,
  };
}
