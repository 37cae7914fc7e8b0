/**
 * Sidecar configuration from its environment — in a pod, exactly what the injection webhook
 * sets (downward API and literals, common/injection-patch.ts) — parsed with zod so a bad
 * value stops start-up with a message naming the variable.
 */
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { formatPath } from '../common/errors.js';
import { DISCOVERY_SCOPES } from '../common/injection.js';
import type { DiscoveryScopeKind, SidecarEnvName } from '../common/injection.js';
import type { HealthCheck } from './health/checks.js';
import { parseHealthCheckOverride } from './health/annotations.js';
import { parseReloadAction } from '../common/config-reload.js';
import type { ReloadAction } from '../common/config-reload.js';

const port = z.coerce.number().int().min(0).max(65535);
const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

/**
 * A whole number of seconds from 0 (whose meaning `zero` says) to `max`; an empty variable is
 * the default.
 */
function wholeSeconds(o: { zero: string; max: number; over: string; default: number }) {
  return z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.coerce
      .number({ error: 'must be a whole number of seconds' })
      .int('must be a whole number of seconds')
      .min(0, o.zero)
      .max(o.max, o.over)
      .default(o.default),
  );
}

/** Environment variable → what it means. */
export const sidecarEnvSchema = z.object({
  MAXINE_SERVICE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label'),
  MAXINE_POD_NAMESPACE: z.string().min(1).default('default'),
  MAXINE_POD_NAME: optionalText,
  MAXINE_POD_UID: optionalText,
  MAXINE_POD_IP: z.string().min(1).default('127.0.0.1'),
  MAXINE_NODE_NAME: optionalText,
  MAXINE_SERVICE_ACCOUNT: optionalText,
  MAXINE_OPERATOR_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:7710'),
  /** The projected ServiceAccount token; without it the sidecar registers unauthenticated. */
  MAXINE_TOKEN_FILE: optionalText,
  MAXINE_PODINFO_DIR: optionalText,
  /** JSON health-check override (the pod's `maxine.io/health-check` annotation). */
  MAXINE_HEALTH_CHECK: optionalText,
  /** Where the pod's health-scripts ConfigMap is mounted: exec checks run there. */
  MAXINE_HEALTH_SCRIPTS_DIR: optionalText,
  /** The application's port (registered outside Kubernetes; the operator uses the pod's). */
  MAXINE_APP_PORT: port.default(8080),
  MAXINE_VERSION: optionalText,
  MAXINE_ZONE: optionalText,
  MAXINE_TTL_SECONDS: z.coerce.number().int().min(1).max(3600).optional(),
  /** 0.0.0.0 in a pod so kubelet can probe /healthz; discovery still answers only localhost. */
  MAXINE_LISTEN_HOST: z.string().min(1).default('127.0.0.1'),
  MAXINE_LISTEN_PORT: port.default(7711),
  /**
   * What the local copy holds (sidecar/scope.ts). `pod` (the default): the pod's own service,
   * its `dependencies` and the services intentions allow it to call. `namespace`: the pod's
   * namespace and the service's `dependencies`. `cluster`: every service. Discovery of, or a
   * call to, anything outside answers 404 `OUTSIDE_DISCOVERY_SCOPE`, saying how to widen it.
   */
  MAXINE_DISCOVERY_SCOPE: z.enum(DISCOVERY_SCOPES).default('pod'),
  /**
   * Where to write `<mesh>.yaml` (the service's rendered mesh objects) for each mesh enabled in
   * its `spec.mesh`; unset: nowhere (`/v1/mesh/{mesh}` answers either way).
   */
  MAXINE_MESH_DIR: optionalText.refine(
    (v) => v === undefined || isAbsolute(v),
    'must be an absolute path',
  ),
  /**
   * Where to write the service's config as files (one per key, kubelet's `..data` layout,
   * sidecar/app-config/files.ts); unset: nowhere (`GET /v1/config` answers either way).
   */
  MAXINE_CONFIG_DIR: optionalText.refine(
    (v) => v === undefined || isAbsolute(v),
    'must be an absolute path',
  ),
  /** What to run after a config change: `signal:HUP:<process name>` or `http:POST:/reload`. */
  MAXINE_CONFIG_RELOAD: optionalText.transform((v, ctx) => {
    if (v === undefined) return undefined;
    const action = parseReloadAction(v);
    if (typeof action !== 'string') return action;
    ctx.addIssue({ code: 'custom', message: action });
    return z.NEVER;
  }),
  /**
   * The API server the sidecar reads the Secrets its config names from (configFrom); default:
   * `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` inside a pod, else none.
   */
  MAXINE_KUBE_API_URL: optionalText.refine(
    (v) => v === undefined || /^https?:\/\//.test(v),
    'must be an http:// or https:// URL',
  ),
  /** The pod's ServiceAccount token for that API server. */
  MAXINE_KUBE_TOKEN_FILE: z
    .string()
    .min(1)
    .default('/var/run/secrets/kubernetes.io/serviceaccount/token'),
  /** The API server's CA; default: the ServiceAccount's `ca.crt` when it exists. */
  MAXINE_KUBE_CA_FILE: optionalText,
  KUBERNETES_SERVICE_HOST: optionalText,
  KUBERNETES_SERVICE_PORT: optionalText,
  /** How many `GET /v1/config?wait=` may wait at once (`maxine_sidecar_config_waiters`). */
  MAXINE_CONFIG_MAX_WAITERS: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.coerce
      .number({ error: 'must be a whole number' })
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(100_000, 'must be at most 100000')
      .default(256),
  ),
  /** Seconds between two fetches of the mesh renders when nothing changed; 0: only on changes. */
  MAXINE_MESH_REFRESH_SECONDS: wholeSeconds({
    zero: 'must be 0 (only on changes) or more',
    max: 86_400,
    over: 'must be at most 86400 (a day)',
    default: 30,
  }),
  /**
   * Seconds between two call reports to the operator (the dependency graph's observed edges,
   * `sidecar/proxy/reporter.ts`); 0 turns reporting off.
   */
  MAXINE_REPORT_INTERVAL_SECONDS: wholeSeconds({
    zero: 'must be 0 (off) or more',
    max: 3600,
    over: 'must be at most 3600',
    default: 10,
  }),
  /**
   * The forward-proxy listener (`HTTP_PROXY` for the app): `host:port`, or `off`. Loopback by
   * default: only the pod's own containers may call through it.
   */
  MAXINE_PROXY_LISTEN: z
    .string()
    .trim()
    .default('127.0.0.1:7712')
    .transform((v, ctx) => {
      if (v === 'off' || v === '') return undefined;
      const colon = v.lastIndexOf(':');
      const host = v.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
      const portNumber = Number(v.slice(colon + 1));
      if (colon < 1 || !Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
        ctx.addIssue({ code: 'custom', message: 'must be HOST:PORT (e.g. 127.0.0.1:7712) or off' });
        return z.NEVER;
      }
      return { host, port: portNumber };
    }),
  /**
   * Also retry calls whose method is not idempotent (POST, PATCH, …) when the destination's
   * `spec.retries` allows it. Off by default: a retried POST may do its work twice.
   */
  MAXINE_PROXY_RETRY_NON_IDEMPOTENT: z
    .enum(['true', 'false', ''], { error: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true'),
  /**
   * Local discovery (`/v1/discover/…`) also asks the mirrored intentions whether the pod's
   * service may call the one discovered (403 INTENTION_DENIED otherwise), as the operator's
   * discovery does. Off by default: with it, a dependency no intention allows is refused.
   */
  MAXINE_DISCOVERY_CHECK_INTENTIONS: z
    .enum(['true', 'false', ''], { error: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true'),
  /**
   * How long the proxy waits for a connection to an instance before the try is a
   * `connect-failure` (retried elsewhere as `retryOn` says, counted by the breaker).
   */
  MAXINE_PROXY_CONNECT_TIMEOUT_MS: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.coerce
      .number({ error: 'must be a whole number of milliseconds' })
      .int('must be a whole number of milliseconds')
      .min(1, 'must be at least 1')
      .max(60_000, 'must be at most 60000 (a minute)')
      .default(1000),
  ),
  /**
   * Seconds after the registry copy synced (a completed snapshot) before one memory-reducing
   * garbage collection gives back what the snapshot's burst grew (sidecar/memory-trim.ts);
   * 0 turns it off.
   */
  MAXINE_MEMORY_TRIM_SECONDS: wholeSeconds({
    zero: 'must be 0 (off) or more',
    max: 3600,
    over: 'must be at most 3600',
    default: 10,
  }),
  MAXINE_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info'),
});

// Every variable the webhook sets (common/injection.ts) is one this schema reads: renaming
// one here without the contract fails the type check.
sidecarEnvSchema.shape satisfies Record<SidecarEnvName, z.ZodType>;

export interface SidecarConfig {
  service: string;
  namespace: string;
  pod?: { name: string; uid?: string; ip: string; node?: string; serviceAccount?: string };
  host: string;
  operatorUrl: string;
  tokenFile?: string;
  podinfoDir?: string;
  healthCheck?: HealthCheck;
  healthScriptsDir?: string;
  appPort: number;
  version?: string;
  zone?: string;
  ttlSeconds?: number;
  listenHost: string;
  listenPort: number;
  discoveryScope: DiscoveryScopeKind;
  meshDir?: string;
  meshRefreshSeconds: number;
  /** Where the config files go (`MAXINE_CONFIG_DIR`); undefined: no files. */
  configDir?: string;
  /** Run after a config change (`MAXINE_CONFIG_RELOAD`); undefined: none. */
  configReload?: ReloadAction;
  /** The bound on concurrent config long-polls (`MAXINE_CONFIG_MAX_WAITERS`). */
  configMaxWaiters: number;
  /** Where Secrets named by the config are read (`MAXINE_KUBE_API_URL`); undefined: nowhere. */
  kubeApi?: { apiUrl: string; tokenFile: string; caFile?: string };
  /** Seconds between call reports (0: off). */
  reportIntervalSeconds: number;
  /** The forward-proxy listener; undefined: off. */
  proxyListen?: { host: string; port: number };
  /** Whether the proxy retries non-idempotent methods (`MAXINE_PROXY_RETRY_NON_IDEMPOTENT`). */
  proxyRetryNonIdempotent: boolean;
  /** Whether local discovery checks intentions (`MAXINE_DISCOVERY_CHECK_INTENTIONS`). */
  discoveryChecksIntentions: boolean;
  /** Milliseconds a try may take to connect (`MAXINE_PROXY_CONNECT_TIMEOUT_MS`). */
  proxyConnectTimeoutMs: number;
  /** Seconds after a sync before the memory trim (`MAXINE_MEMORY_TRIM_SECONDS`; 0: off). */
  memoryTrimSeconds: number;
  logLevel: string;
}

export class SidecarConfigError extends Error {}

export function loadSidecarConfig(env: NodeJS.ProcessEnv): SidecarConfig {
  const parsed = sidecarEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new SidecarConfigError(
      parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '),
    );
  }
  const e = parsed.data;
  const healthCheck = parseHealthCheckOverride(e.MAXINE_HEALTH_CHECK);
  if (!healthCheck.ok) throw new SidecarConfigError(`MAXINE_HEALTH_CHECK: ${healthCheck.message}`);
  return {
    service: e.MAXINE_SERVICE,
    namespace: e.MAXINE_POD_NAMESPACE,
    ...(e.MAXINE_POD_NAME !== undefined && {
      pod: {
        name: e.MAXINE_POD_NAME,
        uid: e.MAXINE_POD_UID,
        ip: e.MAXINE_POD_IP,
        node: e.MAXINE_NODE_NAME,
        serviceAccount: e.MAXINE_SERVICE_ACCOUNT,
      },
    }),
    host: e.MAXINE_POD_IP,
    operatorUrl: e.MAXINE_OPERATOR_URL,
    tokenFile: e.MAXINE_TOKEN_FILE,
    podinfoDir: e.MAXINE_PODINFO_DIR,
    healthCheck: healthCheck.spec,
    healthScriptsDir: e.MAXINE_HEALTH_SCRIPTS_DIR,
    appPort: e.MAXINE_APP_PORT,
    version: e.MAXINE_VERSION,
    zone: e.MAXINE_ZONE,
    ttlSeconds: e.MAXINE_TTL_SECONDS,
    listenHost: e.MAXINE_LISTEN_HOST,
    listenPort: e.MAXINE_LISTEN_PORT,
    discoveryScope: e.MAXINE_DISCOVERY_SCOPE,
    meshDir: e.MAXINE_MESH_DIR,
    meshRefreshSeconds: e.MAXINE_MESH_REFRESH_SECONDS,
    ...(e.MAXINE_CONFIG_DIR !== undefined && { configDir: e.MAXINE_CONFIG_DIR }),
    ...(e.MAXINE_CONFIG_RELOAD !== undefined && { configReload: e.MAXINE_CONFIG_RELOAD }),
    configMaxWaiters: e.MAXINE_CONFIG_MAX_WAITERS,
    ...kubeApiOf(e),
    reportIntervalSeconds: e.MAXINE_REPORT_INTERVAL_SECONDS,
    ...(e.MAXINE_PROXY_LISTEN !== undefined && { proxyListen: e.MAXINE_PROXY_LISTEN }),
    proxyRetryNonIdempotent: e.MAXINE_PROXY_RETRY_NON_IDEMPOTENT,
    discoveryChecksIntentions: e.MAXINE_DISCOVERY_CHECK_INTENTIONS,
    proxyConnectTimeoutMs: e.MAXINE_PROXY_CONNECT_TIMEOUT_MS,
    memoryTrimSeconds: e.MAXINE_MEMORY_TRIM_SECONDS,
    logLevel: e.MAXINE_LOG_LEVEL,
  };
}

const SERVICE_ACCOUNT_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

/** The API server Secrets are read from: MAXINE_KUBE_API_URL, else the in-pod default. */
function kubeApiOf(e: {
  MAXINE_KUBE_API_URL?: string | undefined;
  MAXINE_KUBE_TOKEN_FILE: string;
  MAXINE_KUBE_CA_FILE?: string | undefined;
  KUBERNETES_SERVICE_HOST?: string | undefined;
  KUBERNETES_SERVICE_PORT?: string | undefined;
}): Pick<SidecarConfig, 'kubeApi'> {
  const host = e.KUBERNETES_SERVICE_HOST;
  const apiUrl =
    e.MAXINE_KUBE_API_URL ??
    (host === undefined
      ? undefined
      : `https://${host.includes(':') ? `[${host}]` : host}:${e.KUBERNETES_SERVICE_PORT ?? '443'}`);
  if (apiUrl === undefined) return {};
  const caFile =
    e.MAXINE_KUBE_CA_FILE ?? (existsSync(SERVICE_ACCOUNT_CA) ? SERVICE_ACCOUNT_CA : undefined);
  return {
    kubeApi: {
      apiUrl,
      tokenFile: e.MAXINE_KUBE_TOKEN_FILE,
      ...(caFile !== undefined && { caFile }),
    },
  };
}
