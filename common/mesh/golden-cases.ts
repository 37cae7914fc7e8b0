/**
 * The table the golden files pin: services and intentions covering versions and weights,
 * every load-balancing strategy, the circuit breaker, external instances, and allow, deny,
 * L7 and wildcard intentions under both defaults. The e2e test applies the same renders to a
 * real API server with the Istio and Linkerd CRDs installed, so every golden object is also
 * checked against the real schemas.
 */
import { intentionSpecSchema, serviceSpecSchema } from '../resources.js';
import type { IntentionEntry } from '../policy/intentions.js';
import {
  DEFAULT_MESH_OPTIONS,
  type ExternalEndpoint,
  type MeshInput,
  type MeshService,
} from './model.js';

export interface GoldenCase {
  name: string;
  input: MeshInput;
}

function service(namespace: string, name: string, spec: unknown): MeshService {
  return { namespace, name, spec: serviceSpecSchema.parse(spec) };
}

function intention(namespace: string, name: string, spec: unknown): IntentionEntry {
  return { namespace, name, spec: intentionSpecSchema.parse(spec) };
}

const PORTS = [{ name: 'http', port: 8080 }];

/** The callers the intentions name. */
const WEB = service('shop', 'web', { selector: { app: 'web' }, serviceAccount: 'web' });
const ADMIN = service('shop', 'admin', { selector: { app: 'admin' }, serviceAccount: 'admin' });
const REPORTS = service('finance', 'reports', {
  selector: { app: 'reports' },
  serviceAccount: 'reports',
});
const LEGACY = service('shop', 'legacy', { selector: { app: 'legacy' } });
const CALLERS = [WEB, ADMIN, REPORTS, LEGACY];

function orders(extra: Record<string, unknown> = {}): MeshService {
  return service('shop', 'orders', {
    selector: { app: 'orders' },
    ports: PORTS,
    serviceAccount: 'orders',
    mesh: { istio: true, linkerd: true },
    ...extra,
  });
}

function make(
  name: string,
  svc: MeshService,
  more: { intentions?: IntentionEntry[]; external?: ExternalEndpoint[]; deny?: boolean } = {},
): GoldenCase {
  return {
    name,
    input: {
      service: svc,
      services: [svc, ...CALLERS],
      intentions: more.intentions ?? [],
      external: more.external ?? [],
      options: { ...DEFAULT_MESH_OPTIONS, intentionDefault: more.deny === true ? 'deny' : 'allow' },
    },
  };
}

const STRATEGY_CASES: GoldenCase[] = [
  ['round-robin', {}],
  ['weighted-round-robin', {}],
  ['random', {}],
  ['weighted-random', {}],
  ['least-connections', {}],
  ['power-of-two-choices', {}],
  ['consistent-hash', { hashKey: 'header:x-user-id', virtualNodes: 200 }],
  ['rendezvous-hash', { hashKey: 'query:tenant' }],
  ['locality-aware', {}],
].map(([strategy, extra]) =>
  make(`lb-${strategy as string}`, orders({ loadBalancing: { strategy, ...(extra as object) } })),
);

const ALLOW_WEB = intention('shop', 'orders-web', {
  destination: { name: 'orders' },
  sources: [{ name: 'web', action: 'allow' }],
});

const L7 = intention('shop', 'orders-l7', {
  destination: { name: 'orders' },
  sources: [
    {
      name: 'web',
      permissions: [
        { action: 'deny', http: { pathPrefix: '/admin' } },
        { action: 'allow', http: { pathPrefix: '/api/', methods: ['GET', 'HEAD'] } },
        {
          action: 'allow',
          http: {
            pathExact: '/orders',
            methods: ['POST'],
            headers: [{ name: 'x-tenant', exact: 'acme' }],
          },
        },
        { action: 'deny', http: { pathRegex: '/internal/.*' } },
      ],
    },
    {
      name: 'admin',
      permissions: [
        {
          action: 'allow',
          http: { pathPrefix: '/', headers: [{ name: 'x-admin', present: true }] },
        },
        { action: 'deny', http: { pathPrefix: '/admin/danger' } },
        {
          action: 'allow',
          http: { pathRegex: '/reports/[0-9]+', headers: [{ name: 'x-trace', contains: 'debug' }] },
        },
      ],
    },
  ],
});

const WILDCARDS = intention('shop', 'orders-wildcards', {
  destination: { name: 'orders' },
  sources: [
    { name: '*', namespace: '*', action: 'deny' },
    { name: '*', action: 'allow' },
    { name: 'admin', action: 'deny' },
    { name: 'reports', namespace: 'finance', action: 'allow' },
  ],
});

const NAMESPACE_WIDE = intention('shop', 'shop-wide', {
  destination: { name: '*' },
  sources: [
    { name: 'web', action: 'deny' },
    { name: '*', namespace: '*', action: 'allow' },
  ],
});

export const GOLDEN_CASES: GoldenCase[] = [
  make('plain', orders()),
  make(
    'versions-weights',
    orders({
      versions: [
        { name: 'v1', weight: 90 },
        { name: 'v2', weight: 10, labels: { track: 'canary' } },
      ],
      retries: { attempts: 3, perTryTimeoutSeconds: 2, retryOn: ['5xx', 'reset'] },
      requestTimeoutSeconds: 7.5,
    }),
  ),
  ...STRATEGY_CASES,
  make(
    'circuit-breaker',
    orders({
      circuitBreaker: {
        failureThreshold: 7,
        openSeconds: 20,
        maxOpenSeconds: 600,
        maxConnections: 100,
        maxPendingRequests: 50,
        maxRequests: 1000,
      },
      rateLimit: { requestsPerSecond: 100, burst: 20 },
    }),
  ),
  make(
    'external-ip',
    service('shop', 'billing', { ports: [{ name: 'http', port: 9090 }], mesh: { istio: true } }),
    {
      external: [
        { id: 'b-1', host: '10.20.0.11', port: 9090, version: 'v1', weight: 1 },
        { id: 'b-2', host: '10.20.0.12', port: 9090, zone: 'eu-west-1a', weight: 2 },
      ],
    },
  ),
  make('external-dns', orders(), {
    external: [{ id: 'vm-1', host: 'orders-vm.example.com', port: 8080, weight: 1 }],
  }),
  make('allow-default-deny', orders(), { intentions: [ALLOW_WEB], deny: true }),
  make('allow-default-allow', orders(), { intentions: [ALLOW_WEB] }),
  make('l7-default-deny', orders(), { intentions: [L7], deny: true }),
  make('l7-default-allow', orders(), { intentions: [L7] }),
  make('wildcards-default-deny', orders(), { intentions: [WILDCARDS], deny: true }),
  make('wildcards-default-allow', orders(), { intentions: [WILDCARDS] }),
  make('namespace-wide-destination', orders(), { intentions: [NAMESPACE_WIDE], deny: true }),
  make('implicit-service-account', orders(), {
    intentions: [
      intention('shop', 'orders-legacy', {
        destination: { name: 'orders' },
        sources: [{ name: 'legacy', action: 'allow' }],
      }),
    ],
    deny: true,
  }),
];
