/**
 * Operator configuration from flags and environment (flags win), parsed with zod so a bad
 * value stops start-up with a message naming the flag.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { validationError } from '../common/errors.js';

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

export const configSchema = z.strictObject({
  port: int(0, 65535).default(7710),
  host: z.string().min(1).default('127.0.0.1'),
  resources: z.string().min(1).default('examples'),
  /** standalone: resources from the folder; kubernetes: from the API server (informers). */
  mode: z.enum(['standalone', 'kubernetes']).default('standalone'),
  /** A kubeconfig file for kubernetes mode; default: KUBECONFIG, ~/.kube/config, in-cluster. */
  kubeconfig: z.string().min(1).optional(),
  allowUndeclared: bool.default(true),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  defaultTtlSeconds: int(1, 3600).default(30),
  removeAfterSeconds: int(0, 86400).default(90),
  sweepIntervalMs: int(50, 60_000).default(1000),
  massExpiryThreshold: z.coerce.number().min(0).max(1).default(0.5),
  massExpiryMinInstances: int(1, 1_000_000).default(10),
  bodyLimitBytes: int(256, 16 * 1024 * 1024).default(64 * 1024),
  eventLogSize: int(16, 10_000_000).default(10_000),
  shutdownTimeoutMs: int(0, 600_000).default(10_000),
  statusResyncMs: int(100, 3_600_000).default(15_000),
  /** kubernetes mode: compete for a Lease; only the leader writes status. */
  leaderElection: bool.default(true),
  leaseNamespace: z.string().min(1).default('maxine-system'),
  leaseName: z.string().min(1).default('maxine-operator'),
  leaseDurationSeconds: int(2, 600).default(15),
  leaseRenewSeconds: int(1, 300).default(5),
  /**
   * Who may register, renew and remove instances: `none` (anyone who reaches the port; the
   * standalone default) or `sidecar-token` (a pod's projected ServiceAccount token, checked
   * with a TokenReview; the kubernetes default).
   */
  instanceAuth: z.enum(['none', 'sidecar-token']).optional(),
  /** Audience the sidecars' projected tokens are minted for. */
  tokenAudience: z.string().min(1).max(253).default('maxine.io'),
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
});
export type OperatorConfig = z.infer<typeof configSchema>;

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
  'shutdown-timeout-ms': ['shutdownTimeoutMs', 'MAXINE_SHUTDOWN_TIMEOUT_MS'],
  'status-resync-ms': ['statusResyncMs', 'MAXINE_STATUS_RESYNC_MS'],
  'leader-election': ['leaderElection', 'MAXINE_LEADER_ELECTION'],
  'lease-namespace': ['leaseNamespace', 'MAXINE_LEASE_NAMESPACE'],
  'lease-name': ['leaseName', 'MAXINE_LEASE_NAME'],
  'lease-duration-seconds': ['leaseDurationSeconds', 'MAXINE_LEASE_DURATION_SECONDS'],
  'lease-renew-seconds': ['leaseRenewSeconds', 'MAXINE_LEASE_RENEW_SECONDS'],
  'instance-auth': ['instanceAuth', 'MAXINE_INSTANCE_AUTH'],
  'token-audience': ['tokenAudience', 'MAXINE_TOKEN_AUDIENCE'],
  webhook: ['webhook', 'MAXINE_WEBHOOK'],
  'webhook-host': ['webhookHost', 'MAXINE_WEBHOOK_HOST'],
  'webhook-port': ['webhookPort', 'MAXINE_WEBHOOK_PORT'],
  'webhook-config-name': ['webhookConfigName', 'MAXINE_WEBHOOK_CONFIG_NAME'],
  'webhook-dns-names': ['webhookDnsNames', 'MAXINE_WEBHOOK_DNS_NAMES'],
  'webhook-ips': ['webhookIps', 'MAXINE_WEBHOOK_IPS'],
  'sidecar-image': ['sidecarImage', 'MAXINE_SIDECAR_IMAGE'],
  'sidecar-operator-url': ['sidecarOperatorUrl', 'MAXINE_SIDECAR_OPERATOR_URL'],
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
  // In a cluster, services are declared with MaxineService objects unless told otherwise.
  if (raw.allowUndeclared === undefined && raw.mode === 'kubernetes') raw.allowUndeclared = 'false';
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
