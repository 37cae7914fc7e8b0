/**
 * The three Maxine resources (maxine.io/v1alpha1) as zod schemas: the single source of the
 * TypeScript types (inferred below), of request parsing in the folder source and the
 * controller, and of the CRD YAML (`npm run gen:crds`).
 *
 * Cross-field rules live in `superRefine` so every source gets the same answer. Where a rule
 * can be written in CEL it is also attached as `x-kubernetes-validations` metadata, so the
 * API server rejects the object at `kubectl apply` time; rules that CEL cannot express are
 * reported through the `Invalid` condition instead.
 */
import { z } from 'zod';
import { dnsLabel, dnsSubdomain, labelKey, labelMap } from './names.js';
import { INVALID_REGEX_MESSAGE, regexSyntaxProblem } from './regex-safety.js';

export const API_GROUP = 'maxine.io';
export const API_VERSION = 'v1alpha1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/**
 * A CEL rule. Field names that are CEL reserved words are written escaped (`namespace` is
 * `self.__namespace__`): API servers before 1.31 accept only that form, later ones both. Names
 * with `_`, `.`, `-` or `/` are escaped too (https://kubernetes.io/docs/reference/using-api/cel/).
 */
type Cel = { rule: string; message: string };
const cel = (...rules: Cel[]) => ({ 'x-kubernetes-validations': rules });

export const STRATEGIES = [
  'round-robin',
  'weighted-round-robin',
  'random',
  'weighted-random',
  'least-connections',
  'power-of-two-choices',
  'consistent-hash',
  'rendezvous-hash',
  'locality-aware',
] as const;
export const strategySchema = z.enum(STRATEGIES);
export type Strategy = z.infer<typeof strategySchema>;
export const HASH_STRATEGIES: ReadonlySet<Strategy> = new Set([
  'consistent-hash',
  'rendezvous-hash',
]);

const port = z.int().min(1).max(65535);

export const servicePortSchema = z.strictObject({
  name: dnsLabel.optional().describe('Port name, for example "http" or "grpc".'),
  port: port.describe('Port number the instances listen on.'),
  protocol: z
    .enum(['http', 'http2', 'grpc', 'tcp'])
    .default('http')
    .describe('Protocol spoken on the port.'),
});

export const serviceVersionSchema = z.strictObject({
  name: dnsLabel.describe('Version name, for example "v1" or "canary".'),
  /** Pod labels that make a pod (or a registration's `version`) belong to this version. */
  labels: labelMap
    .optional()
    .describe("Pod labels that make a pod (or a registration's version) belong to this version."),
  weight: z
    .int()
    .min(0)
    .max(100)
    .describe('Percentage of traffic for this version; the weights of all versions sum to 100.'),
});

/** Where the key of a hash strategy comes from when the caller does not pass `key=`. */
const hashKeySource = z
  .string()
  .max(256)
  .regex(
    /^(header:[A-Za-z0-9-]+|query:[A-Za-z0-9_.-]+|cookie:[A-Za-z0-9_.-]+|source-ip)$/,
    'must be "header:NAME", "query:NAME", "cookie:NAME" or "source-ip"',
  );

export const loadBalancingSchema = z
  .strictObject({
    strategy: strategySchema
      .default('round-robin')
      .describe('How an instance is chosen for each request.'),
    hashKey: hashKeySource
      .optional()
      .describe(
        'Where a hash strategy reads its key when the caller passes none: "header:NAME", "query:NAME", "cookie:NAME" or "source-ip". Required by consistent-hash and rendezvous-hash.',
      ),
    virtualNodes: z
      .int()
      .min(1)
      .max(1000)
      .optional()
      .describe('Points per instance on the consistent-hash ring.'),
  })
  .superRefine((lb, ctx) => {
    if (HASH_STRATEGIES.has(lb.strategy) && lb.hashKey === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['hashKey'],
        message: `strategy "${lb.strategy}" needs a hashKey (for example "header:x-user-id")`,
      });
    }
  })
  .meta(
    cel({
      rule: "!has(self.strategy) || !(self.strategy in ['consistent-hash', 'rendezvous-hash']) || has(self.hashKey)",
      message: 'a hash strategy needs a hashKey (for example "header:x-user-id")',
    }),
  );

export const healthCheckSchema = z
  .strictObject({
    exec: z
      .strictObject({
        command: z
          .array(z.string().min(1).max(4096))
          .min(1)
          .max(64)
          .describe('Command and arguments; exit status 0 means healthy.'),
      })
      .optional()
      .describe('Check by running a command.'),
    http: z
      .strictObject({
        path: z
          .string()
          .max(2048)
          .regex(/^\//, 'must start with "/"')
          .describe('Request path, starting with "/".'),
        port: port.optional().describe('Port to probe.'),
        scheme: z.enum(['http', 'https']).default('http').describe('URL scheme of the probe.'),
      })
      .optional()
      .describe('Check by an HTTP request.'),
    tcp: z
      .strictObject({ port: port.optional().describe('Port to probe.') })
      .optional()
      .describe('Check by opening a TCP connection.'),
    intervalSeconds: z.int().min(1).max(3600).default(10).describe('Seconds between checks.'),
    timeoutSeconds: z
      .int()
      .min(1)
      .max(300)
      .optional()
      .describe(
        'Seconds before a check fails; at most intervalSeconds. Default: 5, or intervalSeconds if shorter.',
      ),
    failureThreshold: z
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe('Consecutive failures before an instance is marked unhealthy.'),
    successThreshold: z
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Consecutive successes before an unhealthy instance is marked healthy again.'),
  })
  .superRefine((hc, ctx) => {
    const kinds = [hc.exec, hc.http, hc.tcp].filter((k) => k !== undefined).length;
    if (kinds !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `exactly one of exec, http or tcp must be set (found ${kinds})`,
      });
    }
    if (hc.timeoutSeconds !== undefined && hc.timeoutSeconds > hc.intervalSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeoutSeconds'],
        message: `timeoutSeconds (${hc.timeoutSeconds}) must not exceed intervalSeconds (${hc.intervalSeconds})`,
      });
    }
  })
  .meta(
    cel(
      {
        rule: '(has(self.exec) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.tcp) ? 1 : 0) == 1',
        message: 'exactly one of exec, http or tcp must be set',
      },
      {
        rule: '!has(self.timeoutSeconds) || !has(self.intervalSeconds) || self.timeoutSeconds <= self.intervalSeconds',
        message: 'timeoutSeconds must not exceed intervalSeconds',
      },
    ),
  );

export const heartbeatSchema = z.strictObject({
  ttlSeconds: z
    .int()
    .min(1)
    .max(3600)
    .optional()
    .describe(
      "Lease length: an instance that does not renew it within this time goes critical. Default: the operator's --default-ttl-seconds (30).",
    ),
  /** How long an instance stays listed as critical after its lease lapsed, before removal. */
  removeAfterSeconds: z
    .int()
    .min(0)
    .max(86400)
    .optional()
    .describe(
      'Seconds an instance stays listed as critical after its lease lapsed, before removal.',
    ),
});

/** A connection-pool limit of the circuit breaker. */
const poolLimit = z.int().min(1).max(1_000_000);
const POOL_NOTE =
  'A connection-pool limit rendered into the mesh configuration only: the Maxine sidecar does not enforce it itself.';

export const circuitBreakerSchema = z
  .strictObject({
    failureThreshold: z
      .int()
      .min(1)
      .max(1000)
      .default(5)
      .describe('Consecutive failures that open the circuit of an instance.'),
    openSeconds: z
      .int()
      .min(1)
      .max(3600)
      .default(30)
      .describe('Seconds the circuit stays open the first time.'),
    backoffMultiplier: z
      .number()
      .min(1)
      .max(10)
      .default(2)
      .describe('Factor applied to the open time each time the circuit opens again.'),
    maxOpenSeconds: z
      .int()
      .min(1)
      .max(86400)
      .optional()
      .describe(
        'Upper bound of the open time; at least openSeconds. Default: 300, or openSeconds if longer.',
      ),
    halfOpenProbes: z
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Trial requests let through while the circuit is half-open.'),
    maxConnections: poolLimit
      .optional()
      .describe(
        `Most TCP connections to the whole service at once (Istio connectionPool.tcp.maxConnections). ${POOL_NOTE}`,
      ),
    maxPendingRequests: poolLimit
      .optional()
      .describe(
        `Most requests queued while waiting for a connection (Istio connectionPool.http.http1MaxPendingRequests). ${POOL_NOTE}`,
      ),
    maxRequests: poolLimit
      .optional()
      .describe(
        `Most requests in flight to the whole service at once (Istio connectionPool.http.http2MaxRequests). ${POOL_NOTE}`,
      ),
  })
  .superRefine((cb, ctx) => {
    if (cb.maxOpenSeconds !== undefined && cb.maxOpenSeconds < cb.openSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxOpenSeconds'],
        message: `maxOpenSeconds (${cb.maxOpenSeconds}) must be at least openSeconds (${cb.openSeconds})`,
      });
    }
  })
  .meta(
    cel({
      rule: '!has(self.maxOpenSeconds) || !has(self.openSeconds) || self.maxOpenSeconds >= self.openSeconds',
      message: 'maxOpenSeconds must be at least openSeconds',
    }),
  );

export const rateLimitSchema = z.strictObject({
  requestsPerSecond: z
    .number()
    .positive()
    .max(1_000_000)
    .describe('Sustained request rate (token bucket refill rate).'),
  burst: z.int().min(1).max(1_000_000).describe('Largest burst (token bucket size).'),
});

/** Failure classes a retry may react to (Envoy's `retry_on` names). */
export const RETRY_CONDITIONS = [
  '5xx',
  'gateway-error',
  'connect-failure',
  'reset',
  'retriable-4xx',
  'refused-stream',
] as const;
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];
export const DEFAULT_RETRY_ON: readonly RetryCondition[] = ['5xx', 'connect-failure', 'reset'];

/** Longest request or try timeout: one hour. */
const timeoutSeconds = z.number().positive().max(3600);

export const retriesSchema = z.strictObject({
  attempts: z
    .int()
    .min(1)
    .max(10)
    .describe('Retries after the first try of a failed request (so at most attempts + 1 tries).'),
  perTryTimeoutSeconds: timeoutSeconds
    .optional()
    .describe('Seconds each try may take, for example 0.5. Default: no per-try limit.'),
  retryOn: z
    .array(z.enum(RETRY_CONDITIONS))
    .min(1)
    .max(RETRY_CONDITIONS.length)
    .refine((on) => new Set(on).size === on.length, 'retry conditions must not repeat')
    .default([...DEFAULT_RETRY_ON])
    .meta({ 'x-kubernetes-list-type': 'set' })
    .describe(
      'Failures that are retried: 5xx, gateway-error (502, 503, 504), connect-failure, reset, retriable-4xx (409), refused-stream. Default: 5xx, connect-failure, reset.',
    ),
});

export const serviceRefSchema = z.strictObject({
  name: dnsLabel.describe('Service name.'),
  namespace: dnsLabel.optional().describe('Service namespace.'),
});

export const blockedSchema = z
  .strictObject({
    registration: z.boolean().default(false).describe('Reject new registrations.'),
    discovery: z.boolean().default(false).describe('Hide the service from discovery.'),
    reason: z.string().min(1).max(1024).describe('Why the service is blocked.'),
  })
  .superRefine((b, ctx) => {
    if (!b.registration && !b.discovery) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'blocked needs registration: true and/or discovery: true',
      });
    }
  })
  .meta(
    cel({
      rule: '(has(self.registration) && self.registration) || (has(self.discovery) && self.discovery)',
      message: 'blocked needs registration: true and/or discovery: true',
    }),
  );

export const meshSchema = z.strictObject({
  istio: z.boolean().default(false).describe('Integrate with Istio.'),
  linkerd: z.boolean().default(false).describe('Integrate with Linkerd.'),
});

const configKey = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9_.-]+$/, 'config keys use letters, digits, "_", "." and "-"');

/** The most `configFrom` entries one MaxineService may list. */
export const MAX_CONFIG_SOURCES = 16;

/**
 * One ConfigMap or Secret of the service's namespace whose keys join `spec.config`
 * (docs/resources.md, docs/decisions/0023-config-from-secrets.md).
 */
export const configSourceSchema = z
  .strictObject({
    configMap: dnsSubdomain
      .optional()
      .describe('Name of a ConfigMap in the namespace of the MaxineService.'),
    secret: dnsSubdomain
      .optional()
      .describe(
        'Name of a Secret in the namespace of the MaxineService. The operator announces only its keys and a digest; the sidecar reads the values itself.',
      ),
    keys: z
      .array(configKey)
      .min(1)
      .max(256)
      .optional()
      .describe('Only these keys of the object (default: all of them).'),
    prefix: z
      .string()
      .max(63)
      .regex(/^[A-Za-z0-9_.-]*$/, 'a prefix uses letters, digits, "_", "." and "-"')
      .optional()
      .describe('Put in front of each key taken from the object, e.g. "db.".'),
    optional: z
      .boolean()
      .default(false)
      .describe(
        'When true, a missing object or key is no error. When false, the last complete config stays in force while it is missing.',
      ),
  })
  .superRefine((src, ctx) => {
    if ((src.configMap === undefined) === (src.secret === undefined))
      ctx.addIssue({ code: 'custom', path: [], message: 'exactly one of configMap or secret' });
  })
  .meta(
    cel({
      rule: 'has(self.configMap) != has(self.secret)',
      message: 'exactly one of configMap or secret',
    }),
  );
export type ConfigSource = z.infer<typeof configSourceSchema>;

function uniqueBy<T>(items: readonly T[], key: (t: T) => string): string | undefined {
  const seen = new Set<string>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return undefined;
}

export const serviceSpecSchema = z
  .strictObject({
    selector: labelMap
      .optional()
      .describe('Labels of the pods that are instances of this service.'),
    ports: z.array(servicePortSchema).max(32).optional().describe('Ports the instances expose.'),
    versions: z
      .array(serviceVersionSchema)
      .max(16)
      .optional()
      .describe('Versions for traffic splitting; their weights sum to 100.'),
    loadBalancing: loadBalancingSchema.optional().describe('How discovery picks an instance.'),
    healthCheck: healthCheckSchema
      .optional()
      .describe('Active health check; exactly one of exec, http or tcp.'),
    heartbeat: heartbeatSchema.optional().describe('TTL lease that instances must renew.'),
    circuitBreaker: circuitBreakerSchema
      .optional()
      .describe('Per-instance circuit breaker with exponential back-off.'),
    rateLimit: rateLimitSchema.optional().describe('Request rate limit (token bucket).'),
    retries: retriesSchema
      .optional()
      .describe('Retries of failed requests, rendered into the service-mesh configuration.'),
    requestTimeoutSeconds: timeoutSeconds
      .optional()
      .describe(
        'Seconds a whole request may take, retries included, for example 1.5. Default: no limit.',
      ),
    config: z
      .record(configKey, z.string().max(65536))
      .optional()
      .describe(
        'Configuration key/value pairs served to the instances. They win over keys from configFrom.',
      ),
    configFrom: z
      .array(configSourceSchema)
      .max(MAX_CONFIG_SOURCES)
      .optional()
      .describe(
        'ConfigMaps and Secrets whose keys join config: a later entry wins over an earlier one, inline config wins over all.',
      ),
    dependencies: z
      .array(serviceRefSchema)
      .max(64)
      .optional()
      .describe('Services this service calls.'),
    serviceAccount: dnsSubdomain
      .optional()
      .describe('Name of the Kubernetes ServiceAccount the instances run as.'),
    blocked: blockedSchema
      .optional()
      .describe('Block registration and/or discovery of the service.'),
    mesh: meshSchema.optional().describe('Service-mesh integrations.'),
  })
  .superRefine((spec, ctx) => {
    const versions = spec.versions ?? [];
    if (versions.length > 0) {
      const sum = versions.reduce((acc, v) => acc + v.weight, 0);
      if (sum !== 100) {
        ctx.addIssue({
          code: 'custom',
          path: ['versions'],
          message: `version weights must sum to 100 (they sum to ${sum})`,
        });
      }
      const dup = uniqueBy(versions, (v) => v.name);
      if (dup !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['versions'],
          message: `version "${dup}" is listed twice`,
        });
      }
    }
    const dupPort = uniqueBy(spec.ports ?? [], (p) => String(p.port));
    if (dupPort !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['ports'], message: `port ${dupPort} is listed twice` });
    }
  })
  .meta(
    cel({
      rule: '!has(self.versions) || size(self.versions) == 0 || self.versions.map(v, v.weight).sum() == 100',
      message: 'version weights must sum to 100',
    }),
  );

const conditionSchema = z.strictObject({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().max(1024),
  message: z.string().max(32768),
  lastTransitionTime: z.string(),
  observedGeneration: z.int().min(0).optional(),
});
export type Condition = z.infer<typeof conditionSchema>;

const instanceCountsSchema = z.strictObject({
  total: z.int().min(0),
  passing: z.int().min(0),
  warning: z.int().min(0),
  critical: z.int().min(0),
});

const meshStatusSchema = z.strictObject({
  objects: z
    .array(z.string().max(512))
    .max(64)
    .describe('The objects rendered for this mesh, as "Kind/name".'),
  differences: z
    .array(
      z.strictObject({
        object: z.string().max(512).optional().describe('"Kind/name" of the object concerned.'),
        subject: z
          .string()
          .max(256)
          .describe('The field of the service the difference is about, e.g. spec.retries.'),
        message: z.string().max(2048).describe('What the mesh does instead, and why.'),
      }),
    )
    .max(64)
    .describe('Where the mesh cannot express exactly what the service says.'),
});
export type MeshStatus = z.infer<typeof meshStatusSchema>;

export const resourceStatusSchema = z.strictObject({
  observedGeneration: z
    .int()
    .min(0)
    .optional()
    .describe('The metadata.generation this status describes.'),
  conditions: z
    .array(conditionSchema)
    .max(16)
    .optional()
    .describe('Latest observations of the resource, such as Ready.'),
  /** MaxineService only: instance counts as the registry sees them. */
  instances: instanceCountsSchema
    .optional()
    .describe('MaxineService only: instance counts by health.'),
  /** MaxineService only: `ready/total`, for the READY printer column. */
  ready: z.string().max(32).optional().describe('MaxineService only: "ready/total" instances.'),
  /**
   * MaxineService only: the config version in force and its hash, so a restarted operator
   * keeps the version of the same config and numbers a changed one above it.
   */
  config: z
    .strictObject({
      version: z.int().min(0).describe('The config version (config_changed.data.version).'),
      hash: z
        .string()
        .max(128)
        .optional()
        .describe('Content hash of the config (the sidecar ETag); absent when there is none.'),
    })
    .optional()
    .describe('MaxineService only: the config version in force and its content hash.'),
  /** MaxineService only: what was rendered for each mesh the service integrates with. */
  mesh: z
    .strictObject({
      istio: meshStatusSchema.optional().describe('Objects and differences for Istio.'),
      linkerd: meshStatusSchema.optional().describe('Objects and differences for Linkerd.'),
    })
    .optional()
    .describe('MaxineService only: the rendered mesh objects and their differences.'),
});
export type ResourceStatus = z.infer<typeof resourceStatusSchema>;

export const objectMetaSchema = z.object({
  name: dnsLabel,
  namespace: dnsLabel.default('default'),
  labels: labelMap.optional(),
  annotations: z.record(labelKey, z.string()).optional(),
  generation: z.int().min(0).optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
});

// ---- MaxineIntention ----

const httpMethod = z.enum([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'CONNECT',
  'TRACE',
]);
const wildcardOrLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/, 'must be "*" or a DNS-1123 label');

/**
 * A user-supplied regular expression (a header value or request path pattern). It must be valid
 * RE2 syntax (common/regex-safety.ts): Maxine evaluates it with an RE2 engine, in time linear
 * in the input whatever the pattern (no ReDoS), and renders it into Istio/Envoy, whose engine
 * is RE2 too. RE2 has no lookaround and no backreferences, so patterns using them are refused.
 *
 * This rule is zod-only, on purpose: CEL cannot parse RE2, and even a `!self.matches(...)` rule
 * for lookaround and backreferences alone does not fit the API server's CEL cost budget: it is
 * charged per character (maxLength 1024) for every pattern the lists could hold (256 sources x
 * 64 permissions, x 32 headers). kube-apiserver 1.34 refuses such a CRD: "estimated rule cost
 * exceeds budget" by 7.4x on pathRegex and over 100x on the header regex. That is acceptable
 * because the operator validates every object with these zod schemas after reading it from the
 * API server: an object with an invalid pattern is reported Invalid in its status and never
 * applied, so its patterns are neither evaluated nor rendered into a mesh.
 */
export const safeRegex = z
  .string()
  .max(1024)
  .superRefine((pattern, ctx) => {
    const problem = regexSyntaxProblem(pattern);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${INVALID_REGEX_MESSAGE}: ${problem}` });
    }
  });

/** How the operator treats invalid patterns, for the `.describe()` text of regex fields. */
const SAFE_REGEX_NOTE =
  'RE2 syntax (no lookaround or backreferences), matched in linear time; the operator refuses other patterns and reports the object Invalid.';

const HEADER_CONDITIONS = ['present', 'exact', 'prefix', 'suffix', 'contains', 'regex'] as const;

export const headerMatchSchema = z
  .strictObject({
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
      .describe('Header name.'),
    present: z.boolean().optional().describe('true: the header is present; false: it is absent.'),
    exact: z.string().max(4096).optional().describe('The header value equals this.'),
    prefix: z.string().max(4096).optional().describe('The header value starts with this.'),
    suffix: z.string().max(4096).optional().describe('The header value ends with this.'),
    contains: z.string().max(4096).optional().describe('The header value contains this.'),
    regex: safeRegex
      .optional()
      .describe(`The whole header value matches this regular expression: ${SAFE_REGEX_NOTE}`),
    invert: z.boolean().optional().describe('Negate the whole condition.'),
  })
  .superRefine((h, ctx) => {
    const set = HEADER_CONDITIONS.filter((c) => h[c] !== undefined);
    if (set.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'only one of present, exact, prefix, suffix, contains, regex may be set',
      });
    }
  })
  .meta(
    cel({
      rule: HEADER_CONDITIONS.map((c) => `(has(self.${c}) ? 1 : 0)`).join(' + ') + ' <= 1',
      message: 'only one of present, exact, prefix, suffix, contains, regex may be set',
    }),
  )
  .describe(
    'A header condition: at most one of present, exact, prefix, suffix, contains or regex; none tests that the header is present.',
  );

export const httpPermissionMatchSchema = z
  .strictObject({
    pathExact: z
      .string()
      .max(2048)
      .regex(/^\//, 'must start with "/"')
      .optional()
      .describe('Match this exact path.'),
    pathPrefix: z
      .string()
      .max(2048)
      .regex(/^\//, 'must start with "/"')
      .optional()
      .describe('Match paths with this prefix.'),
    pathRegex: safeRegex
      .optional()
      .describe(`Match the whole path against this regular expression: ${SAFE_REGEX_NOTE}`),
    methods: z.array(httpMethod).max(9).optional().describe('Match these HTTP methods only.'),
    headers: z
      .array(headerMatchSchema)
      .max(32)
      .optional()
      .describe('Header conditions; all must match.'),
  })
  .superRefine((m, ctx) => {
    const paths = [m.pathExact, m.pathPrefix, m.pathRegex].filter((v) => v !== undefined);
    if (paths.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'only one of pathExact, pathPrefix or pathRegex may be set',
      });
    }
  })
  .meta(
    cel({
      rule: '(has(self.pathExact) ? 1 : 0) + (has(self.pathPrefix) ? 1 : 0) + (has(self.pathRegex) ? 1 : 0) <= 1',
      message: 'only one of pathExact, pathPrefix or pathRegex may be set',
    }),
  );

export const permissionSchema = z.strictObject({
  action: z.enum(['allow', 'deny']).describe('What happens to requests that match.'),
  http: httpPermissionMatchSchema.describe('HTTP request match; at most one path condition.'),
});

export const intentionSourceSchema = z
  .strictObject({
    name: wildcardOrLabel.describe('Calling service name, or "*".'),
    namespace: wildcardOrLabel
      .optional()
      .describe('Namespace of the caller, or "*" (default: the intention\'s own namespace).'),
    action: z
      .enum(['allow', 'deny'])
      .optional()
      .describe('Allow or deny every request of this source; excludes permissions.'),
    permissions: z
      .array(permissionSchema)
      .max(64)
      .optional()
      .describe('Per-request HTTP rules; excludes action.'),
    description: z.string().max(512).optional().describe('Free-text note.'),
  })
  .superRefine((s, ctx) => {
    const hasAction = s.action !== undefined;
    const hasPermissions = s.permissions !== undefined && s.permissions.length > 0;
    if (hasAction === hasPermissions) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message:
          'a source needs exactly one of action or permissions (they are mutually exclusive)',
      });
    }
  })
  .meta(
    cel({
      rule: 'has(self.action) != (has(self.permissions) && size(self.permissions) > 0)',
      message: 'a source needs exactly one of action or permissions',
    }),
  );

export const intentionSpecSchema = z
  .strictObject({
    destination: z
      .strictObject({
        name: wildcardOrLabel.describe('Destination service name, or "*".'),
        namespace: dnsLabel
          .optional()
          .describe(
            "Namespace of the destination service (default: the intention's own namespace).",
          ),
      })
      .describe('The service the intention controls access to.'),
    sources: z
      .array(intentionSourceSchema)
      .min(1)
      .max(256)
      .describe('Calling services and what they may do.'),
  })
  .superRefine((spec, ctx) => {
    const dup = uniqueBy(spec.sources, (s) =>
      s.namespace === undefined ? s.name : `${s.namespace}/${s.name}`,
    );
    if (dup !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['sources'],
        message: `source "${dup}" is listed twice`,
      });
    }
  });

// ---- MaxineACL ----

export const ACL_VERBS = ['register', 'discover', 'read', 'write', 'admin'] as const;
export const aclVerbSchema = z.enum(ACL_VERBS);

/** `namespace/name` where either part may be `*`, or a bare `*`. */
export const servicePattern = z
  .string()
  .max(128)
  .regex(
    /^(\*|(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)\/(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?))$/,
    'must be "namespace/name" where either part may be "*" (for example "shop/*")',
  );

export const aclSubjectSchema = z
  .strictObject({
    kind: z.enum(['ServiceAccount', 'User', 'Group']).describe('Kind of subject.'),
    name: z.string().min(1).max(253).describe('Name of the subject.'),
    namespace: dnsLabel
      .optional()
      .describe(
        'Namespace of a ServiceAccount; required for a ServiceAccount, not allowed otherwise.',
      ),
  })
  .superRefine((s, ctx) => {
    if (s.kind === 'ServiceAccount' && s.namespace === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['namespace'],
        message: 'a ServiceAccount subject needs a namespace',
      });
    }
    if (s.kind !== 'ServiceAccount' && s.namespace !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['namespace'],
        message: 'namespace applies only to ServiceAccount subjects',
      });
    }
  })
  .meta(
    cel(
      {
        rule: "self.kind != 'ServiceAccount' || has(self.__namespace__)",
        message: 'a ServiceAccount subject needs a namespace',
      },
      {
        rule: "self.kind == 'ServiceAccount' || !has(self.__namespace__)",
        message: 'namespace applies only to ServiceAccount subjects',
      },
    ),
  );

export const aclRuleSchema = z.strictObject({
  services: z
    .array(servicePattern)
    .min(1)
    .max(64)
    .describe('Service patterns "namespace/name"; either part may be "*".'),
  verbs: z.array(aclVerbSchema).min(1).max(5).describe('Operations the rule covers.'),
  effect: z.enum(['allow', 'deny']).default('allow').describe('Allow or deny the operations.'),
});

export const aclSpecSchema = z.strictObject({
  subjects: z.array(aclSubjectSchema).min(1).max(256).describe('Who the rules apply to.'),
  rules: z.array(aclRuleSchema).min(1).max(256).describe('What the subjects may do.'),
});

// ---- envelopes ----

function resource<K extends string, S extends z.ZodType>(kind: K, spec: S) {
  return z.object({
    apiVersion: z.literal(API_GROUP_VERSION),
    kind: z.literal(kind),
    metadata: objectMetaSchema,
    spec,
    status: resourceStatusSchema.optional(),
  });
}

export const maxineServiceSchema = resource('MaxineService', serviceSpecSchema);
export const maxineIntentionSchema = resource('MaxineIntention', intentionSpecSchema);
export const maxineAclSchema = resource('MaxineACL', aclSpecSchema);

export const maxineResourceSchema = z.discriminatedUnion('kind', [
  maxineServiceSchema,
  maxineIntentionSchema,
  maxineAclSchema,
]);

export type ServiceSpec = z.infer<typeof serviceSpecSchema>;
export type IntentionSpec = z.infer<typeof intentionSpecSchema>;
export type AclSpec = z.infer<typeof aclSpecSchema>;
export type MaxineService = z.infer<typeof maxineServiceSchema>;
export type MaxineIntention = z.infer<typeof maxineIntentionSchema>;
export type MaxineACL = z.infer<typeof maxineAclSchema>;
export type MaxineResource = z.infer<typeof maxineResourceSchema>;
export type ResourceKind = MaxineResource['kind'];
export const RESOURCE_KINDS: readonly ResourceKind[] = [
  'MaxineService',
  'MaxineIntention',
  'MaxineACL',
];

/** The identity of a resource: `Kind/namespace/name`. */
export function resourceKey(r: {
  kind: string;
  metadata: { namespace: string; name: string };
}): string {
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}

/** The check timeout in force: as given, else 5 s, but never longer than the interval. */
export function effectiveTimeoutSeconds(hc: {
  intervalSeconds: number;
  timeoutSeconds?: number;
}): number {
  return hc.timeoutSeconds ?? Math.min(5, hc.intervalSeconds);
}

/** The longest open time of a circuit: as given, else 300 s, but never shorter than openSeconds. */
export function effectiveMaxOpenSeconds(cb: {
  openSeconds: number;
  maxOpenSeconds?: number;
}): number {
  return cb.maxOpenSeconds ?? Math.max(300, cb.openSeconds);
}

/** How deep `protoKeyPath` looks (resources are shallow; deeper input is not walked). */
const PROTO_SEARCH_DEPTH = 16;

/**
 * The path of the first own `__proto__` key in `value` (as JSON.parse and YAML give it), if
 * any. zod's records drop such a key without an issue, so a resource holding one would lose
 * data silently; it is refused instead, naming where.
 */
export function protoKeyPath(value: unknown, depth = 0): (string | number)[] | undefined {
  if (depth > PROTO_SEARCH_DEPTH || typeof value !== 'object' || value === null) return undefined;
  if (Object.hasOwn(value, '__proto__')) return ['__proto__'];
  for (const [key, child] of Object.entries(value)) {
    const below = protoKeyPath(child, depth + 1);
    if (below !== undefined) return [Array.isArray(value) ? Number(key) : key, ...below];
  }
  return undefined;
}

/** `maxineResourceSchema.safeParse`, also refusing a `__proto__` key anywhere (protoKeyPath). */
export function parseMaxineResource(
  value: unknown,
): ReturnType<typeof maxineResourceSchema.safeParse> {
  const path = protoKeyPath(value);
  if (path === undefined) return maxineResourceSchema.safeParse(value);
  return {
    success: false,
    error: new z.ZodError([
      {
        code: 'custom',
        path,
        message: '"__proto__" cannot be a key: JSON and YAML tools drop it; rename it',
        input: value,
      },
    ]),
  } as ReturnType<typeof maxineResourceSchema.safeParse>;
}
