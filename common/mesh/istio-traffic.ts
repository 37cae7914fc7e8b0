/**
 * The traffic half of the Istio renderer (pure): how calls to a MaxineService are balanced,
 * split, retried, timed out and broken, in `networking.istio.io/v1` objects.
 *
 * | Maxine                                   | Istio                                                    |
 * | ---------------------------------------- | -------------------------------------------------------- |
 * | `loadBalancing.strategy`                 | DestinationRule `trafficPolicy.loadBalancer` (below)     |
 * | `circuitBreaker` failureThreshold/open   | DestinationRule `outlierDetection`                       |
 * | `circuitBreaker` maxConnections/…        | DestinationRule `connectionPool`                         |
 * | `versions`                               | DestinationRule `subsets` + VirtualService route weights |
 * | `retries`, `requestTimeoutSeconds`       | VirtualService `retries`, `timeout`                      |
 * | instances registered outside the cluster | ServiceEntry `<svc>-external` with inline endpoints      |
 * | `rateLimit`                              | nothing (Istio needs an EnvoyFilter): a difference       |
 *
 * Strategies: round-robin → ROUND_ROBIN, random → RANDOM, power-of-two-choices →
 * LEAST_REQUEST (Envoy's least request is P2C), consistent-hash → `consistentHash` with a
 * ring, rendezvous-hash → `consistentHash` with Maglev, locality-aware → ROUND_ROBIN with
 * `localityLbSetting`. No `loadBalancing` is Maxine's default round robin and is rendered as
 * ROUND_ROBIN (Istio's own default is LEAST_REQUEST). Where Envoy behaves otherwise the render
 * carries a `MeshDifference`.
 *
 * Without `spec.retries` no retry policy is rendered, so Istio's default retry policy applies
 * to the VirtualService (and to services without one).
 */
import { isIP } from 'node:net';
import type { ServiceSpec, Strategy } from '../resources.js';
import { effectiveMaxOpenSeconds } from '../resources.js';
import { istioDuration, meshObject, serviceHost } from './model.js';
import type { ExternalEndpoint, MeshDifference, MeshInput, MeshObject } from './model.js';

const API_VERSION = 'networking.istio.io/v1';

type LoadBalancing = NonNullable<ServiceSpec['loadBalancing']>;
type CircuitBreaker = NonNullable<ServiceSpec['circuitBreaker']>;
type ServicePort = NonNullable<ServiceSpec['ports']>[number];
type Json = Record<string, unknown>;

/** What the renderer collects while it walks the spec. */
interface Render {
  input: MeshInput;
  /** The Service FQDN every object is about. */
  host: string;
  differences: MeshDifference[];
}

export interface IstioTraffic {
  objects: MeshObject[];
  differences: MeshDifference[];
}

/** The traffic objects of `input.service` for Istio, and where they differ from Maxine. */
export function istioTraffic(input: MeshInput): IstioTraffic {
  const r: Render = { input, host: serviceHost(input.service, input.options), differences: [] };
  const objects = [destinationRule(r)];
  const vs = virtualService(r);
  if (vs !== undefined) objects.push(vs);
  if (input.external.length > 0) objects.push(serviceEntry(r));
  if (input.service.spec.rateLimit !== undefined) {
    r.differences.push({
      subject: 'spec.rateLimit',
      message:
        'Istio has no resource for rate limits (it needs an EnvoyFilter with a local rate limit filter); nothing is rendered. Maxine applies spec.rateLimit to discovery calls at the registry, not to the calls between services.',
    });
  }
  return { objects, differences: r.differences };
}

function differ(r: Render, object: string, subject: string, message: string): void {
  r.differences.push({ object, subject, message });
}

// ---- DestinationRule ----

function destinationRule(r: Render): MeshObject {
  const { service } = r.input;
  const object = `DestinationRule/${service.name}`;
  const spec = service.spec;
  const trafficPolicy: Json = { loadBalancer: loadBalancer(r, object, spec.loadBalancing) };
  if (spec.circuitBreaker !== undefined) {
    trafficPolicy.outlierDetection = outlierDetection(r, object, spec.circuitBreaker);
    const pool = connectionPool(spec.circuitBreaker);
    if (pool !== undefined) trafficPolicy.connectionPool = pool;
  }
  const body: Json = { host: r.host, trafficPolicy };
  const versions = spec.versions ?? [];
  if (versions.length > 0) {
    body.subsets = versions.map((v) => ({ name: v.name, labels: versionLabels(v) }));
  }
  return meshObject(
    'istio',
    service,
    { apiVersion: API_VERSION, kind: 'DestinationRule', name: service.name },
    body,
  );
}

const SIMPLE: Readonly<Record<Strategy, string | undefined>> = {
  'round-robin': 'ROUND_ROBIN',
  'weighted-round-robin': 'ROUND_ROBIN',
  random: 'RANDOM',
  'weighted-random': 'RANDOM',
  'least-connections': 'LEAST_REQUEST',
  'power-of-two-choices': 'LEAST_REQUEST',
  'consistent-hash': undefined,
  'rendezvous-hash': undefined,
  'locality-aware': 'ROUND_ROBIN',
};

/** Envoy's behaviour where it is not Maxine's, per strategy. */
const STRATEGY_DIFFERENCES: Partial<Record<Strategy, string>> = {
  'weighted-round-robin':
    'Rendered as ROUND_ROBIN, which Envoy weights by endpoint weight; only ServiceEntry endpoints carry Maxine weights, pods all have weight 1 in Istio.',
  'weighted-random':
    'Rendered as RANDOM, which Envoy weights by endpoint weight; only ServiceEntry endpoints carry Maxine weights, pods all have weight 1 in Istio.',
  'least-connections':
    'Rendered as LEAST_REQUEST: Envoy picks the less loaded of two random endpoints (active requests of this proxy only), not the least loaded of all.',
  'rendezvous-hash':
    'Rendered as Envoy Maglev consistent hashing: a key sticks to one instance and few keys move when instances change, but the instance chosen for a key is not the one Maxine discovery returns.',
  'locality-aware':
    'Rendered as ROUND_ROBIN with localityLbSetting enabled. Istio prefers the caller\'s locality only when outlierDetection is set (spec.circuitBreaker); it reads an instance\'s zone as "region/zone/subzone".',
};

/** Whether Maxine's strategy reads instance weights (all do but round-robin and random). */
function weighted(strategy: Strategy): boolean {
  return strategy !== 'round-robin' && strategy !== 'random';
}

function strategyOf(spec: ServiceSpec): Strategy {
  return spec.loadBalancing?.strategy ?? 'round-robin';
}

function loadBalancer(r: Render, object: string, lb: LoadBalancing | undefined): Json {
  const strategy = lb?.strategy ?? 'round-robin';
  const subject = 'spec.loadBalancing.strategy';
  const note = STRATEGY_DIFFERENCES[strategy];
  if (note !== undefined) differ(r, object, subject, note);
  const out: Json = {};
  const simple = SIMPLE[strategy];
  if (simple !== undefined) out.simple = simple;
  else if (lb !== undefined) out.consistentHash = consistentHash(r, object, lb);
  if (strategy === 'locality-aware') out.localityLbSetting = { enabled: true };
  else if (r.input.service.spec.circuitBreaker !== undefined) {
    // Istio turns on locality failover with outlierDetection; Maxine spreads over all zones.
    out.localityLbSetting = { enabled: false };
  }
  return out;
}

/** `hashKey` as an Envoy hash policy. */
function hashSource(hashKey: string): Json {
  if (hashKey === 'source-ip') return { useSourceIp: true };
  const colon = hashKey.indexOf(':');
  const kind = hashKey.slice(0, colon);
  const name = hashKey.slice(colon + 1);
  if (kind === 'header') return { httpHeaderName: name };
  if (kind === 'query') return { httpQueryParameterName: name };
  // A session cookie: Envoy sets it when the request has none.
  return { httpCookie: { name, ttl: '0s' } };
}

function consistentHash(r: Render, object: string, lb: LoadBalancing): Json {
  // The schema requires hashKey for both hash strategies.
  const out = hashSource(lb.hashKey ?? 'source-ip');
  if (lb.strategy === 'rendezvous-hash') return { ...out, maglev: {} };
  if (lb.virtualNodes === undefined) return { ...out, ringHash: {} };
  const { spec } = r.input.service;
  if (spec.selector === undefined) {
    // Every instance is known: Envoy's ring is sized in total, Maxine's per instance.
    const n = Math.max(1, r.input.external.filter((e) => e.weight > 0).length);
    return { ...out, ringHash: { minimumRingSize: lb.virtualNodes * n } };
  }
  differ(
    r,
    object,
    'spec.loadBalancing.virtualNodes',
    "Envoy sizes the hash ring in total (ringHash.minimumRingSize, default 1024), not per instance, and the number of pods changes: Envoy's default ring size is kept.",
  );
  return { ...out, ringHash: {} };
}

function outlierDetection(r: Render, object: string, cb: CircuitBreaker): Json {
  const maxOpen = effectiveMaxOpenSeconds(cb);
  differ(
    r,
    object,
    'spec.circuitBreaker.backoffMultiplier',
    `Envoy ejects for baseEjectionTime (${cb.openSeconds}s) times the number of ejections (linear), not openSeconds times ${cb.backoffMultiplier} per reopening; it re-admits ejected endpoints at the 10s interval sweep.`,
  );
  differ(
    r,
    object,
    'spec.circuitBreaker.halfOpenProbes',
    'Envoy has no half-open state: when the ejection ends the endpoint takes its full share of traffic at once.',
  );
  if (maxOpen !== Math.max(300, cb.openSeconds)) {
    differ(
      r,
      object,
      'spec.circuitBreaker.maxOpenSeconds',
      `Istio cannot set Envoy's max ejection time, which stays max(300s, baseEjectionTime), not ${maxOpen}s.`,
    );
  }
  return {
    consecutive5xxErrors: cb.failureThreshold,
    interval: '10s',
    baseEjectionTime: `${cb.openSeconds}s`,
    maxEjectionPercent: 100,
  };
}

function connectionPool(cb: CircuitBreaker): Json | undefined {
  const http: Json = {};
  if (cb.maxPendingRequests !== undefined) http.http1MaxPendingRequests = cb.maxPendingRequests;
  if (cb.maxRequests !== undefined) http.http2MaxRequests = cb.maxRequests;
  const pool: Json = {};
  if (cb.maxConnections !== undefined) pool.tcp = { maxConnections: cb.maxConnections };
  if (Object.keys(http).length > 0) pool.http = http;
  return Object.keys(pool).length > 0 ? pool : undefined;
}

type Version = NonNullable<ServiceSpec['versions']>[number];

function versionLabels(v: Version): Record<string, string> {
  return v.labels ?? { version: v.name };
}

// ---- VirtualService ----

function virtualService(r: Render): MeshObject | undefined {
  const { service } = r.input;
  const spec = service.spec;
  const versions = spec.versions ?? [];
  if (versions.length === 0 && spec.retries === undefined) {
    if (spec.requestTimeoutSeconds === undefined) return undefined;
  }
  const route =
    versions.length > 0
      ? versions.map((v) => ({ destination: { host: r.host, subset: v.name }, weight: v.weight }))
      : [{ destination: { host: r.host } }];
  const http: Json = { name: 'default', route };
  if (spec.requestTimeoutSeconds !== undefined) {
    http.timeout = istioDuration(spec.requestTimeoutSeconds);
  }
  if (spec.retries !== undefined) {
    const retries: Json = {
      attempts: spec.retries.attempts,
      retryOn: spec.retries.retryOn.join(','),
    };
    if (spec.retries.perTryTimeoutSeconds !== undefined) {
      retries.perTryTimeout = istioDuration(spec.retries.perTryTimeoutSeconds);
    }
    http.retries = retries;
  }
  if (versions.length > 0 && (spec.ports ?? []).some((p) => p.protocol === 'tcp')) {
    differ(
      r,
      `VirtualService/${service.name}`,
      'spec.versions',
      'The version split is an HTTP route: connections to the tcp ports are balanced over all versions.',
    );
  }
  return meshObject(
    'istio',
    service,
    { apiVersion: API_VERSION, kind: 'VirtualService', name: service.name },
    { hosts: [r.host], http: [http] },
  );
}

// ---- ServiceEntry ----

const PROTOCOLS: Readonly<Record<ServicePort['protocol'], string>> = {
  http: 'HTTP',
  http2: 'HTTP2',
  grpc: 'GRPC',
  tcp: 'TCP',
};

interface EntryPort {
  name: string;
  number: number;
  protocol: string;
}

function entryPorts(r: Render): EntryPort[] {
  const declared = r.input.service.spec.ports ?? [];
  if (declared.length === 0) {
    // No declared port: the instances' own port, as HTTP (Maxine's default protocol).
    return [{ name: 'http', number: r.input.external[0]?.port ?? 80, protocol: 'HTTP' }];
  }
  return declared.map((p) => ({
    name: p.name ?? `${p.protocol}-${p.port}`,
    number: p.port,
    protocol: PROTOCOLS[p.protocol],
  }));
}

/**
 * The port an instance listens on for each entry port: its named port, else its main port for
 * the first entry port, else the declared number.
 */
function endpointPorts(e: ExternalEndpoint, ports: readonly EntryPort[]): Record<string, number> {
  const out: Record<string, number> = {};
  ports.forEach((p, i) => {
    out[p.name] = e.ports?.[p.name] ?? (i === 0 ? e.port : p.number);
  });
  return out;
}

function endpoint(r: Render, e: ExternalEndpoint, ports: readonly EntryPort[]): Json {
  const spec = r.input.service.spec;
  const out: Json = { address: e.host, ports: endpointPorts(e, ports) };
  if (e.version !== undefined) {
    const version = (spec.versions ?? []).find((v) => v.name === e.version);
    out.labels = version !== undefined ? versionLabels(version) : { version: e.version };
  }
  if (weighted(strategyOf(spec))) out.weight = e.weight;
  if (e.zone !== undefined) out.locality = e.zone;
  return out;
}

function serviceEntry(r: Render): MeshObject {
  const { service } = r.input;
  const name = `${service.name}-external`;
  const ports = entryPorts(r);
  // Istio reads an endpoint weight of 0 as the default weight 1: drained instances are left out.
  const live = r.input.external.filter((e) => e.weight > 0);
  const allIps = live.every((e) => isIP(e.host) !== 0);
  const spec: Json = {
    hosts: [r.host],
    location: 'MESH_EXTERNAL',
    // With no endpoint left, DNS resolution would resolve the host itself: STATIC keeps it empty.
    resolution: allIps ? 'STATIC' : 'DNS',
    ports,
  };
  if (live.length > 0) spec.endpoints = live.map((e) => endpoint(r, e, ports));
  if (service.spec.selector !== undefined) {
    differ(
      r,
      `ServiceEntry/${name}`,
      'spec.selector',
      'The ServiceEntry has the host of the Kubernetes Service of the pods. Istio gives a Kubernetes Service precedence over a ServiceEntry with the same host, so while that Service exists callers in the mesh reach only the pods, not the instances registered outside the cluster.',
    );
  }
  return meshObject(
    'istio',
    service,
    { apiVersion: API_VERSION, kind: 'ServiceEntry', name },
    spec,
  );
}
