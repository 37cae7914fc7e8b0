/**
 * The outbound proxy's Prometheus metrics, on a registry of their own that the sidecar can
 * expose (it has no /metrics endpoint yet). Destination labels name only services the local copy
 * holds (anything else is `unknown`), so a caller cannot grow the label set.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface PoolStats {
  readonly agents: number;
  readonly active: number;
  readonly idle: number;
}

export interface ProxyMetrics {
  readonly registry: Registry;
  readonly calls: Counter<'destination' | 'class'>;
  readonly tries: Counter<'destination' | 'outcome'>;
  readonly inFlight: Gauge<'destination'>;
  readonly duration: Histogram<'destination'>;
  readonly evictions: Counter;
  /** Where the pool gauges read from (set by the engine). */
  poolStats: () => PoolStats;
}

export const UNKNOWN_DESTINATION = 'unknown';

export function createProxyMetrics(registry = new Registry()): ProxyMetrics {
  const metrics: ProxyMetrics = {
    registry,
    calls: new Counter({
      name: 'maxine_sidecar_proxy_calls_total',
      help: 'Outbound calls through the sidecar proxy, by destination (namespace/name) and status class of the answer',
      labelNames: ['destination', 'class'],
      registers: [registry],
    }),
    tries: new Counter({
      name: 'maxine_sidecar_proxy_tries_total',
      help: 'Tries sent to upstream instances, by destination and outcome (response, connect-failure, reset, timeout)',
      labelNames: ['destination', 'outcome'],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'maxine_sidecar_proxy_in_flight',
      help: 'Outbound calls in progress, by destination',
      labelNames: ['destination'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'maxine_sidecar_proxy_call_duration_seconds',
      help: 'Time from receiving an outbound call to the end of its answer, by destination',
      labelNames: ['destination'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    evictions: new Counter({
      name: 'maxine_sidecar_proxy_pool_evictions_total',
      help: 'Keep-alive pools closed because their instance left or the pool bound was reached',
      registers: [registry],
    }),
    poolStats: () => ({ agents: 0, active: 0, idle: 0 }),
  };
  new Gauge({
    name: 'maxine_sidecar_proxy_pool_sockets',
    help: 'Sockets of the keep-alive pools to upstream instances, by state (active: carrying a request, idle: kept alive)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const stats = metrics.poolStats();
      this.set({ state: 'active' }, stats.active);
      this.set({ state: 'idle' }, stats.idle);
    },
  });
  new Gauge({
    name: 'maxine_sidecar_proxy_pools',
    help: 'Keep-alive pools (one per upstream instance called recently)',
    registers: [registry],
    collect() {
      this.set(metrics.poolStats().agents);
    },
  });
  return metrics;
}

/** `2xx`, `4xx`, ...: the status class label. */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** The metric children of one destination, resolved once (label hashing is per call otherwise). */
export interface DestinationMetrics {
  readonly inFlight: { inc(): void; dec(): void };
  readonly duration: { observe(seconds: number): void };
  call(status: number): void;
  tried(outcome: string): void;
}

/**
 * Children of `destination`, cached; the cache is bounded by the services of the local copy
 * (anything else is `unknown`) and cleared past `max` to stay bounded whatever happens.
 */
export function destinationMetrics(
  metrics: ProxyMetrics,
  cache: Map<string, DestinationMetrics>,
  destination: string,
  max = 4096,
): DestinationMetrics {
  let entry = cache.get(destination);
  if (entry !== undefined) return entry;
  if (cache.size >= max) cache.clear();
  const classes = new Map<number, { inc(): void }>();
  const outcomes = new Map<string, { inc(): void }>();
  entry = {
    inFlight: metrics.inFlight.labels({ destination }),
    duration: metrics.duration.labels({ destination }),
    call: (status) => {
      const key = Math.floor(status / 100);
      let child = classes.get(key);
      if (child === undefined) {
        child = metrics.calls.labels({ destination, class: statusClass(status) });
        classes.set(key, child);
      }
      child.inc();
    },
    tried: (outcome) => {
      let child = outcomes.get(outcome);
      if (child === undefined) {
        child = metrics.tries.labels({ destination, outcome });
        outcomes.set(outcome, child);
      }
      child.inc();
    },
  };
  cache.set(destination, entry);
  return entry;
}
