/**
 * Wire shapes of the registry API (operator :7710, sidecar :7711): requests are parsed with
 * these schemas at the edge, responses and events are typed by them.
 */
import { z } from 'zod';
import { dnsLabel, labelKey } from './names.js';
import { intentionSpecSchema, serviceSpecSchema, STRATEGIES } from './resources.js';
import { configSecretsSchema } from './config-sources.js';

/**
 * `schema`, except that keys it does not know are dropped instead of refused, at any depth.
 * A spec on the wire comes from the operator, which may be newer than this sidecar (pods keep
 * their sidecar through an operator upgrade): a field added to MaxineService must not make
 * an older sidecar refuse every event and snapshot naming that service. Everything else the
 * schema checks (types, bounds, enums) is still checked.
 */
export function ignoringUnknownKeys<T extends z.ZodType>(
  schema: T,
  /** Told what was dropped: the path of each object that lost keys. */
  afterDrop?: (data: z.output<T>, paths: readonly (readonly PropertyKey[])[]) => z.output<T>,
) {
  return z.unknown().transform((value, ctx): z.output<T> => {
    let candidate = value;
    const dropped: (readonly PropertyKey[])[] = [];
    // Each pass removes the unknown keys zod reported; nested ones surface once their parent
    // parses, so a few passes suffice (bounded: a hostile message cannot loop).
    for (let pass = 0; pass < 8; pass += 1) {
      const result = schema.safeParse(candidate);
      if (result.success)
        return afterDrop === undefined || dropped.length === 0
          ? result.data
          : afterDrop(result.data, dropped);
      const issues = result.error.issues;
      if (!issues.every((issue) => issue.code === 'unrecognized_keys')) {
        for (const issue of issues) ctx.addIssue({ ...issue });
        return z.NEVER;
      }
      candidate = structuredClone(candidate);
      for (const issue of issues) {
        let at: unknown = candidate;
        for (const key of issue.path) at = (at as Record<PropertyKey, unknown> | undefined)?.[key];
        if (at !== null && typeof at === 'object')
          for (const key of issue.keys) delete (at as Record<string, unknown>)[key];
        dropped.push(issue.path);
      }
    }
    ctx.addIssue({ code: 'custom', message: 'too many nested unknown keys' });
    return z.NEVER;
  });
}

/** A MaxineService spec as events and snapshots carry it: unknown (newer) fields dropped. */
export const wireServiceSpecSchema = ignoringUnknownKeys(serviceSpecSchema);

type WireIntentionSpec = z.output<typeof intentionSpecSchema>;
type WireIntentionSource = WireIntentionSpec['sources'][number];

/** A source that allows nothing: its `action`, or each of its permissions, becomes `deny`. */
function denyingSource(source: WireIntentionSource, permission?: number): void {
  if (source.action !== undefined) {
    source.action = 'deny';
    return;
  }
  for (const [index, p] of (source.permissions ?? []).entries())
    if (permission === undefined || permission === index) p.action = 'deny';
}

/**
 * Fails closed on what a newer operator added: an unknown field narrows what holds it (a
 * match condition, a source constraint), so with it dropped an `allow` would cover more than
 * the operator meant. The permission (or source, or whole spec) that held it denies instead;
 * a `deny` only grows, which is safe.
 */
function denyWhereNotUnderstood(
  spec: WireIntentionSpec,
  paths: readonly (readonly PropertyKey[])[],
): WireIntentionSpec {
  for (const path of paths) {
    const [top, source, below, permission] = path;
    const held = top === 'sources' && typeof source === 'number' ? spec.sources[source] : undefined;
    if (held === undefined) for (const s of spec.sources) denyingSource(s);
    else if (below === 'permissions' && typeof permission === 'number')
      denyingSource(held, permission);
    else denyingSource(held);
  }
  return spec;
}

/**
 * A MaxineIntention spec as events and snapshots carry it: unknown (newer) fields dropped, and
 * whatever allowed through them made to deny (`denyWhereNotUnderstood`).
 */
export const wireIntentionSpecSchema = ignoringUnknownKeys(
  intentionSpecSchema,
  denyWhereNotUnderstood,
);

/** The cluster-wide intention default (operator `--intention-default`). */
export const intentionDefaultSchema = z.enum(['allow', 'deny']);

/**
 * An intention in force as a snapshot carries it: the MaxineIntention's namespace and name and
 * its spec (the evaluator's `IntentionEntry`, common/policy/intentions.ts).
 */
export const snapshotIntentionSchema = z.object({
  namespace: z.string(),
  name: z.string(),
  spec: wireIntentionSpecSchema,
});
export type SnapshotIntention = z.infer<typeof snapshotIntentionSchema>;

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

/**
 * Each entry's size is bounded here; how many entries and how many bytes an instance may
 * carry are registry limits (`--max-metadata-keys`, `--max-metadata-bytes`: 413 answers).
 */
export const metadataSchema = z.record(labelKey, z.string().max(1024));

export const registerRequestSchema = z.strictObject({
  /** Optional stable id (the sidecar uses the pod name); generated when absent. */
  id: instanceIdSchema.optional(),
  service: dnsLabel,
  namespace: dnsLabel.default('default'),
  host,
  port: z.int().min(1).max(65535),
  /** How many entries: the registry's `--max-ports` (413 TOO_MANY_PORTS). */
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
  'resync_begin',
  'resync_chunk',
  'resync_end',
] as const;
export const eventTypeSchema = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof eventTypeSchema>;
/** The messages of a snapshot: never filtered by `types`, never stored in the event log. */
export const RESYNC_TYPES: ReadonlySet<string> = new Set<EventType>([
  'resync_begin',
  'resync_chunk',
  'resync_end',
]);

/**
 * A snapshot (list, then watch) travels as `resync_begin`, any number of `resync_chunk`s and
 * `resync_end`, each a message of its own with the usual envelope and the same `seq`: the
 * last stored event when the snapshot began. Chunks are bounded in bytes, so no snapshot is
 * ever one string or one frame. A client builds its new state aside and swaps it in at
 * `resync_end`; a connection lost before `resync_end` leaves its old state (and its old
 * `since`) untouched. Events after `seq` follow `resync_end`; each chunk reflects the registry
 * when it was built (at or after `seq`), and those events are state-setting (idempotent), so
 * applying them in order brings the copy to the present.
 */
export const blockedWireSchema = z.object({
  registration: z.boolean(),
  discovery: z.boolean(),
  reason: z.string(),
});

/** A service's config version: 0 before any config, +1 on each change of its content. */
const configVersionSchema = z.int().min(0);
const configChangesSchema = z.object({
  added: z.array(z.string()),
  changed: z.array(z.string()),
  removed: z.array(z.string()),
});

export const snapshotServiceSchema = z.object({
  namespace: z.string(),
  name: z.string(),
  /** Present on a service's first part only (with `instances`, `blocked` and `spec`). */
  declared: z.boolean().optional(),
  blocked: blockedWireSchema.optional(),
  instances: z
    .object({ total: z.int(), passing: z.int(), warning: z.int(), critical: z.int() })
    .optional(),
  /** The MaxineService spec (declared services), as the operator holds it. */
  spec: wireServiceSpecSchema.optional(),
  /** The version of `spec.config` (as in `config_changed`), with the spec. */
  configVersion: configVersionSchema.optional(),
  /** Config keys whose values come from Secrets (configFrom): names and digests, with the spec. */
  configSecrets: configSecretsSchema.optional(),
  /**
   * Instances. A service with more than a chunk holds continues in the next chunks: a part
   * naming a service seen before in this snapshot adds its items.
   */
  items: z.array(instanceSchema),
});
export type SnapshotService = z.infer<typeof snapshotServiceSchema>;

/**
 * The event envelope (docs/api.md): `{seq, type, time, service?, instance?, data?}`, one case
 * per `type`, saying what `data` holds and whether `service` and `instance` are present. The
 * registry, the policy store and the event log produce these cases (type-checked against
 * them), the event stream sends them as they were produced, and the sidecar parses every
 * message it receives with `maxineEventSchema`.
 */
/**
 * A key a case never carries: typed `?: undefined`, so code reading the envelope in general
 * (`event.service`, `event.instance`, `event.data`) type-checks, and a message carrying it fails.
 */
const absent = z.undefined().optional();
/** The name of an operator's event-log numbering (operator/events/log.ts). */
export const streamEpochSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be an epoch as the operator sent it');
/** The handshake response header naming the stream's epoch. */
export const STREAM_EPOCH_HEADER = 'maxine-stream-epoch';
/**
 * Where `kubectl maxine` forwards its user's bearer token through the API server's service
 * proxy (which removes `Authorization`): `Bearer <token>`, reviewed by the operator with a
 * TokenReview (operator/auth/kube-user.ts, docs/decisions/0036-*).
 */
export const KUBE_USER_HEADER = 'x-maxine-kubernetes-authorization';

const envelope = { seq: z.int().min(0), time: z.string() };
const aboutService = { ...envelope, service: serviceRefWireSchema, instance: absent };
const aboutInstance = { ...aboutService, instance: instanceSchema };
const snapshotEnvelope = { ...envelope, service: absent, instance: absent };
/** How a policy resource (an intention, an ACL) changed. */
const policyChange = z.enum(['applied', 'deleted']);
const healthChange = z.object({ status: healthStatusSchema, previous: healthStatusSchema });

export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
export const breakerStateSchema = z.enum(BREAKER_STATES);

/** `data` of `circuit_state_changed`. */
export const circuitChangeDataSchema = z.object({
  from: breakerStateSchema,
  to: breakerStateSchema,
  /** How long the circuit stays open (when `to` is `open`). */
  openMs: z.int().min(0).optional(),
  /** The instance's circuit; absent for the service-level breaker. */
  instanceId: z.string().optional(),
  /** Whose sidecar saw it: the calling service, and its pod when known. */
  reporter: z.object({ service: serviceRefWireSchema, pod: z.string().optional() }),
});
export type CircuitChangeData = z.infer<typeof circuitChangeDataSchema>;

export const registryEventSchemas = {
  /** An instance was added, renewed, or (a pod's) changed a routing field. */
  service_registered: z.object({
    ...aboutInstance,
    type: z.literal('service_registered'),
    data: z.object({
      renewed: z.boolean().optional(),
      /** Re-created on start from a standalone store (operator/store/). */
      restored: z.boolean().optional(),
      /** Read from the API server (a MaxineRegistration another replica wrote; Kubernetes mode). */
      mirrored: z.boolean().optional(),
      /** Pod-sourced instances; `sidecar` when the pod's sidecar attached. */
      source: z.literal('kubernetes').optional(),
      sidecar: z.boolean().optional(),
    }),
  }),
  service_deregistered: z.object({
    ...aboutInstance,
    type: z.literal('service_deregistered'),
    /** `deregistered`, `expired`, `pod_deleted` or `service_deleted`. */
    data: z.object({ reason: z.string() }),
  }),
  /** Only when asked for (`types=service_heartbeat`): not stored, carries the last stored seq. */
  service_heartbeat: z.object({
    ...aboutService,
    type: z.literal('service_heartbeat'),
    data: z.object({
      id: z.string(),
      status: healthStatusSchema,
      lastHeartbeat: z.string().optional(),
      expiresAt: z.string().optional(),
    }),
  }),
  service_unhealthy: z.object({
    ...aboutInstance,
    type: z.literal('service_unhealthy'),
    data: healthChange,
  }),
  service_healthy: z.object({
    ...aboutInstance,
    type: z.literal('service_healthy'),
    data: healthChange,
  }),
  /** Declared (with the spec, so a local copy answers alike) or now undeclared. */
  service_updated: z.object({
    ...aboutService,
    type: z.literal('service_updated'),
    data: z.discriminatedUnion('declared', [
      z.object({
        declared: z.literal(true),
        generation: z.int().min(0),
        blocked: blockedWireSchema.nullable(),
        spec: wireServiceSpecSchema,
        /** The version of `spec.config` (as in `config_changed`); absent from older operators. */
        configVersion: configVersionSchema.optional(),
        /** Config keys whose values come from Secrets: the Secret, its key, a digest; no value. */
        configSecrets: configSecretsSchema.optional(),
      }),
      z.object({ declared: z.literal(false) }),
    ]),
  }),
  service_deleted: z.object({
    ...aboutService,
    type: z.literal('service_deleted'),
    /** Whether a declaration went (true) or the last instance of an undeclared service. */
    data: z.object({ declared: z.boolean() }),
  }),
  service_blocked: z.object({
    ...aboutService,
    type: z.literal('service_blocked'),
    data: blockedWireSchema,
  }),
  service_unblocked: z.object({
    ...aboutService,
    type: z.literal('service_unblocked'),
    data: z.object({ previous: blockedWireSchema }),
  }),
  /**
   * The effective config (common/config-version.ts): the whole map, its version (monotonic per
   * service while the operator runs), its content hash and the keys changed since the version
   * before. version, hash and changes are optional only so events of older operators parse.
   */
  config_changed: z.object({
    ...aboutService,
    type: z.literal('config_changed'),
    data: z.object({
      config: z.record(z.string(), z.string()),
      version: configVersionSchema.optional(),
      hash: z.string().optional(),
      changes: configChangesSchema.optional(),
      /** Keys of the config whose values come from Secrets (not in `config`): names, digests. */
      secrets: configSecretsSchema.optional(),
    }),
  }),
  /** The config went (with its declaration, or the spec lost it): the version and removed keys. */
  config_deleted: z.object({
    ...aboutService,
    type: z.literal('config_deleted'),
    data: z.object({ version: configVersionSchema, changes: configChangesSchema }).optional(),
  }),
  /**
   * A caller's sidecar saw a circuit to `service` change state (POST /api/v1/reports): per
   * instance (`instance` when the registry still knows it, `data.instanceId` always) or for the
   * whole service (neither).
   */
  circuit_state_changed: z.object({
    ...aboutService,
    type: z.literal('circuit_state_changed'),
    instance: instanceSchema.optional(),
    data: circuitChangeDataSchema,
  }),
  /**
   * `service` is the intention's destination (`name` may be `*`). An `applied` intention the
   * operator holds in force carries its `spec` (`inForce: true`); one that namespace
   * confinement leaves without effect says `inForce: false` and carries no spec. An intention
   * whose destination moved is announced `deleted` on its old destination first. Both fields
   * are optional: operators before them sent the reference only.
   */
  intention_changed: z.object({
    ...aboutService,
    type: z.literal('intention_changed'),
    data: z.object({
      intention: serviceRefWireSchema,
      change: policyChange,
      inForce: z.boolean().optional(),
      spec: wireIntentionSpecSchema.optional(),
    }),
  }),
  /** `service` is `{namespace, name: "*"}`: an ACL concerns its whole namespace. */
  acl_changed: z.object({
    ...aboutService,
    type: z.literal('acl_changed'),
    data: z.object({ acl: serviceRefWireSchema, change: policyChange }),
  }),
} as const satisfies Record<Exclude<EventType, ResyncType>, z.ZodType>;

type ResyncType = 'resync_begin' | 'resync_chunk' | 'resync_end';

export const resyncBeginSchema = z.object({
  ...snapshotEnvelope,
  type: z.literal('resync_begin'),
  data: z.object({
    /** How many services the snapshot is about to send (as listed when it began). */
    services: z.int().min(0),
    /**
     * The cluster-wide intention default. Its presence says the snapshot carries the
     * intentions in force that the subscriber may see (`resync_chunk.data.intentions`);
     * operators before it sent none.
     */
    intentionDefault: intentionDefaultSchema.optional(),
    /** The epoch of the log the snapshot's `seq` belongs to (send it back with `since=`). */
    epoch: streamEpochSchema.optional(),
  }),
});
export const resyncChunkSchema = z.object({
  ...snapshotEnvelope,
  type: z.literal('resync_chunk'),
  data: z.object({
    services: z.array(snapshotServiceSchema),
    /** Intentions in force (after the services, in chunks of their own). */
    intentions: z.array(snapshotIntentionSchema).optional(),
  }),
});
export const resyncEndSchema = z.object({
  ...snapshotEnvelope,
  type: z.literal('resync_end'),
  /** What was sent: services (distinct), chunks (intention chunks included) and instances. */
  data: z.object({ services: z.int().min(0), chunks: z.int().min(0), instances: z.int().min(0) }),
});
/**
 * The slow-consumer marker: a subscriber whose send buffer passed its bound
 * (`--event-stream-buffer-bytes`) is sent this instead of the next event, receives nothing
 * more until its connection has taken everything queued (the marker included), and then gets
 * a fresh snapshot (`resync_begin` … `resync_end`) followed by live events again. `seq` is
 * where the subscriber stands: it has every event it asked for up to `seq`, so a client that
 * reconnects instead resumes with `since=<seq>&epoch=<data.epoch>`. Never stored in the log,
 * never filtered by `types`. Not a snapshot message: the copy a client holds stays valid
 * (only late) until the snapshot's `resync_end` replaces it.
 */
export const resyncMarkerSchema = z.object({
  ...snapshotEnvelope,
  type: z.literal('resync'),
  data: z.object({
    /** Why: `slow_consumer` (a string, so a reason added later parses on older clients). */
    reason: z.string(),
    /** The epoch of the log `seq` belongs to. */
    epoch: streamEpochSchema.optional(),
  }),
});
export type ResyncMarker = z.infer<typeof resyncMarkerSchema>;

export const resyncMessageSchema = z.discriminatedUnion('type', [
  resyncBeginSchema,
  resyncChunkSchema,
  resyncEndSchema,
]);
export type ResyncMessage = z.infer<typeof resyncMessageSchema>;

type RegistryEventCase = (typeof registryEventSchemas)[keyof typeof registryEventSchemas];
export const registryEventSchema = z.discriminatedUnion(
  'type',
  Object.values(registryEventSchemas) as [RegistryEventCase, ...RegistryEventCase[]],
);
/** An event of the registry's log: every type but the snapshot messages. */
export type RegistryEvent = z.infer<typeof registryEventSchema>;

/** Every message of the event stream: a registry event or a snapshot message. */
export const maxineEventSchema = z.discriminatedUnion('type', [
  registryEventSchema,
  resyncMessageSchema,
  resyncMarkerSchema,
]);
export type MaxineEvent = z.infer<typeof maxineEventSchema>;

export function isResync(event: MaxineEvent): event is ResyncMessage {
  return RESYNC_TYPES.has(event.type);
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** An event as its producer states it; the log adds `seq` and `time`. */
export type RegistryEventDraft = DistributiveOmit<RegistryEvent, 'seq' | 'time'>;

/**
 * Close codes of the event stream besides the standard ones (1001 shutdown, 1011 internal
 * error, 1013 try again later: slow consumer or too many snapshots at once).
 */
export const STREAM_CLOSE = {
  /** The credential expired or was revoked: read a fresh token and reconnect. */
  CREDENTIAL_EXPIRED: 4401,
  TRY_AGAIN_LATER: 1013,
  INTERNAL_ERROR: 1011,
  GOING_AWAY: 1001,
  /** `follow=false`: the replay or snapshot was sent, nothing more comes. */
  REPLAY_DONE: 1000,
} as const;

const csv = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .string()
    .max(16384)
    .transform((s) => s.split(',').filter((x) => x.length > 0))
    .pipe(z.array(item).max(1024));

/** How many `metadata=` conditions one events query may carry. */
export const MAX_EVENT_METADATA_FILTERS = 16;
const metadataPairSchema = z
  .string()
  .max(1400)
  .transform((v, ctx): [string, string] => {
    const eq = v.indexOf('=');
    if (eq <= 0) {
      ctx.addIssue({ code: 'custom', message: 'must be KEY=VALUE (an instance metadata pair)' });
      return z.NEVER;
    }
    return [v.slice(0, eq), v.slice(eq + 1)];
  })
  .pipe(z.tuple([labelKey, z.string().max(1024)]));

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
  /**
   * A service (`namespace/name`, no wildcard) whose outbound intentions the subscriber also
   * wants: intentions with a source matching it come too, whatever their destination (a
   * sidecar learns from them which services its pod may call: its discovery scope).
   */
  caller: z
    .string()
    .regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
      'must be "namespace/name" (no wildcard)',
    )
    .transform((v) => {
      const [namespace, name] = v.split('/') as [string, string];
      return { namespace, name };
    })
    .optional(),
  since: z
    .string()
    .regex(/^\d{1,16}$/, 'must be a sequence number')
    .transform(Number)
    .optional(),
  /**
   * The epoch of the log `since` was read from (the handshake's `maxine-stream-epoch` header,
   * `resync_begin.data.epoch`): another epoch gets a snapshot instead of a replay.
   */
  epoch: streamEpochSchema.optional(),
  snapshot: boolString.optional(),
  /**
   * `false`: no live events — the stream sends the replay (after `since`; without `since` and
   * `snapshot`, every event the log holds) or the snapshot, then closes (WebSocket code 1000,
   * SSE `: closed 1000 replay done`). `kubectl maxine events` without `-f` reads it so.
   */
  follow: boolString.optional(),
  /**
   * Instance filters: an event about one instance (it carries `instance`, or a heartbeat or
   * circuit change naming one) comes only when that instance has this version / zone /
   * datacenter and every `metadata` pair; events about a service as a whole, policy events
   * and the resync messages are not affected. A snapshot lists the same instances.
   */
  version: shortText.optional(),
  zone: shortText.optional(),
  datacenter: shortText.optional(),
  /** `metadata=KEY=VALUE`, repeatable (all must hold): the only parameter that may repeat. */
  metadata: z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (typeof v === 'string' ? [v] : v))
    .pipe(z.array(metadataPairSchema).min(1).max(MAX_EVENT_METADATA_FILTERS))
    .transform((pairs, ctx) => {
      const out: Record<string, string> = {};
      for (const [key, value] of pairs) {
        if (Object.hasOwn(out, key)) {
          ctx.addIssue({ code: 'custom', message: `metadata key "${key}" is given twice` });
          return z.NEVER;
        }
        out[key] = value;
      }
      return out;
    })
    .optional(),
});
export type EventsQuery = z.infer<typeof eventsQuerySchema>;
/** The events query parameters that may be given more than once. */
export const EVENTS_QUERY_REPEATABLE: ReadonlySet<string> = new Set(['metadata']);

/**
 * The `id:` of an event sent as Server-Sent Events: `EPOCH:SEQ` (an epoch never holds `:`),
 * so the `Last-Event-ID` a client sends back on reconnect carries both `since` and `epoch`.
 */
export function sseEventId(epoch: string, seq: number): string {
  return `${epoch}:${seq}`;
}
/** `Last-Event-ID`: `EPOCH:SEQ` as sent, or a bare `SEQ` (judged by its number alone). */
export const lastEventIdSchema = z
  .string()
  .regex(
    /^([A-Za-z0-9_-]{1,64}:)?\d{1,16}$/,
    'must be an event id as the operator sent it ("EPOCH:SEQ")',
  )
  .transform((v): { since: number; epoch?: string } => {
    const colon = v.indexOf(':');
    return colon === -1
      ? { since: Number(v) }
      : { since: Number(v.slice(colon + 1)), epoch: v.slice(0, colon) };
  });

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

/**
 * Upper bounds (milliseconds) of the latency buckets of call reports; one more bucket counts
 * everything slower. Shared by the sidecar that fills them and the operator that reads them.
 */
export const CALL_LATENCY_BUCKETS_MS = [
  1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000,
] as const;
/** Destinations one report may carry (a sidecar aggregating more drops the rest, counted). */
export const MAX_REPORT_EDGES = 256;
/** Circuit transitions one report may carry. */
export const MAX_REPORT_CIRCUITS = 64;
/**
 * The body limit of `POST /api/v1/reports`: a report within the bounds above (names of 63
 * characters, counts of 10 digits) is at most ~130 KiB of JSON, so this never refuses one.
 */
export const MAX_REPORT_BYTES = 256 * 1024;

const reportedServiceSchema = z.strictObject({ namespace: dnsLabel, name: dnsLabel });
const count = z.int().min(0).max(1_000_000_000);

/** What one caller's sidecar observed of its calls to one destination since its last report. */
export const reportedEdgeSchema = z
  .strictObject({
    destination: reportedServiceSchema,
    calls: count,
    /** Calls answered with a 5xx or not answered (connect failure, reset, timeout). */
    errors: count,
    /** Calls per latency bucket (`CALL_LATENCY_BUCKETS_MS`, then the overflow bucket). */
    latencyMs: z.array(count).length(CALL_LATENCY_BUCKETS_MS.length + 1),
  })
  .refine((e) => e.errors <= e.calls, { message: 'errors cannot exceed calls', path: ['errors'] })
  .refine((e) => e.latencyMs.reduce((a, b) => a + b, 0) === e.calls, {
    message: 'the latency buckets must add up to calls',
    path: ['latencyMs'],
  });
export type ReportedEdge = z.infer<typeof reportedEdgeSchema>;

/** A circuit-breaker transition the sidecar's proxy made. */
export const reportedCircuitSchema = z
  .strictObject({
    destination: reportedServiceSchema,
    instanceId: instanceIdSchema.optional(),
    from: breakerStateSchema,
    to: breakerStateSchema,
    openMs: z.int().min(0).max(86_400_000).optional(),
    /** When the transition happened (milliseconds since the epoch, the sidecar's clock). */
    at: z.int().min(0).max(8_640_000_000_000_000),
  })
  .refine((c) => c.from !== c.to, { message: 'from and to must differ', path: ['to'] });
export type ReportedCircuit = z.infer<typeof reportedCircuitSchema>;

/**
 * `POST /api/v1/reports`: a sidecar's observations since its previous report. `source` is the
 * calling service, which the caller must be (its pod's sidecar, or `register` on it).
 */
export const callReportSchema = z.strictObject({
  source: reportedServiceSchema,
  /** The reporting pod (informational; in Kubernetes mode the token's pod is used). */
  pod: instanceIdSchema.optional(),
  edges: z.array(reportedEdgeSchema).max(MAX_REPORT_EDGES),
  circuits: z.array(reportedCircuitSchema).max(MAX_REPORT_CIRCUITS).default([]),
});
export type CallReport = z.infer<typeof callReportSchema>;
export type CallReportInput = z.input<typeof callReportSchema>;
