import { describe, it, expect } from '@jest/globals';
import { serviceSpecSchema } from '../resources.js';
import { linkerdTraffic } from './linkerd-traffic.js';
import { DEFAULT_MESH_OPTIONS } from './model.js';
import type { MeshInput, MeshObject } from './model.js';

/** A render input whose spec goes through the schema, like one read from the cluster. */
function input(spec: unknown): MeshInput {
  const service = { namespace: 'shop', name: 'web', spec: serviceSpecSchema.parse(spec) };
  return {
    service,
    services: [service],
    intentions: [],
    external: [],
    options: DEFAULT_MESH_OPTIONS,
  };
}

const render = (spec: unknown) => linkerdTraffic(input(spec));
const subjects = (spec: unknown) => render(spec).differences.map((d) => d.subject);

function only(objects: MeshObject[], kind: string): MeshObject {
  expect(objects.map((o) => o.kind)).toEqual([kind]);
  return objects[0]!;
}

const VERSIONS = [
  { name: 'v1', weight: 80 },
  { name: 'v2', weight: 20 },
];

describe('linkerdTraffic', () => {
  it('renders nothing for a plain service', () => {
    expect(render({})).toEqual({ objects: [], differences: [] });
  });

  it('splits versions with an outbound HTTPRoute', () => {
    const { objects, differences } = render({ ports: [{ port: 8080 }], versions: VERSIONS });
    const route = only(objects, 'HTTPRoute');
    expect(route.apiVersion).toBe('policy.linkerd.io/v1beta3');
    expect(route.metadata.name).toBe('web-split');
    expect(route.metadata.labels['maxine.io/mesh']).toBe('linkerd');
    expect(route.spec).toEqual({
      parentRefs: [{ group: 'core', kind: 'Service', name: 'web', port: 8080 }],
      rules: [
        {
          backendRefs: [
            { name: 'web-v1', port: 8080, weight: 80 },
            { name: 'web-v2', port: 8080, weight: 20 },
          ],
        },
      ],
    });
    expect(differences).toEqual([
      expect.objectContaining({ object: 'HTTPRoute/web-split', subject: 'spec.versions' }),
    ]);
    expect(differences[0]!.message).toContain('web-v1, web-v2');
  });

  it('reports a split without a declared port', () => {
    const route = only(render({ versions: VERSIONS }).objects, 'HTTPRoute');
    expect(route.spec.parentRefs).toEqual([{ group: 'core', kind: 'Service', name: 'web' }]);
    expect(subjects({ versions: VERSIONS })).toEqual(['spec.versions', 'spec.ports']);
  });

  it('puts retries and timeouts of a split on the HTTPRoute, not in a ServiceProfile', () => {
    const spec = {
      ports: [{ port: 80 }],
      versions: VERSIONS,
      requestTimeoutSeconds: 1.5,
      retries: {
        attempts: 3,
        perTryTimeoutSeconds: 0.5,
        retryOn: ['5xx', 'gateway-error', 'reset'],
      },
    };
    const { objects, differences } = render(spec);
    const route = only(objects, 'HTTPRoute');
    expect(route.metadata.annotations).toEqual({
      'retry.linkerd.io/http': '5xx',
      'retry.linkerd.io/limit': '3',
      'retry.linkerd.io/timeout': '500ms',
    });
    expect((route.spec.rules as Record<string, unknown>[])[0]!.timeouts).toEqual({
      request: '1500ms',
    });
    expect(differences).toContainEqual(
      expect.objectContaining({
        subject: 'spec.retries.retryOn',
        message: expect.stringContaining('reset are not retried'),
      }),
    );
  });

  it('maps gateway-error and retriable-4xx to status lists, and drops retries it cannot express', () => {
    const annotations = (on: string[]) =>
      only(
        render({ versions: VERSIONS, retries: { attempts: 1, retryOn: on } }).objects,
        'HTTPRoute',
      ).metadata.annotations;
    expect(annotations(['gateway-error', 'retriable-4xx'])).toEqual({
      'retry.linkerd.io/http': '502-504,409',
      'retry.linkerd.io/limit': '1',
    });
    expect(annotations(['connect-failure'])).toBeUndefined();
  });

  it('renders a ServiceProfile for retries and timeouts without versions', () => {
    const { objects, differences } = render({
      requestTimeoutSeconds: 2,
      retries: { attempts: 4, perTryTimeoutSeconds: 1, retryOn: ['5xx', 'reset'] },
    });
    const profile = only(objects, 'ServiceProfile');
    expect(profile.apiVersion).toBe('linkerd.io/v1alpha2');
    expect(profile.metadata.name).toBe('web.shop.svc.cluster.local');
    expect(profile.spec).toEqual({
      routes: [{ name: 'all', condition: { pathRegex: '.*' }, timeout: '2s', isRetryable: true }],
      retryBudget: { retryRatio: 0.2, minRetriesPerSecond: 10, ttl: '10s' },
    });
    expect(differences.map((d) => d.subject)).toEqual([
      'spec.retries.attempts',
      'spec.retries.retryOn',
      'spec.retries.perTryTimeoutSeconds',
    ]);
    expect(differences.every((d) => d.object === 'ServiceProfile/web.shop.svc.cluster.local')).toBe(
      true,
    );
  });

  it('does not mark the route retryable without 5xx', () => {
    const profile = only(
      render({ retries: { attempts: 1, retryOn: ['connect-failure'] } }).objects,
      'ServiceProfile',
    );
    expect(profile.spec.routes).toEqual([{ name: 'all', condition: { pathRegex: '.*' } }]);
  });

  it('renders a timeout-only ServiceProfile without a budget', () => {
    const profile = only(render({ requestTimeoutSeconds: 0.25 }).objects, 'ServiceProfile');
    expect(profile.spec).toEqual({
      routes: [{ name: 'all', condition: { pathRegex: '.*' }, timeout: '250ms' }],
    });
    expect(render({ requestTimeoutSeconds: 0.25 }).differences).toEqual([]);
  });

  it('lists the failure-accrual annotations for the circuit breaker', () => {
    const { objects, differences } = render({
      circuitBreaker: {
        failureThreshold: 7,
        openSeconds: 10,
        maxOpenSeconds: 90,
        backoffMultiplier: 3,
      },
    });
    expect(objects).toEqual([]);
    expect(differences).toHaveLength(1);
    const { subject, message } = differences[0]!;
    expect(subject).toBe('spec.circuitBreaker');
    for (const part of [
      'balancer.linkerd.io/failure-accrual: "consecutive"',
      'balancer.linkerd.io/failure-accrual-consecutive-max-failures: "7"',
      'balancer.linkerd.io/failure-accrual-consecutive-min-penalty: "10s"',
      'balancer.linkerd.io/failure-accrual-consecutive-max-penalty: "90s"',
      'multiplying it by 3',
    ]) {
      expect(message).toContain(part);
    }
    expect(render({ circuitBreaker: {} }).differences[0]!.message).toContain('max-penalty: "300s"');
  });

  it('reports connection-pool limits', () => {
    const differences = render({
      circuitBreaker: { maxConnections: 5, maxRequests: 9 },
    }).differences;
    expect(differences[1]!.message).toContain('maxConnections, maxRequests');
  });

  it.each([
    ['round-robin', false],
    ['power-of-two-choices', false],
    ['least-connections', false],
    ['random', true],
    ['weighted-round-robin', true],
    ['locality-aware', true],
  ])('load balancing %s differs: %p', (strategy, differs) => {
    expect(subjects({ loadBalancing: { strategy } }).includes('spec.loadBalancing.strategy')).toBe(
      differs,
    );
  });

  it('reports the hash strategies', () => {
    expect(
      subjects({ loadBalancing: { strategy: 'consistent-hash', hashKey: 'source-ip' } }),
    ).toEqual(['spec.loadBalancing.strategy']);
  });

  it('reports rate limits', () => {
    expect(render({ rateLimit: { requestsPerSecond: 5, burst: 5 } })).toEqual({
      objects: [],
      differences: [expect.objectContaining({ subject: 'spec.rateLimit' })],
    });
  });
});
