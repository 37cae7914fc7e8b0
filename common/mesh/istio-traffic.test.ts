import { describe, it, expect } from '@jest/globals';
import { serviceSpecSchema } from '../resources.js';
import { istioTraffic } from './istio-traffic.js';
import { DEFAULT_MESH_OPTIONS } from './model.js';
import type { ExternalEndpoint, MeshInput, MeshObject } from './model.js';

const HOST = 'web.shop.svc.cluster.local';

/** A render input whose spec goes through the schema, like one read from the cluster. */
function input(spec: unknown, external: ExternalEndpoint[] = []): MeshInput {
  const service = { namespace: 'shop', name: 'web', spec: serviceSpecSchema.parse(spec) };
  return { service, services: [service], intentions: [], external, options: DEFAULT_MESH_OPTIONS };
}

function render(spec: unknown, external: ExternalEndpoint[] = []) {
  return istioTraffic(input(spec, external));
}

function find(objects: MeshObject[], kind: string): MeshObject | undefined {
  return objects.find((o) => o.kind === kind);
}

function get(objects: MeshObject[], kind: string): MeshObject {
  const o = find(objects, kind);
  if (o === undefined) throw new Error(`no ${kind}`);
  return o;
}

const trafficPolicy = (spec: unknown) =>
  get(render(spec).objects, 'DestinationRule').spec.trafficPolicy as Record<string, unknown>;
const subjects = (spec: unknown, external: ExternalEndpoint[] = []) =>
  render(spec, external).differences.map((d) => d.subject);

const ext = (over: Partial<ExternalEndpoint>): ExternalEndpoint => ({
  id: 'i1',
  host: '10.0.0.1',
  port: 8080,
  weight: 1,
  ...over,
});

describe('istioTraffic: DestinationRule', () => {
  it('always renders one, for the Service FQDN, with maxine labels', () => {
    const { objects, differences } = render({});
    expect(objects).toHaveLength(1);
    expect(objects[0]).toEqual({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: {
        name: 'web',
        namespace: 'shop',
        labels: {
          'app.kubernetes.io/managed-by': 'maxine',
          'maxine.io/service': 'web',
          'maxine.io/mesh': 'istio',
        },
      },
      spec: { host: HOST, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } },
    });
    expect(differences).toEqual([]);
  });

  it.each([
    ['round-robin', { simple: 'ROUND_ROBIN' }, false],
    ['weighted-round-robin', { simple: 'ROUND_ROBIN' }, true],
    ['random', { simple: 'RANDOM' }, false],
    ['weighted-random', { simple: 'RANDOM' }, true],
    ['least-connections', { simple: 'LEAST_REQUEST' }, true],
    ['power-of-two-choices', { simple: 'LEAST_REQUEST' }, false],
    ['locality-aware', { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true } }, true],
  ])('maps %s', (strategy, loadBalancer, differs) => {
    const spec = { loadBalancing: { strategy } };
    expect(trafficPolicy(spec).loadBalancer).toEqual(loadBalancer);
    expect(subjects(spec).includes('spec.loadBalancing.strategy')).toBe(differs);
  });

  it.each([
    ['header:x-user', { httpHeaderName: 'x-user' }],
    ['query:user', { httpQueryParameterName: 'user' }],
    ['cookie:sid', { httpCookie: { name: 'sid', ttl: '0s' } }],
    ['source-ip', { useSourceIp: true }],
  ])('maps consistent-hash with hashKey %s', (hashKey, source) => {
    const spec = { loadBalancing: { strategy: 'consistent-hash', hashKey } };
    expect(trafficPolicy(spec).loadBalancer).toEqual({
      consistentHash: { ...source, ringHash: {} },
    });
    expect(subjects(spec)).toEqual([]);
  });

  it('sizes the ring from virtualNodes when every instance is known', () => {
    const spec = {
      loadBalancing: { strategy: 'consistent-hash', hashKey: 'source-ip', virtualNodes: 100 },
    };
    const dr = get(
      render(spec, [ext({ id: 'a' }), ext({ id: 'b' }), ext({ id: 'c', weight: 0 })]).objects,
      'DestinationRule',
    );
    expect((dr.spec.trafficPolicy as Record<string, unknown>).loadBalancer).toEqual({
      consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 200 } },
    });
  });

  it('keeps the default ring, with a difference, for pods', () => {
    const spec = {
      selector: { app: 'web' },
      loadBalancing: { strategy: 'consistent-hash', hashKey: 'source-ip', virtualNodes: 100 },
    };
    expect(trafficPolicy(spec).loadBalancer).toEqual({
      consistentHash: { useSourceIp: true, ringHash: {} },
    });
    expect(subjects(spec)).toEqual(['spec.loadBalancing.virtualNodes']);
  });

  it('maps rendezvous-hash to Maglev, with a difference', () => {
    const spec = { loadBalancing: { strategy: 'rendezvous-hash', hashKey: 'header:x-k' } };
    expect(trafficPolicy(spec).loadBalancer).toEqual({
      consistentHash: { httpHeaderName: 'x-k', maglev: {} },
    });
    expect(subjects(spec)).toEqual(['spec.loadBalancing.strategy']);
  });

  it('renders the circuit breaker as outlier detection, off locality failover', () => {
    const spec = { circuitBreaker: { failureThreshold: 3, openSeconds: 20 } };
    const tp = trafficPolicy(spec);
    expect(tp.outlierDetection).toEqual({
      consecutive5xxErrors: 3,
      interval: '10s',
      baseEjectionTime: '20s',
      maxEjectionPercent: 100,
    });
    expect(tp.loadBalancer).toEqual({
      simple: 'ROUND_ROBIN',
      localityLbSetting: { enabled: false },
    });
    expect(tp.connectionPool).toBeUndefined();
    expect(subjects(spec)).toEqual([
      'spec.circuitBreaker.backoffMultiplier',
      'spec.circuitBreaker.halfOpenProbes',
    ]);
  });

  it('keeps locality on for locality-aware with a breaker', () => {
    const spec = { loadBalancing: { strategy: 'locality-aware' }, circuitBreaker: {} };
    expect(trafficPolicy(spec).loadBalancer).toEqual({
      simple: 'ROUND_ROBIN',
      localityLbSetting: { enabled: true },
    });
  });

  it('reports a max open time Envoy cannot have', () => {
    expect(subjects({ circuitBreaker: { openSeconds: 10, maxOpenSeconds: 300 } })).not.toContain(
      'spec.circuitBreaker.maxOpenSeconds',
    );
    expect(subjects({ circuitBreaker: { openSeconds: 10, maxOpenSeconds: 60 } })).toContain(
      'spec.circuitBreaker.maxOpenSeconds',
    );
  });

  it('renders connection-pool limits', () => {
    const spec = { circuitBreaker: { maxConnections: 10, maxPendingRequests: 5, maxRequests: 50 } };
    expect(trafficPolicy(spec).connectionPool).toEqual({
      tcp: { maxConnections: 10 },
      http: { http1MaxPendingRequests: 5, http2MaxRequests: 50 },
    });
    expect(trafficPolicy({ circuitBreaker: { maxRequests: 7 } }).connectionPool).toEqual({
      http: { http2MaxRequests: 7 },
    });
  });

  it('renders one subset per version', () => {
    const spec = {
      versions: [
        { name: 'v1', weight: 90 },
        { name: 'canary', labels: { track: 'canary' }, weight: 10 },
      ],
    };
    expect(get(render(spec).objects, 'DestinationRule').spec.subsets).toEqual([
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'canary', labels: { track: 'canary' } },
    ]);
  });
});

describe('istioTraffic: VirtualService', () => {
  it('is not rendered without versions, retries or timeout', () => {
    expect(find(render({ circuitBreaker: {} }).objects, 'VirtualService')).toBeUndefined();
  });

  it('splits by version weight, keeping weight 0', () => {
    const spec = {
      versions: [
        { name: 'v1', weight: 100 },
        { name: 'v2', weight: 0 },
      ],
    };
    expect(get(render(spec).objects, 'VirtualService').spec).toEqual({
      hosts: [HOST],
      http: [
        {
          name: 'default',
          route: [
            { destination: { host: HOST, subset: 'v1' }, weight: 100 },
            { destination: { host: HOST, subset: 'v2' }, weight: 0 },
          ],
        },
      ],
    });
  });

  it('renders retries and timeouts as Istio durations', () => {
    const spec = {
      requestTimeoutSeconds: 1.5,
      retries: { attempts: 3, perTryTimeoutSeconds: 0.25, retryOn: ['5xx', 'gateway-error'] },
    };
    expect(get(render(spec).objects, 'VirtualService').spec.http).toEqual([
      {
        name: 'default',
        route: [{ destination: { host: HOST } }],
        timeout: '1.5s',
        retries: { attempts: 3, perTryTimeout: '0.25s', retryOn: '5xx,gateway-error' },
      },
    ]);
    const defaults = get(
      render({ retries: { attempts: 2 }, requestTimeoutSeconds: 30 }).objects,
      'VirtualService',
    );
    expect(defaults.spec.http).toEqual([
      {
        name: 'default',
        route: [{ destination: { host: HOST } }],
        timeout: '30s',
        retries: { attempts: 2, retryOn: '5xx,connect-failure,reset' },
      },
    ]);
  });

  it('rounds timeouts up to a millisecond', () => {
    const vs = get(render({ requestTimeoutSeconds: 0.0001 }).objects, 'VirtualService');
    expect((vs.spec.http as { timeout: string }[])[0]!.timeout).toBe('0.001s');
  });

  it('reports that tcp ports are not split', () => {
    const spec = {
      ports: [{ port: 5432, protocol: 'tcp' }],
      versions: [{ name: 'v1', weight: 100 }],
    };
    expect(render(spec).differences).toContainEqual(
      expect.objectContaining({ object: 'VirtualService/web', subject: 'spec.versions' }),
    );
  });
});

describe('istioTraffic: ServiceEntry', () => {
  it('is not rendered without external instances', () => {
    expect(find(render({}).objects, 'ServiceEntry')).toBeUndefined();
  });

  it('uses STATIC for IP addresses and the instances port when none is declared', () => {
    const entry = get(
      render({ loadBalancing: { strategy: 'weighted-round-robin' } }, [
        ext({ id: 'a', host: '10.0.0.1', weight: 3, version: 'v1', zone: 'eu-west-1/eu-west-1a' }),
        ext({ id: 'b', host: 'fd00::2', port: 9090, weight: 1 }),
        ext({ id: 'c', host: '10.0.0.3', weight: 0 }),
      ]).objects,
      'ServiceEntry',
    );
    expect(entry.metadata.name).toBe('web-external');
    expect(entry.spec).toEqual({
      hosts: [HOST],
      location: 'MESH_EXTERNAL',
      resolution: 'STATIC',
      ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }],
      endpoints: [
        {
          address: '10.0.0.1',
          ports: { http: 8080 },
          labels: { version: 'v1' },
          weight: 3,
          locality: 'eu-west-1/eu-west-1a',
        },
        { address: 'fd00::2', ports: { http: 9090 }, weight: 1 },
      ],
    });
  });

  it('uses DNS for host names, declared ports and version labels', () => {
    const spec = {
      ports: [
        { name: 'web', port: 80 },
        { port: 9000, protocol: 'grpc' },
      ],
      versions: [{ name: 'v2', labels: { track: 'two' }, weight: 100 }],
    };
    const entry = get(
      render(spec, [
        ext({ host: 'vm1.example.com', port: 8080, version: 'v2', ports: { 'grpc-9000': 9001 } }),
      ]).objects,
      'ServiceEntry',
    );
    expect(entry.spec).toMatchObject({
      resolution: 'DNS',
      ports: [
        { name: 'web', number: 80, protocol: 'HTTP' },
        { name: 'grpc-9000', number: 9000, protocol: 'GRPC' },
      ],
      endpoints: [
        {
          address: 'vm1.example.com',
          ports: { web: 8080, 'grpc-9000': 9001 },
          labels: { track: 'two' },
        },
      ],
    });
    // round-robin ignores weights: none rendered
    expect((entry.spec.endpoints as Record<string, unknown>[])[0]).not.toHaveProperty('weight');
  });

  it('renders no endpoints, and STATIC, when every instance is drained', () => {
    const entry = get(
      render({}, [ext({ host: 'vm1.example.com', weight: 0 })]).objects,
      'ServiceEntry',
    );
    expect(entry.spec.resolution).toBe('STATIC');
    expect(entry.spec).not.toHaveProperty('endpoints');
  });

  it('reports the host shared with the pods Service', () => {
    expect(render({ selector: { app: 'web' } }, [ext({})]).differences).toContainEqual(
      expect.objectContaining({ object: 'ServiceEntry/web-external', subject: 'spec.selector' }),
    );
  });
});

describe('istioTraffic: rate limits', () => {
  it('renders nothing and reports a difference', () => {
    const { objects, differences } = render({ rateLimit: { requestsPerSecond: 10, burst: 20 } });
    expect(objects.map((o) => o.kind)).toEqual(['DestinationRule']);
    expect(differences).toEqual([expect.objectContaining({ subject: 'spec.rateLimit' })]);
    expect(differences[0]).not.toHaveProperty('object');
  });
});
