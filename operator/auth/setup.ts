/**
 * Builds the operator's access control from its configuration: the authenticator (static
 * tokens, JWT, TokenReview), the pod guard, the ACL / intention / rate-limit evaluation, and
 * the audit log they write to. Kept apart from operator.ts so the defaults of each mode are
 * read in one place (docs/security.md lists them).
 */
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { ServiceRef } from '../../common/policy/acl.js';
import { selects } from '../kube/pods.js';
import type { PodLike } from '../kube/pods.js';
import type { OperatorConfig } from '../config.js';
import { AccessControl } from '../policy/access.js';
import type { PolicyStore } from '../policy/store.js';
import type { Reconciler } from '../reconciler.js';
import type { Registry } from '../registry/registry.js';
import { AuditLog } from '../telemetry/audit.js';
import type { AuditEntry } from '../telemetry/audit.js';
import type { Logger } from '../../common/logger.js';
import { Authenticator } from './authenticator.js';
import type { Principal } from './authenticator.js';
import { openGuard, PodGuard } from './instance-guard.js';
import type { InstanceWriteGuard } from './instance-guard.js';
import { JwtVerifier } from './jwt.js';
import type { KubeUserReviewer } from './kube-user.js';
import { StaticTokens } from './static-tokens.js';
import type { TokenReviewer, TokenReviewerOptions } from './tokenreview.js';
import { ReviewSlots } from './review-slots.js';

export interface SecurityDeps {
  config: OperatorConfig;
  reconciler: Reconciler;
  registry: Registry;
  store: PolicyStore;
  logger: Logger;
  prom: PromRegistry;
  /** Kubernetes mode: the API server and the pod informer. */
  kube?: {
    kubeConfig: KubeConfig;
    pod(namespace: string, name: string): (PodLike & { metadata?: { uid?: string } }) | undefined;
    /** The TokenReviewer maker (operator/kube/parts.ts: the Kubernetes client loads lazily). */
    makeReviewer(opts: TokenReviewerOptions): TokenReviewer;
    /** Reviews a kubectl user's forwarded token (operator/auth/kube-user.ts); optional. */
    makeUserReviewer?(kubeConfig: KubeConfig, slots?: ReviewSlots): KubeUserReviewer;
  };
}

export interface Security {
  access: AccessControl;
  guard: InstanceWriteGuard;
  /** Opens the audit log (when configured); records before this are not kept. */
  start(): Promise<void>;
  stop(): Promise<void>;
  auditExport?: (range: { from?: number; to?: number }) => AsyncIterable<string>;
  /** Writes a record decided outside access control (the per-address limit) when auditing. */
  audit(entry: AuditEntry): void;
  /** What start-up should warn about. */
  warnings(): string[];
}

/** How long the services a principal's workload is part of are remembered. */
const SOURCES_TTL_MS = 2_000;

function jwtVerifierOf(config: OperatorConfig): JwtVerifier | undefined {
  if (config.jwtIssuer === undefined || config.jwtAudience === undefined) return undefined;
  return new JwtVerifier({
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    key:
      config.jwtJwksUrl !== undefined
        ? { jwksUrl: config.jwtJwksUrl }
        : { pem: readFileSync(config.jwtPublicKeyFile ?? '', 'utf8') },
    userClaim: config.jwtUserClaim,
    groupsClaim: config.jwtGroupsClaim,
    clockSkewSeconds: config.jwtClockSkewSeconds,
  });
}

function authenticatorOf(
  config: OperatorConfig,
  kube: SecurityDeps['kube'],
  slots: ReviewSlots,
): Authenticator {
  const jwt = jwtVerifierOf(config);
  const file = config.staticTokensFile;
  const staticTokens =
    file === undefined ? undefined : StaticTokens.parse(readFileSync(file, 'utf8'), file);
  const hints = [
    kube && "a sidecar presents its pod's projected ServiceAccount token",
    jwt && `a JWT from ${config.jwtIssuer}`,
    staticTokens && 'a token from the static tokens file',
  ].filter((h) => typeof h === 'string');
  return new Authenticator({
    anonymous: config.anonymous ?? config.mode !== 'kubernetes',
    ...(staticTokens && { staticTokens }),
    ...(jwt && { jwt: { issuer: config.jwtIssuer ?? '', verify: (t) => jwt.verify(t) } }),
    ...(kube && {
      reviewer: kube.makeReviewer({
        kubeConfig: kube.kubeConfig,
        audience: config.tokenAudience,
        podUid: (namespace, name) => kube.pod(namespace, name)?.metadata?.uid,
        podCacheMs: config.tokenReviewPodCacheSeconds * 1000,
        slots,
      }),
    }),
    ...(kube?.makeUserReviewer && { kubeUsers: kube.makeUserReviewer(kube.kubeConfig, slots) }),
    hint:
      hints.length > 0
        ? `send \`Authorization: Bearer <token>\`: ${hints.join(', or ')}`
        : 'no token kind is configured',
  });
}

function guardOf(deps: SecurityDeps): InstanceWriteGuard {
  const { kube, reconciler } = deps;
  if (kube === undefined) return openGuard;
  return new PodGuard({
    pod: (namespace, name) => kube.pod(namespace, name),
    service: (namespace, name) => reconciler.serviceSpec(namespace, name),
    ownerOf: (id) => {
      // Asked on every heartbeat: the owner only, not a whole Instance (issue 17).
      const owner = deps.registry.instanceOwner(id);
      return owner && { namespace: owner.service.namespace, pod: owner.pod };
    },
  });
}

/**
 * The services a principal's workload is part of: a sidecar's, those whose selector picks its
 * pod; a ServiceAccount's, those declaring it as `spec.serviceAccount`.
 */
/** The sources of a principal that is no ServiceAccount: one shared answer, none allocated per request. */
const NO_SOURCES: readonly ServiceRef[] = Object.freeze([]);

function sourcesResolver(deps: SecurityDeps): (principal: Principal) => readonly ServiceRef[] {
  const sources = new Map<string, { until: number; refs: ServiceRef[] }>();
  return (principal) => {
    const id = principal.identity;
    if (id.kind !== 'ServiceAccount') return NO_SOURCES;
    const now = Date.now();
    const hit = sources.get(principal.key);
    if (hit !== undefined && hit.until > now) return hit.refs;
    const podName = principal.pod?.pod?.name;
    const pod = podName === undefined ? undefined : deps.kube?.pod(id.namespace, podName);
    const refs: ServiceRef[] = [];
    for (const s of deps.reconciler.services()) {
      if (s.namespace !== id.namespace) continue;
      const mine =
        pod !== undefined
          ? selects(s.spec.selector, pod.metadata?.labels)
          : s.spec.serviceAccount === id.name;
      if (mine) refs.push({ namespace: s.namespace, name: s.name });
    }
    if (sources.size > 10_000) sources.clear();
    sources.set(principal.key, { until: now + SOURCES_TTL_MS, refs });
    return refs;
  };
}

/** `--audit-allowed-reads`: none → 0, all → 1, sample:N → N, aggregate as is. */
export function allowedReadsEvery(flag: string): number | 'aggregate' {
  if (flag === 'all') return 1;
  if (flag === 'aggregate') return 'aggregate';
  if (flag.startsWith('sample:')) return Number(flag.slice('sample:'.length));
  return 0;
}

export function createSecurity(deps: SecurityDeps): Security {
  const { config, reconciler } = deps;
  const kubernetes = config.mode === 'kubernetes';
  const slots = new ReviewSlots();
  const authenticator = authenticatorOf(config, deps.kube, slots);
  new Gauge({
    name: 'maxine_auth_token_reviews_in_flight',
    help: 'TokenReviews in flight at the API server (sidecar tokens and forwarded kubectl users; bounded, past the bound a new token is answered 503)',
    registers: [deps.prom],
    collect() {
      this.set(slots.inFlight);
    },
  });
  new Gauge({
    name: 'maxine_auth_token_reviews_refused',
    help: 'TokenReviews refused since start because the bound on reviews in flight was reached (answered 503 NOT_READY)',
    registers: [deps.prom],
    collect() {
      this.set(slots.refused);
    },
  });
  const guard = guardOf(deps);
  const denials = new Counter({
    name: 'maxine_access_denied_total',
    help: 'Requests refused by access control, by reason',
    labelNames: ['reason'],
    registers: [deps.prom],
  });
  const limited = new Counter({
    name: 'maxine_rate_limited_total',
    help: 'Requests refused with 429, by the limit that was exhausted',
    labelNames: ['scope'],
    registers: [deps.prom],
  });
  new Gauge({
    name: 'maxine_rate_limit_requests_per_second',
    help: 'Configured token-bucket rates: per identity (operator flag) and per service (spec.rateLimit)',
    labelNames: ['scope', 'service'],
    registers: [deps.prom],
    collect() {
      this.reset();
      if (config.identityRateLimit > 0)
        this.set({ scope: 'identity', service: '' }, config.identityRateLimit);
      for (const s of reconciler.services()) {
        if (s.spec.rateLimit !== undefined)
          this.set(
            { scope: 'service', service: `${s.namespace}/${s.name}` },
            s.spec.rateLimit.requestsPerSecond,
          );
      }
    },
  });

  const folded = new Counter({
    name: 'maxine_audit_refusals_folded_total',
    help: 'Unauthenticated or rate-limited refusals counted into a `repeated` audit record instead of written one by one',
    registers: [deps.prom],
  });

  new Gauge({
    name: 'maxine_auth_token_cache_entries',
    help: 'Resolved bearer tokens cached by their SHA-256 (bounded; each until it expires, at most a minute)',
    registers: [deps.prom],
    collect() {
      this.set(authenticator.cachedTokens);
    },
  });
  new Gauge({
    name: 'maxine_auth_recent_header_cache_entries',
    help: 'Authorization headers of recent callers kept by their text in front of the token cache, so a repeat needs no hash (bounded: 1,000)',
    registers: [deps.prom],
    collect() {
      this.set(authenticator.recentHeaders);
    },
  });
  new Gauge({
    name: 'maxine_auth_recent_header_cache_evictions',
    help: 'Authorization headers pushed out of the recent-header cache at its bound since start (their callers fall back to the token cache by digest)',
    registers: [deps.prom],
    collect() {
      this.set(authenticator.recentHeaderEvictions);
    },
  });
  const earlyFlushes = new Counter({
    name: 'maxine_audit_allowed_read_early_flushes_total',
    help: 'Times the aggregated allowed discoveries reached --audit-reads-max-keys and every count was written before its interval ended',
    registers: [deps.prom],
  });
  const discoveryOverflows = new Counter({
    name: 'maxine_access_discovery_cache_overflows_total',
    help: 'Times the cache of allowed discoveries (per principal, source and service) reached its bound and was emptied',
    registers: [deps.prom],
  });
  new Gauge({
    name: 'maxine_access_acl_decision_cache_entries',
    help: 'ACL decisions cached per principal, verb and service until the policies change (bounded)',
    registers: [deps.prom],
    collect() {
      this.set(access.decisionCacheSize);
    },
  });
  new Gauge({
    name: 'maxine_access_discovery_cache_entries',
    help: 'Allowed discoveries remembered per principal, source and service until the policies change',
    registers: [deps.prom],
    collect() {
      this.set(access.discoveryCacheSize);
    },
  });

  let audit: AuditLog | undefined;
  new Gauge({
    name: 'maxine_audit_refusal_windows',
    help: 'Open folding windows of unauthenticated or rate-limited refusals (per address, outcome and reason; past the bound, one per outcome)',
    registers: [deps.prom],
    collect() {
      this.set(audit?.foldingWindows ?? 0);
    },
  });
  const access = new AccessControl({
    authenticator,
    store: deps.store,
    aclDefault: config.aclDefault ?? (kubernetes ? 'deny' : 'allow'),
    intentionDefault: config.intentionDefault,
    policyNamespaces: config.policyNamespaces,
    bootstrapAdmins: config.bootstrapAdmins,
    sidecarReadAll: config.sidecarReadAll,
    sourcesOf: sourcesResolver(deps),
    serviceLimit: (s) => reconciler.serviceSpec(s.namespace, s.name)?.rateLimit,
    ...(config.identityRateLimit > 0 && {
      identityLimit: {
        requestsPerSecond: config.identityRateLimit,
        burst: config.identityRateBurst ?? Math.max(1, Math.ceil(config.identityRateLimit * 2)),
      },
    }),
    audit: (entry) => audit?.record(entry),
    auditAllowedReads: allowedReadsEvery(config.auditAllowedReads),
    allowedReadsMaxKeys: config.auditReadsMaxKeys,
    metrics: {
      denied: (reason) => denials.inc({ reason }),
      rateLimited: (scope) => limited.inc({ scope }),
      discoveryCacheOverflow: () => discoveryOverflows.inc(),
      allowedReadsEarlyFlush: () => earlyFlushes.inc(),
    },
    logger: deps.logger,
  });

  new Gauge({
    name: 'maxine_audit_allowed_read_keys',
    help: 'Principal, source and service keys whose allowed discoveries are being counted (--audit-allowed-reads aggregate; bounded by --audit-reads-max-keys)',
    registers: [deps.prom],
    collect() {
      this.set(access.allowedReadKeys);
    },
  });

  const auditOn = config.auditDir !== undefined && config.auditDir !== 'off';
  let readsTicker: NodeJS.Timeout | undefined;
  return {
    access,
    guard,
    async start() {
      if (auditOn)
        audit = await AuditLog.open({
          dir: config.auditDir ?? '',
          size: config.auditMaxSize,
          keep: config.auditKeep,
          noiseSize: config.auditNoiseMaxSize,
          noiseKeep: config.auditNoiseKeep,
          aggregateWindowMs: config.auditAggregateSeconds * 1000,
          folded: () => folded.inc(),
        });
      if (auditOn && config.auditAllowedReads === 'aggregate') {
        readsTicker = setInterval(() => access.flushAllowedReads(), config.auditReadsIntervalMs);
        readsTicker.unref();
      }
    },
    async stop() {
      clearInterval(readsTicker);
      // The counts so far are written before the log closes: none is lost on shutdown.
      access.flushAllowedReads();
      await audit?.close();
      audit = undefined;
    },
    audit: (entry) => audit?.record(entry),
    ...(auditOn && {
      auditExport: (range: { from?: number; to?: number }) => {
        if (audit === undefined) throw new Error('the audit log is not open');
        return audit.export(range);
      },
    }),
    warnings() {
      const out: string[] = [];
      if (access.anonymousAllowed && access.aclDefaultAllows)
        out.push(
          `${config.mode} mode: requests without a token are served and ACLs allow what they do not mention; bind to localhost only`,
        );
      if (!auditOn) out.push('the audit log is off (--audit-dir)');
      return out;
    },
  };
}
