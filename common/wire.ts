/**
 * Wire shapes of the registry API (operator :7710, sidecar :7711): requests are parsed with
 * these schemas at the edge, responses and events are typed by them.
 */
import { z } from 'zod';
import { dnsLabel, labelKey } from './names.js';
import { STRATEGIES } from './resources.js';

export const HEALTH_STATUSES = ['passing', 'warning', 'critical'] as const;
export const healthStatusSchema = z.enum(HEALTH_STATUSES);
export type HealthStatus = z.infer<typeof healthStatusSchema>;

/** A host: an IPv4/IPv6 literal or a DNS name. No spaces, no scheme, no port. */
const host = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?)$/,
    'must be an IP address or a DNS name',
  );

const shortText = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/,
    'must be 1-63 letters, digits, "-", "_" or "."',
  );

export const instanceIdSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$/,
    'must be letters, digits, "-", "_", "." or ":"',
  );

export const metadataSchema = z
  .record(labelKey, z.string().max(1024))
  .refine((m) => Object.keys(m).length <= 64, 'at most 64 metadata entries');

export const registerRequestSchema = z.strictObject({
  /** Optional stable id (the sidecar uses the pod name); generated when absent. */
  id: instanceIdSchema.optional(),
  service: dnsLabel,
  namespace: dnsLabel.default('default'),
  host,
  port: z.int().min(1).max(65535),
  ports: z.record(dnsLabel, z.int().min(1).max(65535)).optional(),
  version: shortText.optional(),
  zone: shortText.optional(),
  datacenter: shortText.optional(),
  weight: z.int().min(0).max(10000).default(1),
  metadata: metadataSchema.optional(),
  ttlSeconds: z.int().min(1).max(3600).optional(),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;
export type RegisterInput = z.input<typeof registerRequestSchema>;

export const heartbeatRequestSchema = z.strictObject({
  status: healthStatusSchema.optional(),
  output: z.string().max(4096).optional(),
  /** Active connections on the instance, used by least-connections and power-of-two-choices. */
  connections: z.int().min(0).max(10_000_000).optional(),
});
export type HeartbeatRequest = z.infer<typeof heartbeatRequestSchema>;

export const serviceRefWireSchema = z.object({ namespace: z.string(), name: z.string() });
export type ServiceRef = z.infer<typeof serviceRefWireSchema>;

/** An instance as the API shows it. */
export const instanceSchema = z.object({
  id: z.string(),
  service: serviceRefWireSchema,
  host: z.string(),
  port: z.int(),
  ports: z.record(z.string(), z.int()).optional(),
  version: z.string().optional(),
  zone: z.string().optional(),
  datacenter: z.string().optional(),
  weight: z.int(),
  metadata: z.record(z.string(), z.string()),
  health: z.object({
    status: healthStatusSchema,
    output: z.string().optional(),
    /** Why the status is what it is: `check`, `lease-expired`, `not-ready`, `no-sidecar`. */
    reason: z.string().optional(),
  }),
  source: z.enum(['registration', 'kubernetes']),
  registeredAt: z.string(),
  lastHeartbeat: z.string().optional(),
  lease: z.object({ ttlSeconds: z.int(), expiresAt: z.string() }).optional(),
});
export type Instance = z.infer<typeof instanceSchema>;

/** The discovery view of an instance: only what routing needs, stable between heartbeats. */
export type DiscoveredInstance = Pick<
  Instance,
  | 'id'
  | 'service'
  | 'host'
  | 'port'
  | 'ports'
  | 'version'
  | 'zone'
  | 'datacenter'
  | 'weight'
  | 'metadata'
> & { health: HealthStatus };

const boolString = z.enum(['true', 'false']).transform((v) => v === 'true');

/**
 * Discovery query. `zone`, `datacenter`, `version` and `meta.KEY` filter; `localZone` and
 * `localDatacenter` are the caller's locality for the locality-aware strategy.
 */
const knownDiscoverQuerySchema = z.object({
  strategy: z.enum(STRATEGIES).optional(),
  key: z.string().min(1).max(1024).optional(),
  version: shortText.optional(),
  zone: shortText.optional(),
  datacenter: shortText.optional(),
  localZone: shortText.optional(),
  localDatacenter: shortText.optional(),
  all: boolString.optional(),
});
export const discoverQuerySchema = knownDiscoverQuerySchema.catchall(z.string().max(1024));
/** The query keys with a meaning of their own; any other must be `meta.KEY`. */
export const DISCOVER_QUERY_KEYS: ReadonlySet<string> = new Set(
  Object.keys(knownDiscoverQuerySchema.shape),
);
/** The parsed query; extra keys are checked by splitDiscoverQuery (only `meta.KEY` may pass). */
export type DiscoverQuery = z.infer<typeof knownDiscoverQuerySchema> & {
  [meta: `meta.${string}`]: string;
};

export const EVENT_TYPES = [
  'service_registered',
  'service_deregistered',
  'service_heartbeat',
  'service_unhealthy',
  'service_healthy',
  'service_updated',
  'service_deleted',
  'service_blocked',
  'service_unblocked',
  'config_changed',
  'config_deleted',
  'circuit_state_changed',
  'intention_changed',
  'acl_changed',
  'resync',
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof eventTypeSchema>;

export interface MaxineEvent {
  seq: number;
  type: EventType;
  time: string;
  service?: ServiceRef;
  instance?: Instance;
  data?: Record<string, unknown>;
}

const csv = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .string()
    .max(16384)
    .transform((s) => s.split(',').filter((x) => x.length > 0))
    .pipe(z.array(item).max(1024));

export const eventsQuerySchema = z.strictObject({
  services: csv(
    z
      .string()
      .regex(
        /^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)\/(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/,
        'must be "namespace/name" ("*" allowed)',
      ),
  ).optional(),
  types: csv(eventTypeSchema).optional(),
  since: z
    .string()
    .regex(/^\d{1,16}$/, 'must be a sequence number')
    .transform(Number)
    .optional(),
  snapshot: boolString.optional(),
});
export type EventsQuery = z.infer<typeof eventsQuerySchema>;

export interface InstanceCounts {
  total: number;
  passing: number;
  warning: number;
  critical: number;
}

export interface ServiceSummary {
  namespace: string;
  name: string;
  declared: boolean;
  blocked?: { registration: boolean; discovery: boolean; reason: string };
  instances: InstanceCounts;
}
