/**
 * Operator configuration from flags and environment (flags win), parsed with zod so a bad
 * value stops start-up with a message naming the flag.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { validationError } from '../common/errors.js';
import { DEFAULT_LIMITS } from './registry/limits.js';
import type { RegistryLimits } from './registry/limits.js';

const bool = z.union(
  [
    z.boolean(),
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'])
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  ],
  { error: 'must be true or false (1/0 and yes/no also work)' },
);
const int = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'number' ? String(v) : v),
    z
      .string()
      .trim()
      .regex(/^-?\d+$/, 'must be a whole number')
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
  );

const csv = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== '')
      : v,
  z.array(z.string().min(1).max(253)).max(32),
);

export const configSchema = z
  .strictObject({
    port: int(0, 65535).default(7710),
    host: z.string().min(1).default('127.0.0.1'),
    resources: z.string().min(1).default('examples'),
    /** standalone: resources from the folder; kubernetes: from the API server (informers). */
    mode: z.enum(['standalone', 'kubernetes']).default('standalone'),
    /** A kubeconfig file for kubernetes mode; default: KUBECONFIG, ~/.kube/config, in-cluster. */
    kubeconfig: z.string().min(1).optional(),
    allowUndeclared: bool.default(true),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    defaultTtlSeconds: int(1, 3600).default(30),
    removeAfterSeconds: int(0, 86400).default(90),
    sweepIntervalMs: int(50, 60_000).default(1000),
    massExpiryThreshold: z.coerce.number().min(0).max(1).default(0.5),
    massExpiryMinInstances: int(1, 1_000_000).default(10),
    bodyLimitBytes: int(256, 16 * 1024 * 1024).default(64 * 1024),
    eventLogSize: int(16, 10_000_000).default(10_000),
    /** The dependency graph: observed caller → destination edges held at most (LRU eviction). */
    graphMaxEdges: int(1, 1_000_000).default(10_000),
    /** configFrom: ConfigMaps and Secrets the operator watches at most (Kubernetes mode). */
    configFromMaxObjects: int(1, 1_000_000).default(1000),
    /** The dependency graph: how far back observed calls count (rates, error rates, latency). */
    graphWindowSeconds: int(30, 86_400).default(300),
    /** Config versions kept per service (GET .../config/history), and services kept at most. */
    configHistory: int(1, 1000).default(10),
    configHistoryServices: int(1, 10_000_000).default(50_000),
    /** Bytes (JSON) of config history kept in all; past it the oldest superseded versions go. */
    configHistoryBytes: int(64 * 1024, 16 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
    /** The event log's bound in bytes (serialized events), besides its count. */
    eventLogBytes: int(64 * 1024, 16 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
    /** Registry limits (operator/registry/limits.ts): counts answer 429, sizes 413. */
    maxInstances: int(1, 100_000_000).default(DEFAULT_LIMITS.instances),
    maxInstancesPerService: int(1, 100_000_000).default(DEFAULT_LIMITS.instancesPerService),
    maxInstancesPerPrincipal: int(1, 100_000_000).default(DEFAULT_LIMITS.instancesPerPrincipal),
    maxUndeclaredServices: int(1, 10_000_000).default(DEFAULT_LIMITS.undeclaredServices),
    maxUndeclaredServicesPerPrincipal: int(1, 10_000_000).default(
      DEFAULT_LIMITS.undeclaredServicesPerPrincipal,
    ),
    maxMetadataBytes: int(2, 16 * 1024 * 1024).default(DEFAULT_LIMITS.metadataBytes),
    maxMetadataKeys: int(0, 100_000).default(DEFAULT_LIMITS.metadataKeys),
    maxPorts: int(0, 10_000).default(DEFAULT_LIMITS.ports),
    /** Event streams open at once, in total (503 past it) and per principal (429 past it). */
    eventStreamMaxConnections: int(1, 1_000_000).default(10_000),
    eventStreamMaxPerPrincipal: int(1, 1_000_000).default(256),
    /**
     * A subscriber's send buffer: past it the subscriber is sent a `resync` marker, gets no
     * more events until it drained, then a snapshot (docs/events.md "Slow consumers").
     */
    eventStreamBufferBytes: int(16 * 1024, 1024 * 1024 * 1024).default(1024 * 1024),
    /** Server-Sent Events: a comment line this often keeps proxies from closing an idle stream. */
    eventStreamSseHeartbeatMs: int(100, 3_600_000).default(15_000),
    /** Resync snapshots built at once, and how many may wait for a slot (1013 past it). */
    snapshotConcurrency: int(1, 1024).default(4),
    snapshotQueue: int(0, 100_000).default(64),
    /** The bound on one snapshot message (a chunk of services and instances), in bytes. */
    snapshotChunkBytes: int(4096, 64 * 1024 * 1024).default(64 * 1024),
    /** A subscriber that does not take a snapshot chunk within this long is dropped. */
    snapshotStallMs: int(100, 600_000).default(30_000),
    shutdownTimeoutMs: int(0, 600_000).default(10_000),
    statusResyncMs: int(100, 3_600_000).default(15_000),
    /**
     * kubernetes mode: the leader's budget for maxine.io/healthy pod condition writes (a token
     * bucket over all pods), and how many pods may wait for one (past it, until the resync).
     */
    healthConditionWritesPerSecond: z.coerce.number().min(0.1).max(10_000).default(20),
    healthConditionMaxPending: int(1, 10_000_000).default(10_000),
    /** kubernetes mode: compete for a Lease; only the leader writes status. */
    leaderElection: bool.default(true),
    leaseNamespace: z.string().min(1).default('maxine-system'),
    leaseName: z.string().min(1).default('maxine-operator'),
    /**
     * This replica's name as the Lease holder and the Events' reporting instance (the pod name,
     * from the downward API); default: host name, pid and a random suffix.
     */
    podName: z.string().min(1).max(253).optional(),
    leaseDurationSeconds: int(2, 600).default(15),
    leaseRenewSeconds: int(1, 300).default(5),
    /**
     * kubernetes mode: the URL other replicas reach this one at, advertised on the Lease while
     * it leads, so followers forward writes to it (manifests: http://$(MAXINE_POD_IP):7710).
     */
    advertiseUrl: z
      .url({ protocol: /^https?$/ })
      .refine((url) => !url.includes('$('), {
        message:
          'holds an unresolved $(VAR) reference: in the pod spec, declare that variable before this one',
      })
      .optional(),
    /** How long a follower waits for the leader's answer to a forwarded write. */
    forwardTimeoutMs: int(100, 600_000).default(10_000),
    /** Audience the sidecars' projected tokens are minted for. */
    tokenAudience: z.string().min(1).max(253).default('maxine.io'),
    /**
     * How long a sidecar's TokenReview answer is kept while the pod informer still holds its
     * pod with the same uid (a deleted or replaced pod's token is reviewed again at once).
     */
    tokenReviewPodCacheSeconds: int(1, 3600).default(900),
    /**
     * Whether requests without a token are served (as `system:anonymous`, subject to ACLs).
     * Default: yes in standalone mode, no in kubernetes mode.
     */
    anonymous: bool.optional(),
    /** What ACLs decide when no rule applies (default: allow standalone, deny kubernetes). */
    aclDefault: z.enum(['allow', 'deny']).optional(),
    /** What intentions decide when none applies to a source and destination. */
    intentionDefault: z.enum(['allow', 'deny']).default('allow'),
    /** kubernetes mode: apply Istio/Linkerd objects for MaxineServices with `spec.mesh`. */
    meshApply: bool.default(true),
    /** How often the mesh objects are re-applied and pruned, to repair drift and notice new CRDs. */
    meshResyncMs: int(1000, 3_600_000).default(300_000),
    /** Cluster DNS suffix of Service names, in hosts of rendered mesh objects. */
    clusterDomain: z.string().min(1).max(253).default('cluster.local'),
    /** Istio trust domain: principals are `<trust domain>/ns/<ns>/sa/<sa>`. */
    meshTrustDomain: z.string().min(1).max(253).default('cluster.local'),
    /** Linkerd identity trust domain: `<sa>.<ns>.serviceaccount.identity.linkerd.<domain>`. */
    linkerdIdentityDomain: z.string().min(1).max(253).default('cluster.local'),
    /**
     * Namespaces whose ACLs and intentions may govern services of any namespace; elsewhere they
     * reach only their own namespace's services.
     */
    policyNamespaces: csv.default(['maxine-system']),
    /** Subjects with every right regardless of ACLs: `User:alice`, `Group:platform`. */
    bootstrapAdmins: z
      .preprocess(
        (v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()) : v),
        z
          .array(
            z.string().regex(/^(User|Group):[^,\s]{1,253}$/, 'must be User:<name> or Group:<name>'),
          )
          .max(32),
      )
      .default([]),
    /** Sidecars (pod-bound tokens) may discover and read every service unless an ACL denies. */
    sidecarReadAll: bool.default(true),
    /** A YAML file of static bearer tokens (`tokens: [{sha256|token, user, groups}]`). */
    staticTokensFile: z.string().min(1).optional(),
    /** JWT verification: the issuer and audience tokens must carry, and one key source. */
    jwtIssuer: z.string().min(1).max(2048).optional(),
    jwtAudience: z.string().min(1).max(2048).optional(),
    jwtJwksUrl: z.url().optional(),
    jwtPublicKeyFile: z.string().min(1).optional(),
    jwtUserClaim: z.string().min(1).max(128).default('sub'),
    jwtGroupsClaim: z.string().min(1).max(128).default('groups'),
    jwtClockSkewSeconds: int(0, 600).default(30),
    /** Requests per second each identity may make (token bucket); 0 turns the limit off. */
    identityRateLimit: z.coerce.number().min(0).max(1_000_000).default(0),
    /** Burst of the per-identity bucket (default: twice the rate). */
    identityRateBurst: int(1, 10_000_000).optional(),
    /** Where the audit log is written (rotated NDJSON files); `off` disables it. */
    auditDir: z.string().min(1).optional(),
    auditMaxSize: z
      .string()
      .regex(/^\d+[kmg]$/, 'must be a size such as 500k, 10m or 1g')
      .default('10m'),
    auditKeep: int(1, 1000).default(10),
    /**
     * Unauthenticated and address-rate-limited refusals: the first of each address and reason
     * is written at once, the rest of this many seconds are summed into one `repeated` record.
     */
    auditAggregateSeconds: int(1, 3600).default(60),
    /** That noise is written to its own rotated files (`auth-failures.N.ndjson`). */
    auditNoiseMaxSize: z
      .string()
      .regex(/^\d+[kmg]$/, 'must be a size such as 500k, 10m or 1g')
      .default('10m'),
    auditNoiseKeep: int(1, 1000).default(3),
    /**
     * Allowed discoveries in the audit log: `none` (the default), `all`, or `sample:N` (one
     * record, with `sampled: N`, for every N). Refusals are always recorded, whatever this says.
     */
    auditAllowedReads: z
      .string()
      .regex(
        /^(none|all|aggregate|sample:[1-9]\d{0,8})$/,
        'must be none, all or sample:N (N ≥ 1), or aggregate',
      )
      .default('none'),
    /**
     * `--audit-allowed-reads aggregate`: allowed discoveries are counted per principal, source
     * and service, and each key's count is written as one record every this many ms.
     */
    auditReadsIntervalMs: int(100, 3_600_000).default(60_000),
    /** Keys counted at once under `aggregate`; at the bound every count is written early. */
    auditReadsMaxKeys: int(1, 1_000_000).default(10_000),
    /** Requests per second one client address may make, before authentication; 0: no limit. */
    addressRateLimit: z.coerce.number().min(0).max(10_000_000).default(1000),
    /** Burst of the per-address bucket (default: twice the rate). */
    addressRateBurst: int(1, 100_000_000).optional(),
    /** Client addresses tracked at once (the least recently seen are forgotten first). */
    addressRateMaxAddresses: int(16, 10_000_000).default(65_536),
    /** Whether `/metrics` needs a principal with `read` on `*\/*` (default: kubernetes mode only). */
    metricsAuth: bool.optional(),
    /** How long a request's headers may take to arrive (node's headersTimeout). */
    headersTimeoutMs: int(1000, 600_000).default(10_000),
    /** How long a request's body may take to arrive once its headers are in. */
    bodyTimeoutMs: int(100, 600_000).default(10_000),
    /** The sidecar-injection webhook (default: on in kubernetes mode). */
    webhook: bool.optional(),
    webhookHost: z.string().min(1).default('0.0.0.0'),
    webhookPort: int(0, 65535).default(8443),
    /** The MutatingWebhookConfiguration whose caBundle the operator keeps. */
    webhookConfigName: z.string().min(1).default('maxine-sidecar-injector'),
    /** Names and addresses in the webhook's serving certificate. */
    webhookDnsNames: csv.default([
      'maxine-operator.maxine-system.svc',
      'maxine-operator.maxine-system.svc.cluster.local',
    ]),
    webhookIps: csv.default([]),
    sidecarImage: z.string().min(1).default('ghcr.io/maxine-registry/sidecar:0.1.0'),
    /** Where injected sidecars reach the operator. */
    sidecarOperatorUrl: z.url().default('http://maxine-operator.maxine-system.svc:7710'),
    /**
     * Standalone mode: where registrations and the event sequence outlive the process
     * (operator/store/, docs/operations.md "Persistence"). Kubernetes mode refuses it: the API
     * server is the store of record there.
     */
    store: z.enum(['memory', 'file', 'redis']).optional(),
    /** The `redis` store's server, and the prefix of its keys. */
    storeRedisUrl: z
      .url({ protocol: /^redis$/, error: 'must be redis://host:port' })
      .default('redis://127.0.0.1:6379'),
    storeRedisPrefix: z.string().min(1).max(128).default('maxine'),
    /** A Redis command without a reply within this long fails (the store is then unavailable). */
    storeRedisTimeoutMs: int(100, 60_000).default(2000),
    /**
     * Several operators share one Redis (same prefix): changes published on a Redis stream,
     * keys expiring with their leases, one expiry leader (operator/store/redis-shared.ts).
     */
    storeRedisShared: bool.default(false),
    /** The expiry lock's time to live: how long a dead leader holds lease expiry up. */
    storeRedisLockMs: int(1000, 600_000).default(10_000),
    /** The `file` store's folder (snapshot + append-only log). */
    storeDir: z.string().min(1).default('.maxine/store'),
    /** `always`: fsync before a registration is answered; `interval`: written at once, fsynced every storeFsyncIntervalMs. */
    storeFsync: z.enum(['always', 'interval']).default('always'),
    storeFsyncIntervalMs: int(10, 60_000).default(1000),
    /** Heartbeat renewal times are written at most this often per instance (coalesced). */
    storeRenewIntervalMs: int(100, 600_000).default(5000),
    /** The log is compacted into a new snapshot once it passes this size. */
    storeCompactBytes: int(4096, 16 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
    /** The MQTT bridge (operator/mqtt/, docs/events.md "MQTT"): off unless a broker is named. */
    mqttUrl: z
      .url({ protocol: /^mqtts?$/, error: 'must be mqtt://host:port or mqtts://host:port' })
      .optional(),
    mqttUsername: z.string().min(1).max(256).optional(),
    /** From MAXINE_MQTT_PASSWORD only (never a flag: flags show in `ps`), or --mqtt-password-file. */
    mqttPassword: z.string().min(1).max(4096).optional(),
    mqttPasswordFile: z.string().min(1).optional(),
    /** mqtts://: the CA that signed the broker's certificate, and an optional client certificate. */
    mqttCaFile: z.string().min(1).optional(),
    mqttCertFile: z.string().min(1).optional(),
    mqttKeyFile: z.string().min(1).optional(),
    /** Default: maxine-{pod or host name}-{pid}. */
    mqttClientId: z.string().min(1).max(128).optional(),
    mqttTopicPrefix: z
      .string()
      .regex(/^[^+#]+$/, 'must not hold MQTT wildcards (+, #)')
      .max(128)
      .default('maxine'),
    mqttQueueMessages: int(1, 10_000_000).default(10_000),
    mqttQueueBytes: int(1024, 4 * 1024 * 1024 * 1024).default(16 * 1024 * 1024),
    mqttInflight: int(1, 65_535).default(100),
    mqttReconnectMinMs: int(10, 600_000).default(500),
    mqttReconnectMaxMs: int(10, 3_600_000).default(30_000),
    mqttStateCoalesceMs: int(0, 60_000).default(100),
    /** Inbound registrations over MQTT (operator/mqtt/inbound.ts); needs --mqtt-users-file. */
    mqttInbound: bool.default(false),
    /** JSON: broker user name → the Maxine principal its messages act as. */
    mqttUsersFile: z.string().min(1).optional(),
    /** Inbound messages accepted per second (all users together), and their largest size. */
    mqttInboundRate: int(1, 100_000).default(100),
    mqttInboundMaxBytes: int(64, 1024 * 1024).default(16 * 1024),
    /** Inbound messages accepted per second from one broker user (operator/mqtt/inbound.ts). */
    mqttInboundUserRate: int(1, 100_000).default(10),
  })
  .superRefine((c, ctx) => {
    const jwt = [c.jwtIssuer, c.jwtAudience, c.jwtJwksUrl ?? c.jwtPublicKeyFile];
    if (jwt.some((v) => v !== undefined) && jwt.some((v) => v === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['jwtIssuer'],
        message:
          'JWT verification needs an issuer, an audience and a key (JWKS URL or public key file)',
      });
    }
    if (c.jwtJwksUrl !== undefined && c.jwtPublicKeyFile !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['jwtJwksUrl'],
        message: 'give a JWKS URL or a public key file, not both',
      });
    }
    if (c.storeRedisShared && c.store !== 'redis') {
      ctx.addIssue({
        code: 'custom',
        path: ['storeRedisShared'],
        message: 'is for --store redis only',
      });
    }
    mqttIssues(c, ctx);
    if (c.mode === 'kubernetes' && c.store !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['store'],
        message:
          'is for standalone mode only: in kubernetes mode the API server is the store of record',
      });
    }
  });
export type OperatorConfig = z.infer<typeof configSchema>;

/** The MQTT bridge's flags that only make sense together. */
function mqttIssues(
  c: Pick<
    OperatorConfig,
    | 'mqttPassword'
    | 'mqttPasswordFile'
    | 'mqttCertFile'
    | 'mqttKeyFile'
    | 'mqttInbound'
    | 'mqttUrl'
    | 'mqttUsersFile'
  >,
  ctx: z.RefinementCtx,
): void {
  if (c.mqttPassword !== undefined && c.mqttPasswordFile !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['mqttPasswordFile'],
      message: 'give MAXINE_MQTT_PASSWORD or a password file, not both',
    });
  }
  if ((c.mqttCertFile === undefined) !== (c.mqttKeyFile === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['mqttCertFile'],
      message: 'a client certificate needs its key, and a key its certificate',
    });
  }
  if (c.mqttInbound && (c.mqttUrl === undefined || c.mqttUsersFile === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['mqttInbound'],
      message: 'needs --mqtt-url and --mqtt-users-file (who each broker user acts as)',
    });
  }
}

/** The registry limits a configuration sets. */
export function registryLimitsOf(c: OperatorConfig): RegistryLimits {
  return {
    instances: c.maxInstances,
    instancesPerService: c.maxInstancesPerService,
    instancesPerPrincipal: c.maxInstancesPerPrincipal,
    undeclaredServices: c.maxUndeclaredServices,
    undeclaredServicesPerPrincipal: c.maxUndeclaredServicesPerPrincipal,
    metadataBytes: c.maxMetadataBytes,
    metadataKeys: c.maxMetadataKeys,
    ports: c.maxPorts,
  };
}

/** flag name → [config key, environment variable] */
const OPTIONS = {
  port: ['port', 'MAXINE_PORT'],
  host: ['host', 'MAXINE_HOST'],
  resources: ['resources', 'MAXINE_RESOURCES'],
  mode: ['mode', 'MAXINE_MODE'],
  kubeconfig: ['kubeconfig', 'MAXINE_KUBECONFIG'],
  'allow-undeclared': ['allowUndeclared', 'MAXINE_ALLOW_UNDECLARED'],
  'log-level': ['logLevel', 'MAXINE_LOG_LEVEL'],
  'default-ttl-seconds': ['defaultTtlSeconds', 'MAXINE_DEFAULT_TTL_SECONDS'],
  'remove-after-seconds': ['removeAfterSeconds', 'MAXINE_REMOVE_AFTER_SECONDS'],
  'sweep-interval-ms': ['sweepIntervalMs', 'MAXINE_SWEEP_INTERVAL_MS'],
  'mass-expiry-threshold': ['massExpiryThreshold', 'MAXINE_MASS_EXPIRY_THRESHOLD'],
  'mass-expiry-min-instances': ['massExpiryMinInstances', 'MAXINE_MASS_EXPIRY_MIN_INSTANCES'],
  'body-limit-bytes': ['bodyLimitBytes', 'MAXINE_BODY_LIMIT_BYTES'],
  'event-log-size': ['eventLogSize', 'MAXINE_EVENT_LOG_SIZE'],
  'graph-max-edges': ['graphMaxEdges', 'MAXINE_GRAPH_MAX_EDGES'],
  'config-from-max-objects': ['configFromMaxObjects', 'MAXINE_CONFIG_FROM_MAX_OBJECTS'],
  'graph-window-seconds': ['graphWindowSeconds', 'MAXINE_GRAPH_WINDOW_SECONDS'],
  'event-log-bytes': ['eventLogBytes', 'MAXINE_EVENT_LOG_BYTES'],
  'config-history': ['configHistory', 'MAXINE_CONFIG_HISTORY'],
  'config-history-services': ['configHistoryServices', 'MAXINE_CONFIG_HISTORY_SERVICES'],
  'config-history-bytes': ['configHistoryBytes', 'MAXINE_CONFIG_HISTORY_BYTES'],
  'max-instances': ['maxInstances', 'MAXINE_MAX_INSTANCES'],
  'max-instances-per-service': ['maxInstancesPerService', 'MAXINE_MAX_INSTANCES_PER_SERVICE'],
  'max-instances-per-principal': ['maxInstancesPerPrincipal', 'MAXINE_MAX_INSTANCES_PER_PRINCIPAL'],
  'max-undeclared-services': ['maxUndeclaredServices', 'MAXINE_MAX_UNDECLARED_SERVICES'],
  'max-undeclared-services-per-principal': [
    'maxUndeclaredServicesPerPrincipal',
    'MAXINE_MAX_UNDECLARED_SERVICES_PER_PRINCIPAL',
  ],
  'max-metadata-bytes': ['maxMetadataBytes', 'MAXINE_MAX_METADATA_BYTES'],
  'max-metadata-keys': ['maxMetadataKeys', 'MAXINE_MAX_METADATA_KEYS'],
  'max-ports': ['maxPorts', 'MAXINE_MAX_PORTS'],
  'event-stream-max-connections': [
    'eventStreamMaxConnections',
    'MAXINE_EVENT_STREAM_MAX_CONNECTIONS',
  ],
  'event-stream-max-per-principal': [
    'eventStreamMaxPerPrincipal',
    'MAXINE_EVENT_STREAM_MAX_PER_PRINCIPAL',
  ],
  'event-stream-buffer-bytes': ['eventStreamBufferBytes', 'MAXINE_EVENT_STREAM_BUFFER_BYTES'],
  'event-stream-sse-heartbeat-ms': [
    'eventStreamSseHeartbeatMs',
    'MAXINE_EVENT_STREAM_SSE_HEARTBEAT_MS',
  ],
  'snapshot-concurrency': ['snapshotConcurrency', 'MAXINE_SNAPSHOT_CONCURRENCY'],
  'snapshot-queue': ['snapshotQueue', 'MAXINE_SNAPSHOT_QUEUE'],
  'snapshot-chunk-bytes': ['snapshotChunkBytes', 'MAXINE_SNAPSHOT_CHUNK_BYTES'],
  'snapshot-stall-ms': ['snapshotStallMs', 'MAXINE_SNAPSHOT_STALL_MS'],
  'shutdown-timeout-ms': ['shutdownTimeoutMs', 'MAXINE_SHUTDOWN_TIMEOUT_MS'],
  'status-resync-ms': ['statusResyncMs', 'MAXINE_STATUS_RESYNC_MS'],
  'health-condition-writes-per-second': [
    'healthConditionWritesPerSecond',
    'MAXINE_HEALTH_CONDITION_WRITES_PER_SECOND',
  ],
  'health-condition-max-pending': [
    'healthConditionMaxPending',
    'MAXINE_HEALTH_CONDITION_MAX_PENDING',
  ],
  'leader-election': ['leaderElection', 'MAXINE_LEADER_ELECTION'],
  'lease-namespace': ['leaseNamespace', 'MAXINE_LEASE_NAMESPACE'],
  'lease-name': ['leaseName', 'MAXINE_LEASE_NAME'],
  'pod-name': ['podName', 'MAXINE_POD_NAME'],
  'lease-duration-seconds': ['leaseDurationSeconds', 'MAXINE_LEASE_DURATION_SECONDS'],
  'lease-renew-seconds': ['leaseRenewSeconds', 'MAXINE_LEASE_RENEW_SECONDS'],
  'advertise-url': ['advertiseUrl', 'MAXINE_ADVERTISE_URL'],
  'forward-timeout-ms': ['forwardTimeoutMs', 'MAXINE_FORWARD_TIMEOUT_MS'],
  'token-audience': ['tokenAudience', 'MAXINE_TOKEN_AUDIENCE'],
  'token-review-pod-cache-seconds': [
    'tokenReviewPodCacheSeconds',
    'MAXINE_TOKEN_REVIEW_POD_CACHE_SECONDS',
  ],
  anonymous: ['anonymous', 'MAXINE_ANONYMOUS'],
  'acl-default': ['aclDefault', 'MAXINE_ACL_DEFAULT'],
  'intention-default': ['intentionDefault', 'MAXINE_INTENTION_DEFAULT'],
  'policy-namespaces': ['policyNamespaces', 'MAXINE_POLICY_NAMESPACES'],
  'mesh-apply': ['meshApply', 'MAXINE_MESH_APPLY'],
  'mesh-resync-ms': ['meshResyncMs', 'MAXINE_MESH_RESYNC_MS'],
  'cluster-domain': ['clusterDomain', 'MAXINE_CLUSTER_DOMAIN'],
  'mesh-trust-domain': ['meshTrustDomain', 'MAXINE_MESH_TRUST_DOMAIN'],
  'linkerd-identity-domain': ['linkerdIdentityDomain', 'MAXINE_LINKERD_IDENTITY_DOMAIN'],
  'bootstrap-admins': ['bootstrapAdmins', 'MAXINE_BOOTSTRAP_ADMINS'],
  'sidecar-read-all': ['sidecarReadAll', 'MAXINE_SIDECAR_READ_ALL'],
  'static-tokens-file': ['staticTokensFile', 'MAXINE_STATIC_TOKENS_FILE'],
  'jwt-issuer': ['jwtIssuer', 'MAXINE_JWT_ISSUER'],
  'jwt-audience': ['jwtAudience', 'MAXINE_JWT_AUDIENCE'],
  'jwt-jwks-url': ['jwtJwksUrl', 'MAXINE_JWT_JWKS_URL'],
  'jwt-public-key-file': ['jwtPublicKeyFile', 'MAXINE_JWT_PUBLIC_KEY_FILE'],
  'jwt-user-claim': ['jwtUserClaim', 'MAXINE_JWT_USER_CLAIM'],
  'jwt-groups-claim': ['jwtGroupsClaim', 'MAXINE_JWT_GROUPS_CLAIM'],
  'jwt-clock-skew-seconds': ['jwtClockSkewSeconds', 'MAXINE_JWT_CLOCK_SKEW_SECONDS'],
  'identity-rate-limit': ['identityRateLimit', 'MAXINE_IDENTITY_RATE_LIMIT'],
  'identity-rate-burst': ['identityRateBurst', 'MAXINE_IDENTITY_RATE_BURST'],
  'audit-dir': ['auditDir', 'MAXINE_AUDIT_DIR'],
  'audit-max-size': ['auditMaxSize', 'MAXINE_AUDIT_MAX_SIZE'],
  'audit-keep': ['auditKeep', 'MAXINE_AUDIT_KEEP'],
  'audit-aggregate-seconds': ['auditAggregateSeconds', 'MAXINE_AUDIT_AGGREGATE_SECONDS'],
  'audit-noise-max-size': ['auditNoiseMaxSize', 'MAXINE_AUDIT_NOISE_MAX_SIZE'],
  'audit-noise-keep': ['auditNoiseKeep', 'MAXINE_AUDIT_NOISE_KEEP'],
  'audit-allowed-reads': ['auditAllowedReads', 'MAXINE_AUDIT_ALLOWED_READS'],
  'audit-reads-interval-ms': ['auditReadsIntervalMs', 'MAXINE_AUDIT_READS_INTERVAL_MS'],
  'audit-reads-max-keys': ['auditReadsMaxKeys', 'MAXINE_AUDIT_READS_MAX_KEYS'],
  'address-rate-limit': ['addressRateLimit', 'MAXINE_ADDRESS_RATE_LIMIT'],
  'address-rate-burst': ['addressRateBurst', 'MAXINE_ADDRESS_RATE_BURST'],
  'address-rate-max-addresses': ['addressRateMaxAddresses', 'MAXINE_ADDRESS_RATE_MAX_ADDRESSES'],
  'metrics-auth': ['metricsAuth', 'MAXINE_METRICS_AUTH'],
  'headers-timeout-ms': ['headersTimeoutMs', 'MAXINE_HEADERS_TIMEOUT_MS'],
  'body-timeout-ms': ['bodyTimeoutMs', 'MAXINE_BODY_TIMEOUT_MS'],
  webhook: ['webhook', 'MAXINE_WEBHOOK'],
  'webhook-host': ['webhookHost', 'MAXINE_WEBHOOK_HOST'],
  'webhook-port': ['webhookPort', 'MAXINE_WEBHOOK_PORT'],
  'webhook-config-name': ['webhookConfigName', 'MAXINE_WEBHOOK_CONFIG_NAME'],
  'webhook-dns-names': ['webhookDnsNames', 'MAXINE_WEBHOOK_DNS_NAMES'],
  'webhook-ips': ['webhookIps', 'MAXINE_WEBHOOK_IPS'],
  'sidecar-image': ['sidecarImage', 'MAXINE_SIDECAR_IMAGE'],
  'sidecar-operator-url': ['sidecarOperatorUrl', 'MAXINE_SIDECAR_OPERATOR_URL'],
  store: ['store', 'MAXINE_STORE'],
  'store-dir': ['storeDir', 'MAXINE_STORE_DIR'],
  'store-fsync': ['storeFsync', 'MAXINE_STORE_FSYNC'],
  'store-fsync-interval-ms': ['storeFsyncIntervalMs', 'MAXINE_STORE_FSYNC_INTERVAL_MS'],
  'store-renew-interval-ms': ['storeRenewIntervalMs', 'MAXINE_STORE_RENEW_INTERVAL_MS'],
  'store-compact-bytes': ['storeCompactBytes', 'MAXINE_STORE_COMPACT_BYTES'],
  'store-redis-url': ['storeRedisUrl', 'MAXINE_STORE_REDIS_URL'],
  'store-redis-prefix': ['storeRedisPrefix', 'MAXINE_STORE_REDIS_PREFIX'],
  'store-redis-timeout-ms': ['storeRedisTimeoutMs', 'MAXINE_STORE_REDIS_TIMEOUT_MS'],
  'store-redis-shared': ['storeRedisShared', 'MAXINE_STORE_REDIS_SHARED'],
  'store-redis-lock-ms': ['storeRedisLockMs', 'MAXINE_STORE_REDIS_LOCK_MS'],
  'mqtt-url': ['mqttUrl', 'MAXINE_MQTT_URL'],
  'mqtt-username': ['mqttUsername', 'MAXINE_MQTT_USERNAME'],
  'mqtt-password-file': ['mqttPasswordFile', 'MAXINE_MQTT_PASSWORD_FILE'],
  'mqtt-ca-file': ['mqttCaFile', 'MAXINE_MQTT_CA_FILE'],
  'mqtt-cert-file': ['mqttCertFile', 'MAXINE_MQTT_CERT_FILE'],
  'mqtt-key-file': ['mqttKeyFile', 'MAXINE_MQTT_KEY_FILE'],
  'mqtt-client-id': ['mqttClientId', 'MAXINE_MQTT_CLIENT_ID'],
  'mqtt-topic-prefix': ['mqttTopicPrefix', 'MAXINE_MQTT_TOPIC_PREFIX'],
  'mqtt-queue-messages': ['mqttQueueMessages', 'MAXINE_MQTT_QUEUE_MESSAGES'],
  'mqtt-queue-bytes': ['mqttQueueBytes', 'MAXINE_MQTT_QUEUE_BYTES'],
  'mqtt-inflight': ['mqttInflight', 'MAXINE_MQTT_INFLIGHT'],
  'mqtt-reconnect-min-ms': ['mqttReconnectMinMs', 'MAXINE_MQTT_RECONNECT_MIN_MS'],
  'mqtt-reconnect-max-ms': ['mqttReconnectMaxMs', 'MAXINE_MQTT_RECONNECT_MAX_MS'],
  'mqtt-state-coalesce-ms': ['mqttStateCoalesceMs', 'MAXINE_MQTT_STATE_COALESCE_MS'],
  'mqtt-inbound': ['mqttInbound', 'MAXINE_MQTT_INBOUND'],
  'mqtt-users-file': ['mqttUsersFile', 'MAXINE_MQTT_USERS_FILE'],
  'mqtt-inbound-rate': ['mqttInboundRate', 'MAXINE_MQTT_INBOUND_RATE'],
  'mqtt-inbound-max-bytes': ['mqttInboundMaxBytes', 'MAXINE_MQTT_INBOUND_MAX_BYTES'],
  'mqtt-inbound-user-rate': ['mqttInboundUserRate', 'MAXINE_MQTT_INBOUND_USER_RATE'],
} as const satisfies Record<string, readonly [keyof OperatorConfig, string]>;

export const USAGE = `Usage: maxine-operator [options]

Options (each also read from the environment variable shown):
${Object.entries(OPTIONS)
  .map(([flag, [, env]]) => `  --${flag.padEnd(28)} ${env}`)
  .join('\n')}
  --disallow-undeclared          same as --allow-undeclared=false
  --help`;

export function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): OperatorConfig | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      ...Object.fromEntries(
        Object.keys(OPTIONS).map((flag) => [flag, { type: 'string' as const }]),
      ),
      'disallow-undeclared': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) return 'help';
  const flags = values as Record<string, string | boolean | undefined>;
  const raw: Record<string, unknown> = {};
  for (const [flag, [key, envName]] of Object.entries(OPTIONS)) {
    // An empty variable counts as unset, so `MAXINE_PORT=` does not mean port 0.
    const fromEnv = env[envName]?.trim() === '' ? undefined : env[envName];
    const value = flags[flag] ?? fromEnv;
    if (value !== undefined) raw[key] = value;
  }
  if (values['disallow-undeclared'] === true) raw.allowUndeclared = 'false';
  // The broker password: from the environment only (a flag would show in `ps`), never logged.
  const mqttPassword = env.MAXINE_MQTT_PASSWORD;
  if (mqttPassword !== undefined && mqttPassword !== '') raw.mqttPassword = mqttPassword;
  // In a cluster, services are declared with MaxineService objects unless told otherwise.
  if (raw.allowUndeclared === undefined && raw.mode === 'kubernetes') raw.allowUndeclared = 'false';
  // In a cluster, /metrics (which names every namespace's services) needs a principal.
  if (raw.metricsAuth === undefined) raw.metricsAuth = raw.mode === 'kubernetes' ? 'true' : 'false';
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    // Name the flag and the variable the person can change, not our internal key.
    const named = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const option = Object.entries(OPTIONS).find(([, [k]]) => k === key);
      return { ...issue, path: option ? [`--${option[0]} (${option[1][1]})`] : issue.path };
    });
    throw validationError('configuration', { issues: named });
  }
  return parsed.data;
}
