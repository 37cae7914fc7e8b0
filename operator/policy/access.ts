/**
 * Access control in one place: every API request and event-stream handshake asks here who
 * the caller is (authenticator.ts), whether its MaxineACLs allow the verb on the service,
 * whether the MaxineIntentions let its service call the one it discovers, and whether its
 * rate limits have room. Each refusal is a catalog error naming what decided it, is counted
 * in metrics and is written to the audit log; so is every successful change.
 *
 * The ACL index and the decisions are rebuilt lazily: a policy change bumps the store's
 * version, and the next request compiles the new index. Decisions are cached per identity,
 * verb and service until then, so the discovery hot path pays a map lookup.
 */
import { MaxineError } from '../../common/errors.js';
import { serviceRefString } from '../../common/names.js';
import { AclEvaluator } from '../../common/policy/acl.js';
import type { AclDecision, AclObject, AclVerb, ServiceRef } from '../../common/policy/acl.js';
import { evaluateIntentions } from '../../common/policy/intentions.js';
import type {
  HttpRequestInfo,
  IntentionDecision,
  IntentionEntry,
} from '../../common/policy/intentions.js';
import { RateLimiter } from '../../common/policy/rate-limit.js';
import type { BucketLimits } from '../../common/policy/rate-limit.js';
import type { Authenticator, Principal } from '../auth/authenticator.js';
import { SIDECAR_GROUP } from '../auth/authenticator.js';
import type { AuditEntry } from '../telemetry/audit.js';
import type { Logger } from '../../common/logger.js';
import { AllowedReadCounts } from './allowed-reads.js';
import { DiscoveryDecisions, NO_SOURCE } from './discovery-cache.js';
import { intentionInForce } from './store.js';
import type { PolicyStore } from './store.js';

/**
 * Where a request came from, before its principal is known: transport-free, so this layer
 * can be used (and tested) without HTTP. The HTTP layer builds it (`http/caller.ts`).
 */
export interface Origin {
  /** The request's id, as the audit log names it. */
  readonly requestId: string;
  /** The client's address. */
  readonly address: string;
  /** The `x-maxine-source` the caller sent, as sent (`namespace/name`), if any. */
  readonly source?: string | readonly string[] | undefined;
}

/** A request and who made it: what every check and audit record is about. */
export interface Caller extends Origin {
  readonly principal: Principal;
}

/** What the authenticator reads the credentials from (opaque to this layer). */
export type Credentials = Parameters<Authenticator['principal']>[0];

/**
 * The caller an origin becomes once its principal is known. Its fields are read when used
 * (the HTTP origin's are getters), so it wraps the origin rather than copying it; a class,
 * so that wrapping costs an allocation and no per-object accessor definitions.
 */
class OriginCaller implements Caller {
  constructor(
    private readonly origin: Origin,
    readonly principal: Principal,
  ) {}

  get requestId(): string {
    return this.origin.requestId;
  }

  get address(): string {
    return this.origin.address;
  }

  get source(): Origin['source'] {
    return this.origin.source;
  }
}

function withPrincipal(origin: Origin, principal: Principal): Caller {
  return new OriginCaller(origin, principal);
}

export type Denial = 'unauthenticated' | 'acl' | 'intention' | 'blocked' | 'rate_limit' | 'pod';

export interface AccessMetrics {
  denied(reason: Denial): void;
  rateLimited(scope: 'identity' | 'service'): void;
  /** The allowed-discovery cache reached its bound and was emptied. */
  discoveryCacheOverflow?(): void;
  /** The aggregated allowed reads reached their bound and were written early. */
  allowedReadsEarlyFlush?(): void;
}

export interface AccessOptions {
  authenticator: Authenticator;
  store: PolicyStore;
  aclDefault: 'allow' | 'deny';
  intentionDefault: 'allow' | 'deny';
  /** Namespaces whose ACLs and intentions may govern other namespaces' services. */
  policyNamespaces: readonly string[];
  /** `User:name` / `Group:name` subjects holding every right. */
  bootstrapAdmins: readonly string[];
  /** Pod-bound principals may discover and read everything unless an ACL denies. */
  sidecarReadAll: boolean;
  /** The services a principal's workload is (sidecars: their pod's; SAs: by spec). */
  sourcesOf(principal: Principal): readonly ServiceRef[];
  /** The rate limit a MaxineService declares. */
  serviceLimit(service: ServiceRef): BucketLimits | undefined;
  identityLimit?: BucketLimits;
  /** Bound on cached ACL decisions (principal, verb, service). Default 50,000. */
  decisionCacheEntries?: number;
  /** Bound on remembered allowed discoveries (discovery-cache.ts). Default 50,000. */
  discoveryCacheEntries?: number;
  audit?: (entry: AuditEntry) => void;
  /**
   * Which allowed discoveries are audited: 0 none, 1 every one, N one in N (with `sampled`),
   * `aggregate` counted per principal, source and service (allowed-reads.ts) and written when
   * `flushAllowedReads` is called. Refusals are recorded whatever this says. Default 0.
   */
  auditAllowedReads?: number | 'aggregate';
  /** Keys counted at once under `aggregate` (at the bound, every count is written early). Default 10,000. */
  allowedReadsMaxKeys?: number;
  metrics?: AccessMetrics;
  logger: Logger;
  now?: () => number;
}

/** The built-in grants, evaluated like ACLs (an ACL's deny still wins over them). */
const BUILTIN = '(builtin)';

function builtinAcls(opts: AccessOptions): AclObject[] {
  const acls: AclObject[] = [];
  const admins = opts.bootstrapAdmins.map((s) => {
    const colon = s.indexOf(':');
    return { kind: s.slice(0, colon) as 'User' | 'Group', name: s.slice(colon + 1) };
  });
  if (admins.length > 0) {
    acls.push({
      namespace: BUILTIN,
      name: 'bootstrap-admins',
      spec: { subjects: admins, rules: [{ services: ['*/*'], verbs: ['admin'], effect: 'allow' }] },
    });
  }
  if (opts.sidecarReadAll) {
    acls.push({
      namespace: BUILTIN,
      name: 'sidecars',
      spec: {
        subjects: [{ kind: 'Group', name: SIDECAR_GROUP }],
        rules: [{ services: ['*/*'], verbs: ['discover', 'read'], effect: 'allow' }],
      },
    });
  }
  return acls;
}

const CACHE_LIMIT = 50_000;

/** The verbs that let a caller learn which instances a service has. */
const KNOWING_VERBS: readonly AclVerb[] = ['read', 'discover', 'register'];

export class AccessControl {
  private version = -1;
  private acl!: AclEvaluator;
  private intentions: IntentionEntry[] = [];
  /** ACL decisions by principal key, verb, namespace and name: no key string built per lookup. */
  private decisions = new Map<string, Map<AclVerb, Map<string, Map<string, AclDecision>>>>();
  private decisionCount = 0;
  private readonly intentionDecisions = new Map<string, IntentionDecision>();
  /** Allowed discoveries per principal, source header and service (discovery-cache.ts). */
  private readonly discoveries: DiscoveryDecisions<Principal>;
  private readonly limiter = new RateLimiter();
  /** Refusals already audited where they were decided, so `audited` does not repeat them. */
  private readonly recorded = new WeakSet<MaxineError>();
  private readonly now: () => number;
  private readonly global: ReadonlySet<string>;
  /** Allowed reads since the last one recorded (`auditAllowedReads` sampling). */
  private readsUnrecorded = 0;
  /** `--audit-allowed-reads aggregate`: the counts not yet written. */
  private readonly readCounts: AllowedReadCounts | undefined;

  constructor(private readonly opts: AccessOptions) {
    this.now = opts.now ?? Date.now;
    this.discoveries = new DiscoveryDecisions(opts.discoveryCacheEntries ?? CACHE_LIMIT);
    this.global = new Set([BUILTIN, ...opts.policyNamespaces]);
    const audit = opts.audit;
    this.readCounts =
      opts.auditAllowedReads === 'aggregate' && audit !== undefined
        ? new AllowedReadCounts(audit, opts.allowedReadsMaxKeys ?? 10_000, () =>
            opts.metrics?.allowedReadsEarlyFlush?.(),
          )
        : undefined;
  }

  /** Whether ACLs allow what no rule mentions. */
  get aclDefaultAllows(): boolean {
    return this.opts.aclDefault === 'allow';
  }

  /** The cluster-wide intention default (sent to sidecars with their snapshot). */
  get intentionDefault(): 'allow' | 'deny' {
    return this.opts.intentionDefault;
  }

  /** Whether callers without a token are served. */
  get anonymousAllowed(): boolean {
    return this.opts.authenticator.anonymousAllowed;
  }

  /**
   * The caller's principal (sync when known), after its per-identity rate limit. A failure is
   * audited and rethrown as the catalog error.
   */
  principal(req: Credentials, action: string, origin: Origin): Principal | Promise<Principal> {
    let p: Principal | Promise<Principal>;
    try {
      p = this.opts.authenticator.principal(req);
    } catch (err) {
      return this.failed(err, action, origin);
    }
    if (p instanceof Promise) {
      return p.then(
        (principal) => this.limitIdentity(origin, principal, action),
        (err: unknown) => this.failed(err, action, origin),
      );
    }
    return this.limitIdentity(origin, p, action);
  }

  /** Audits an authentication failure and rethrows it. */
  private failed(err: unknown, action: string, origin: Origin): never {
    if (err instanceof MaxineError && err.code === 'UNAUTHENTICATED') {
      this.opts.metrics?.denied('unauthenticated');
      this.record(origin, {
        who: 'unknown',
        action,
        outcome: 'unauthenticated',
        reason: err.message,
      });
    }
    throw err;
  }

  private limitIdentity(origin: Origin, principal: Principal, action: string): Principal {
    const limits = this.opts.identityLimit;
    // The caller object is made only when there is a limit to take (no allocation otherwise).
    if (limits !== undefined)
      this.take(withPrincipal(origin, principal), `i\0${principal.id}`, limits, { action });
    return principal;
  }

  private take(
    caller: Caller,
    key: string,
    limits: BucketLimits,
    { action, service }: { action: string; service?: ServiceRef },
  ): void {
    const taken = this.limiter.take(key, limits, this.now());
    if (taken.allowed) return;
    const scope = service === undefined ? 'identity' : 'service';
    this.opts.metrics?.rateLimited(scope);
    const target = service === undefined ? '' : ` for ${service.namespace}/${service.name}`;
    const reason = `${caller.principal.who} exceeded ${limits.requestsPerSecond} requests/s (burst ${limits.burst})${target}`;
    this.deny(caller, { action, service, reason, denial: 'rate_limit' });
    throw this.mark(
      new MaxineError('RATE_LIMITED', `Rate limit exceeded: ${reason}`, {
        scope,
        retryAfterSeconds: taken.retryAfterSeconds,
      }),
    );
  }

  /** The ACL decision for a verb on a service (cached until the policies change). */
  decide(principal: Principal, verb: AclVerb, service: ServiceRef): AclDecision {
    this.refresh();
    const byName = this.decisionsOf(principal.key, verb, service.namespace);
    let decision = byName.get(service.name);
    if (decision === undefined) {
      decision = this.acl.decide(principal.identity, verb, service, this.opts.aclDefault);
      if (this.decisionCount >= (this.opts.decisionCacheEntries ?? CACHE_LIMIT))
        this.clearDecisions();
      this.decisionsOf(principal.key, verb, service.namespace).set(service.name, decision);
      this.decisionCount += 1;
    }
    return decision;
  }

  /** The cached decisions of one principal, verb and namespace (made when missing). */
  private decisionsOf(key: string, verb: AclVerb, namespace: string): Map<string, AclDecision> {
    let byVerb = this.decisions.get(key);
    if (byVerb === undefined)
      this.decisions.set(key, (byVerb = new Map<AclVerb, Map<string, Map<string, AclDecision>>>()));
    let byNamespace = byVerb.get(verb);
    if (byNamespace === undefined)
      byVerb.set(verb, (byNamespace = new Map<string, Map<string, AclDecision>>()));
    let byName = byNamespace.get(namespace);
    if (byName === undefined) byNamespace.set(namespace, (byName = new Map<string, AclDecision>()));
    return byName;
  }

  private clearDecisions(): void {
    this.decisions = new Map();
    this.decisionCount = 0;
  }

  /** Throws FORBIDDEN (audited) unless the ACLs allow `verb` on `service`. */
  authorize(caller: Caller, verb: AclVerb, service: ServiceRef, action: string = verb): void {
    const decision = this.decide(caller.principal, verb, service);
    if (!decision.allowed) this.refuse(caller, action, service, decision);
  }

  /**
   * A registration or instance write. A sidecar writing its own pod's instance is granted by
   * the pod's selector (`ownPod`), so only an explicit ACL deny refuses it; anything else
   * needs an ACL allow (or an allowing default).
   */
  authorizeRegistration(caller: Caller, service: ServiceRef, ownPod: boolean): void {
    const decision = this.decide(caller.principal, 'register', service);
    const explicitDeny = !decision.allowed && decision.decidedBy !== 'default';
    if (ownPod ? explicitDeny : !decision.allowed)
      this.refuse(caller, 'register', service, decision);
  }

  private refuse(
    caller: Caller,
    action: string,
    service: ServiceRef,
    decision: AclDecision,
  ): never {
    this.deny(caller, { action, service, reason: decision.reason, denial: 'acl' });
    throw this.mark(
      new MaxineError('FORBIDDEN', decision.reason, {
        decidedBy: decision.decidedBy,
        ...(decision.rule !== undefined && { rule: decision.rule }),
      }),
    );
  }

  /**
   * Whether `principal` has any right (`read`, `discover` or `register`) on `service`, and so
   * may learn what exists there. Instance endpoints answer the 404 of an unknown id to callers
   * without one, so instance ids cannot be probed across tenants.
   */
  mayKnow(principal: Principal, service: ServiceRef): boolean {
    return KNOWING_VERBS.some((verb) => this.decide(principal, verb, service).allowed);
  }

  /** A predicate telling which services `principal` may read (catalogue and events). */
  canRead(principal: Principal): (service: ServiceRef) => boolean {
    return (service) => this.decide(principal, 'read', service).allowed;
  }

  /**
   * Whether `principal` may see a resource in the catalogue: a MaxineService by `read` on it,
   * an intention by `read` on its destination, an ACL by `admin` on its namespace.
   */
  mayView(
    principal: Principal,
    r: { kind: string; namespace: string; name: string; spec: unknown },
  ): boolean {
    if (r.kind === 'MaxineService') return this.decide(principal, 'read', r).allowed;
    if (r.kind === 'MaxineIntention') {
      const d = (r.spec as { destination: { namespace?: string; name: string } }).destination;
      const destination = { namespace: d.namespace ?? r.namespace, name: d.name };
      return this.decide(principal, 'read', destination).allowed;
    }
    return this.mayAdminister(principal, r.namespace);
  }

  /**
   * Whether `principal` may learn an intention whose destination is `destination` (its name
   * may be `*`) on the event stream: it may `read` a service the intention governs. An exact
   * destination needs `read` on it; a wildcard one, `read` on the pattern itself (an ACL on
   * `ns/*`, the sidecars' built-in grant, an allowing default) or else on one of `services`
   * it covers, looked through only then. So a sidecar learns every intention that can decide
   * a call it can make (it calls only services it may read: its copy holds no others), and no
   * intention about services it cannot see.
   */
  mayViewIntention(
    principal: Principal,
    destination: ServiceRef,
    services: () => Iterable<ServiceRef>,
  ): boolean {
    if (this.decide(principal, 'read', destination).allowed) return true;
    if (destination.name !== '*') return false;
    for (const s of services()) {
      if (s.namespace === destination.namespace && this.decide(principal, 'read', s).allowed)
        return true;
    }
    return false;
  }

  /**
   * Whether `principal` administers a whole namespace (`*` for all): it sees that
   * namespace's ACLs and their changes (and, for `*`, resource problems).
   */
  mayAdminister(principal: Principal, namespace: string): boolean {
    return this.decide(principal, 'admin', { namespace, name: '*' }).allowed;
  }

  /**
   * Everything discovery of `service` asks besides its own blocked flag: the ACL `discover`
   * verb, the intentions between the caller's services and this one, and the service's
   * rate limit per caller. `key` is the service's `namespace/name`, when the caller has it.
   * An allowed outcome is remembered per principal (until the policies change); the rate
   * limit is taken on every request.
   */
  discover(caller: Caller, service: ServiceRef, key?: string): void {
    this.refresh();
    const principal = caller.principal;
    const known = this.opts.sourcesOf(principal);
    const named = caller.source;
    // A repeated header (an array) is refused by the full check; it is never remembered.
    const source = named === undefined ? NO_SOURCE : typeof named === 'string' ? named : undefined;
    const serviceKey = key ?? `${service.namespace}/${service.name}`;
    if (source === undefined || !this.discoveries.allowed(principal, source, serviceKey, known)) {
      this.checkDiscover(caller, service, known);
      if (source !== undefined) {
        const overflows = this.discoveries.overflows;
        this.discoveries.remember(principal, source, serviceKey, known);
        if (this.discoveries.overflows !== overflows) this.opts.metrics?.discoveryCacheOverflow?.();
      }
    }
    const limits = this.opts.serviceLimit(service);
    if (limits !== undefined) {
      const key = `s\0${caller.principal.id}\0${service.namespace}/${service.name}`;
      this.take(caller, key, limits, { action: 'discover', service });
    }
  }

  /** ACL decisions cached now. */
  get decisionCacheSize(): number {
    return this.decisionCount;
  }

  /** Allowed discoveries remembered now (discovery-cache.ts). */
  get discoveryCacheSize(): number {
    return this.discoveries.size;
  }

  private checkDiscover(caller: Caller, service: ServiceRef, known: readonly ServiceRef[]): void {
    this.authorize(caller, 'discover', service);
    for (const source of this.sourcesFor(caller, service, known)) {
      const decision = this.intention(source, service);
      if (!decision.allowed) {
        this.deny(caller, {
          action: 'discover',
          service,
          reason: decision.reason,
          denial: 'intention',
        });
        throw this.mark(
          new MaxineError('FORBIDDEN', decision.reason, {
            decidedBy: decision.decidedBy,
            source: `${source.namespace}/${source.name}`,
          }),
        );
      }
    }
  }

  /**
   * The services the caller discovers as. Where its identity is known (a sidecar's pod, a
   * ServiceAccount a MaxineService names in `serviceAccount`), those services: a
   * `x-maxine-source` naming one of them narrows to it, naming any other is refused
   * (SOURCE_MISMATCH). Otherwise the `x-maxine-source` it names (a ServiceAccount only a
   * service of its own namespace: SOURCE_MISMATCH otherwise); with none, under
   * `--intention-default deny` the discovery is refused (SOURCE_REQUIRED), under `allow` it
   * is not checked against intentions.
   */
  private sourcesFor(
    caller: Caller,
    service: ServiceRef,
    known: readonly ServiceRef[],
  ): readonly ServiceRef[] {
    const named = this.namedSource(caller.source);
    if (known.length > 0) {
      if (named === undefined) return known;
      const own = known.find((k) => k.namespace === named.namespace && k.name === named.name);
      if (own !== undefined) return [own];
      const mine = known.map((k) => `${k.namespace}/${k.name}`).join(', ');
      return this.refuseSource(caller, service, {
        code: 'SOURCE_MISMATCH',
        reason: `${caller.principal.who} is ${mine}; it cannot discover as ${named.namespace}/${named.name} (x-maxine-source)`,
      });
    }
    if (named !== undefined) {
      // A ServiceAccount's workloads run in its namespace: none can be a service elsewhere.
      const own = caller.principal.identity;
      if (own.kind === 'ServiceAccount' && named.namespace !== own.namespace) {
        return this.refuseSource(caller, service, {
          code: 'SOURCE_MISMATCH',
          reason: `${caller.principal.who} runs in namespace ${own.namespace}; it cannot discover as ${named.namespace}/${named.name} (x-maxine-source)`,
        });
      }
      return [named];
    }
    if (this.opts.intentionDefault === 'allow') return [];
    return this.refuseSource(caller, service, {
      code: 'SOURCE_REQUIRED',
      reason: `A source identity is required: the intention default is deny and ${caller.principal.who} is no known service's workload; send x-maxine-source: <namespace>/<name> or use the service's ServiceAccount`,
    });
  }

  private namedSource(named: Origin['source']): ServiceRef | undefined {
    if (named === undefined) return undefined;
    const source = serviceRefString.safeParse(named);
    if (!source.success) {
      throw new MaxineError(
        'VALIDATION_FAILED',
        'x-maxine-source must be "namespace/name" of the calling service',
      );
    }
    return source.data;
  }

  private refuseSource(
    caller: Caller,
    service: ServiceRef,
    { code, reason }: { code: 'SOURCE_MISMATCH' | 'SOURCE_REQUIRED'; reason: string },
  ): never {
    this.deny(caller, { action: 'discover', service, reason, denial: 'intention' });
    throw this.mark(new MaxineError(code, reason));
  }

  /** May `source` call `destination` (with this HTTP request, if given)? */
  intention(
    source: ServiceRef,
    destination: ServiceRef,
    http?: HttpRequestInfo,
  ): IntentionDecision {
    this.refresh();
    const request = { source, destination, ...(http && { http }) };
    if (http !== undefined)
      return evaluateIntentions(this.intentions, request, this.opts.intentionDefault);
    const key = `${source.namespace}/${source.name}\0${destination.namespace}/${destination.name}`;
    let decision = this.intentionDecisions.get(key);
    if (decision === undefined) {
      decision = evaluateIntentions(this.intentions, request, this.opts.intentionDefault);
      if (this.intentionDecisions.size >= CACHE_LIMIT) this.intentionDecisions.clear();
      this.intentionDecisions.set(key, decision);
    }
    return decision;
  }

  /** Records a refusal that was decided elsewhere (blocked service, another pod's instance). */
  deny(
    caller: Caller,
    what: { action: string; service?: ServiceRef; object?: string; reason: string; denial: Denial },
  ): void {
    this.opts.metrics?.denied(what.denial);
    this.record(caller, {
      who: caller.principal.who,
      action: what.action,
      object:
        what.object ?? (what.service && `service ${what.service.namespace}/${what.service.name}`),
      outcome: 'denied',
      reason: what.reason,
    });
  }

  /**
   * Runs `work`, auditing a refusal decided inside it (a blocked service, another pod's
   * instance) before it propagates.
   */
  audited<T>(
    caller: Caller,
    what: { action: string; service?: ServiceRef; object?: string },
    work: () => T,
  ): T {
    try {
      return work();
    } catch (err) {
      this.refused(caller, what, err);
      throw err;
    }
  }

  /**
   * What `audited` does when its work throws, for callers that run the work themselves (the
   * discovery hot path: no closure per request): audits a refusal not yet recorded.
   */
  refused(
    caller: Caller,
    what: { action: string; service?: ServiceRef; object?: string },
    err: unknown,
  ): void {
    if (err instanceof MaxineError && err.status === 403 && !this.recorded.has(err)) {
      const denial = err.code === 'SERVICE_BLOCKED' ? 'blocked' : 'pod';
      this.deny(caller, { ...what, reason: err.message, denial });
    }
  }

  private mark(err: MaxineError): MaxineError {
    this.recorded.add(err);
    return err;
  }

  /**
   * Records an allowed read as `--audit-allowed-reads` says: not at all (the default), each
   * one, or one record standing for every N (`sampled: N`).
   */
  allowedRead(caller: Caller, action: string, service: ServiceRef, key?: string): void {
    const every = this.opts.auditAllowedReads ?? 0;
    if (every === 0 || this.opts.audit === undefined) return;
    if (every === 'aggregate') {
      const source = caller.source;
      this.readCounts?.add(
        caller.principal,
        typeof source === 'string' ? source : NO_SOURCE,
        key ?? `${service.namespace}/${service.name}`,
        this.now(),
      );
      return;
    }
    this.readsUnrecorded += 1;
    if (this.readsUnrecorded < every) return;
    this.readsUnrecorded = 0;
    this.record(caller, {
      who: caller.principal.who,
      action,
      object: `service ${service.namespace}/${service.name}`,
      outcome: 'allowed',
      ...(every > 1 && { sampled: every }),
    });
  }

  /**
   * Writes the allowed discoveries counted under `--audit-allowed-reads aggregate`, one record
   * per principal, source and service (the owner calls it every interval and on shutdown).
   */
  flushAllowedReads(): void {
    this.readCounts?.flush(this.now());
  }

  /** Keys counted now under `aggregate` (bounded by `allowedReadsMaxKeys`). */
  get allowedReadKeys(): number {
    return this.readCounts?.size ?? 0;
  }

  /** Records an allowed change (registration, deregistration). */
  allowed(caller: Caller, action: string, object: string): void {
    this.record(caller, { who: caller.principal.who, action, object, outcome: 'allowed' });
  }

  private record(origin: Origin, entry: Omit<AuditEntry, 'reqId'>): void {
    if (this.opts.audit === undefined) return;
    this.opts.audit({ ...entry, reqId: origin.requestId, address: origin.address });
  }

  /** The intentions in force, after namespace confinement (what discovery checks). */
  intentionsInForce(): readonly IntentionEntry[] {
    this.refresh();
    return this.intentions;
  }

  private refresh(): void {
    if (this.version === this.opts.store.version) return;
    this.version = this.opts.store.version;
    const acls = [...builtinAcls(this.opts), ...this.opts.store.acls.values()];
    this.acl = new AclEvaluator(acls, { globalNamespaces: [...this.global] });
    // An intention outside the policy namespaces governs only its own namespace's services.
    this.intentions = [...this.opts.store.intentions.values()].filter((i) =>
      intentionInForce(i, this.global),
    );
    this.clearDecisions();
    this.intentionDecisions.clear();
    this.discoveries.clear();
    this.opts.logger.debug(
      { acls: acls.length, intentions: this.intentions.length },
      'policy index rebuilt',
    );
  }
}
