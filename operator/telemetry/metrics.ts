/**
 * Prometheus metrics, all prefixed `maxine_`. Registry-derived figures are read at scrape
 * time (collect callbacks), so the request paths pay nothing for them.
 */
import { Counter, Gauge, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { LatencyHistogram } from './latency.js';
import type { LatencySeries } from './latency.js';
import type { EventLog } from '../events/log.js';
import type { Registry } from '../registry/registry.js';
import { LIMIT_NAMES } from '../registry/limits.js';

export interface MetricsSources {
  registry: Registry;
  events: EventLog;
  resourceProblems: () => number;
  isLeader: () => boolean;
}

export interface Metrics {
  readonly prom: PromRegistry;
  /** Request latency, labelled by route template, method and status. */
  readonly http: LatencyHistogram;
  /**
   * For the fast paths: an observer per status for one route and method, resolved once per
   * status, so an observation allocates nothing.
   */
  routeObserver(route: string, method: string): (status: number) => LatencySeries;
}

/** Series of maxine_service_unavailable at most, so a mass outage cannot flood Prometheus. */
export const UNAVAILABLE_SERIES = 100;

/** The services discovery has nothing to answer for (sorted, as listServices returns them). */
export function unavailableServices<T extends { instances: { passing: number; warning: number } }>(
  services: readonly T[],
): T[] {
  return services.filter((s) => s.instances.passing + s.instances.warning === 0);
}

const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export function createMetrics(sources: MetricsSources): Metrics {
  const prom = new PromRegistry();
  collectDefaultMetrics({ register: prom, prefix: 'maxine_' });
  const { registry, events } = sources;

  new Gauge({
    name: 'maxine_services',
    help: 'Services in the registry, by whether a resource declares them',
    labelNames: ['declared'],
    registers: [prom],
    collect() {
      const s = registry.stats();
      this.set({ declared: 'true' }, s.declared);
      this.set({ declared: 'false' }, s.services - s.declared);
    },
  });
  new Gauge({
    name: 'maxine_instances',
    help: 'Registered instances by health status',
    labelNames: ['health'],
    registers: [prom],
    collect() {
      const { instances } = registry.stats();
      for (const health of ['passing', 'warning', 'critical'] as const)
        this.set({ health }, instances[health]);
    },
  });
  new Gauge({
    name: 'maxine_service_unavailable',
    help: `1 for a service with no healthy (passing or warning) instance, by namespace and service; at most ${UNAVAILABLE_SERIES} series (maxine_services_unavailable counts them all)`,
    labelNames: ['namespace', 'service'],
    registers: [prom],
    collect() {
      this.reset();
      for (const s of unavailableServices(registry.listServices()).slice(0, UNAVAILABLE_SERIES))
        this.set({ namespace: s.namespace, service: s.name }, 1);
    },
  });
  new Gauge({
    name: 'maxine_services_unavailable',
    help: 'Services with no healthy (passing or warning) instance: discovery answers 404 for them',
    registers: [prom],
    collect() {
      this.set(unavailableServices(registry.listServices()).length);
    },
  });
  const totals = [
    ['maxine_registrations_total', 'Instance registrations (new and renewed)', 'registrations'],
    ['maxine_heartbeats_total', 'Heartbeats accepted', 'heartbeats'],
    ['maxine_deregistrations_total', 'Instances deregistered by their owner', 'deregistrations'],
    ['maxine_evictions_total', 'Instances removed after their lease lapsed', 'evictions'],
  ] as const;
  for (const [name, help, field] of totals) {
    new Counter({
      name,
      help,
      registers: [prom],
      collect() {
        this.reset();
        this.inc(registry.counters[field]);
      },
    });
  }
  new Counter({
    name: 'maxine_registry_limit_refusals_total',
    help: 'Registrations refused by a registry limit (429 count limits, 413 size limits), by limit',
    labelNames: ['limit'],
    registers: [prom],
    collect() {
      this.reset();
      for (const limit of LIMIT_NAMES) this.inc({ limit }, registry.limitRefusals[limit]);
    },
  });
  new Gauge({
    name: 'maxine_registry_limit',
    help: 'The configured registry limits (compare with maxine_instances and maxine_services)',
    labelNames: ['limit'],
    registers: [prom],
    collect() {
      for (const limit of LIMIT_NAMES) this.set({ limit }, registry.limits[limit]);
    },
  });
  new Gauge({
    name: 'maxine_registry_instances_over_limit',
    help: 'Instances beyond --max-instances: pods are never refused, so only pods put them there',
    registers: [prom],
    collect() {
      this.set(registry.instancesOverLimit);
    },
  });
  new Gauge({
    name: 'maxine_event_log_events',
    help: 'Events held in the replay log (for since=SEQ)',
    registers: [prom],
    collect() {
      this.set(events.size);
    },
  });
  new Gauge({
    name: 'maxine_event_log_bytes',
    help: 'Serialized size of the events held in the replay log (bounded by --event-log-bytes)',
    registers: [prom],
    collect() {
      this.set(events.bytes);
    },
  });
  new Counter({
    name: 'maxine_event_log_evictions_total',
    help: 'Events dropped from the replay log, by the bound that dropped them (events or bytes)',
    labelNames: ['bound'],
    registers: [prom],
    collect() {
      this.reset();
      for (const bound of ['events', 'bytes'] as const)
        this.inc({ bound }, events.evictions[bound]);
    },
  });
  new Gauge({
    name: 'maxine_config_history_entries',
    help: 'Config versions kept for GET .../config/history (bounded by --config-history per service)',
    registers: [prom],
    collect() {
      this.set(registry.configs.size.entries);
    },
  });
  new Gauge({
    name: 'maxine_config_history_services',
    help: 'Services whose config versions are kept (bounded by --config-history-services)',
    registers: [prom],
    collect() {
      this.set(registry.configs.size.services);
    },
  });
  new Gauge({
    name: 'maxine_config_history_bytes',
    help: 'JSON length of the config versions kept (superseded ones bounded by --config-history-bytes)',
    registers: [prom],
    collect() {
      this.set(registry.configs.bytes);
    },
  });
  new Counter({
    name: 'maxine_config_history_evicted_total',
    help: 'Config history dropped to stay within its bounds: old versions (entries: by count, bytes: by size) or whole services',
    labelNames: ['what'],
    registers: [prom],
    collect() {
      this.reset();
      const { entries, services, bytes } = registry.configs.evictions;
      this.inc({ what: 'entries' }, entries);
      this.inc({ what: 'services' }, services);
      this.inc({ what: 'bytes' }, bytes);
    },
  });
  new Gauge({
    name: 'maxine_mass_expiry_guard_active',
    help: '1 while the mass-expiry guard holds back evictions',
    registers: [prom],
    collect() {
      this.set(registry.massExpiryGuardActive ? 1 : 0);
    },
  });
  new Gauge({
    name: 'maxine_leader',
    help: '1 while this replica leads (writes status); always 1 in standalone mode',
    registers: [prom],
    collect() {
      this.set(sources.isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'maxine_event_sequence',
    help: 'Sequence number of the last stored event',
    registers: [prom],
    collect() {
      this.set(events.lastSeq);
    },
  });
  new Gauge({
    name: 'maxine_event_subscribers',
    help: 'Open event-stream connections',
    registers: [prom],
    collect() {
      this.set(events.subscribers);
    },
  });
  new Gauge({
    name: 'maxine_resource_problems',
    help: 'Resource files or objects that failed validation',
    registers: [prom],
    collect() {
      this.set(sources.resourceProblems());
    },
  });

  const http = new LatencyHistogram(
    'maxine_http_request_duration_seconds',
    'HTTP request handling time by route template',
    LATENCY_BUCKETS,
  ).register(prom);

  return {
    prom,
    http,
    routeObserver(route, method) {
      const byStatus = new Map<number, LatencySeries>();
      return (status) => {
        let series = byStatus.get(status);
        if (series === undefined) {
          series = http.series$({ route, method, status: String(status) });
          byStatus.set(status, series);
        }
        return series;
      };
    },
  };
}
