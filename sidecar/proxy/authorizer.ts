/**
 * Intentions enforced at the caller (issue 14): may this pod's service call `destination`
 * with this request? The answer is the operator's own — the same pure evaluator
 * (common/policy/intentions.ts: Consul's precedence, deny wins ties, L7 permissions, the
 * cluster default) over the intentions in force the operator streams to this sidecar
 * (sidecar/mirror-state.ts) — with the caller's identity fixed to the pod's service.
 * Intention sources name services (`namespace/name`), not ServiceAccounts, so the pod's
 * ServiceAccount plays no part here.
 *
 * Hot path (issue 17 measures it): the work that does not depend on the request is done once
 * per destination and policy version. For a destination the evaluator's `topCandidates` (the
 * (intention, source) pairs of the highest precedence matching this caller: the only ones a
 * decision is made from) are found once, and when none of them has L7 permissions the
 * decision is computed then and returned as the same object on every call (about 15 ns a
 * call). Otherwise each call runs the evaluator's `decideCandidates` on them with the request:
 * a few µs with one L7 source, about half of what `evaluateIntentions` (finding the candidates
 * again) took in the same run; measured on a shared, loaded 2-core machine. The cache holds
 * only destinations the copy holds (the operator decides those), is dropped when the policy
 * version moves, and is bounded besides.
 *
 * Paths: an upstream may normalise the path it receives (`/a/../admin`, `//admin`,
 * `%61dmin`), so a path whose normalised form differs is allowed only when both forms are.
 */
import { decideCandidates, topCandidates } from '../../common/policy/intentions.js';
import type {
  Candidate,
  HttpRequestInfo,
  IntentionDecision,
} from '../../common/policy/intentions.js';
import type { ServiceRef } from '../../common/wire.js';
import type { IntentionSource } from '../mirror-state.js';
import type { AuthorizeDecision, CallAuthorizer, OutboundRequest } from './hooks.js';

export interface IntentionAuthorizerOptions {
  /** The pod's own service: the source of every call this sidecar makes. */
  caller: ServiceRef;
  /** The mirrored intentions and default (the sidecar's MirrorState). */
  policy: IntentionSource;
  /**
   * The destinations whose intentions this sidecar mirrors (its discovery scope); a call to
   * any other is refused, since a decision without its intentions could be wrong. Absent:
   * every destination (cluster scope).
   */
  inScope?: (destination: ServiceRef) => boolean;
  /** Bound on destinations with a precomputed decision. Default 10 000. */
  maxCachedDestinations?: number;
}

/** What is precomputed for one destination. */
interface Compiled {
  /** The decision, when no request detail can change it. */
  readonly fixed: AuthorizeDecision | undefined;
  /** The (intention, source) pairs of the highest precedence matching the caller. */
  readonly candidates: readonly Candidate[];
  /** Whether a permission tests headers (only then are header arrays flattened). */
  readonly readsHeaders: boolean;
  /**
   * The decision without a request (what discovery asks, as the operator's does): allowed
   * when some call is, e.g. by an L7 permission.
   */
  readonly discovery: AuthorizeDecision;
}

const fmt = (ref: ServiceRef): string => `${ref.namespace}/${ref.name}`;
const ALLOWED: AuthorizeDecision = Object.freeze({ allowed: true });
const NO_HEADERS: HttpRequestInfo['headers'] = Object.freeze({});

/**
 * Where a path may differ from what an upstream acts on: dot segments, `//`, `%`, `\`, `;`,
 * `#` (the evaluator ends the path there, a server that does not may normalise past it).
 */
const UNNORMALISED = /(^|\/)\.\.?(\/|$)|\/\/|%|\\|;|#/;

/**
 * The path as an upstream that normalises would see it (query dropped; a `#` is part of the
 * path, as a request-target has no fragment and Go's server reads it so): percent-decoding
 * (invalid escapes kept), `\` as `/`, repeated slashes merged, path parameters (`;…` in a
 * segment, which Java servers drop) removed, dot segments removed (RFC 3986 §5.2.4).
 */
export function normalisePath(raw: string): string {
  const end = raw.indexOf('?');
  let path = end === -1 ? raw : raw.slice(0, end);
  path = path.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
  path = path
    .replace(/\\/g, '/')
    .replace(/;[^/]*/g, '')
    .replace(/\/{2,}/g, '/');
  const out: string[] = [];
  const segments = path.split('/');
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..' && out.length > 1) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(segment);
  }
  const joined = out.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

function pathOnly(path: string): string {
  const end = path.search(/[?#]/);
  return end === -1 ? path : path.slice(0, end);
}

/** `namespace/name` of an intention, as a reference. */
function refOf(key: string): ServiceRef {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Headers as the evaluator reads them: a repeated header (an array) joined with `, `. */
function flatHeaders(headers: OutboundRequest['headers']): HttpRequestInfo['headers'] {
  for (const key in headers) {
    if (!Array.isArray(headers[key])) continue;
    const flat: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(headers))
      flat[name] = Array.isArray(value) ? value.join(', ') : value;
    return flat;
  }
  return headers as HttpRequestInfo['headers'];
}

export class IntentionAuthorizer implements CallAuthorizer {
  private readonly caller: ServiceRef;
  private readonly callerName: string;
  private version = -1;
  private cache = new Map<string, Map<string, Compiled>>();
  private cached = 0;
  private readonly maxCached: number;
  /** The allowed decision of each intention (`namespace/name`), shared by its calls. */
  private readonly allowedBy = new Map<string, AuthorizeDecision>();

  constructor(private readonly opts: IntentionAuthorizerOptions) {
    this.caller = { namespace: opts.caller.namespace, name: opts.caller.name };
    this.callerName = fmt(this.caller);
    this.maxCached = opts.maxCachedDestinations ?? 10_000;
  }

  authorize(request: OutboundRequest): AuthorizeDecision {
    const compiled = this.compiled(request.destination);
    if (compiled.fixed !== undefined) return compiled.fixed;
    return this.perRequest(compiled, request);
  }

  /**
   * Whether the pod's service may discover `destination`: the intentions' decision without a
   * request (the operator's discovery check), precomputed per destination and policy version
   * with the rest, so the local discovery hot path pays two Map lookups.
   */
  discovery(destination: ServiceRef): AuthorizeDecision {
    return this.compiled(destination).discovery;
  }

  private compiled(destination: ServiceRef): Compiled {
    const policy = this.opts.policy;
    if (policy.policyVersion !== this.version) {
      this.version = policy.policyVersion;
      this.cache = new Map();
      this.cached = 0;
      this.allowedBy.clear();
    }
    const { namespace, name } = destination;
    const hit = this.cache.get(namespace)?.get(name);
    if (hit !== undefined) return hit;
    const compiled = this.compile(destination);
    // Only destinations the copy holds are kept: an app naming random services adds nothing.
    if (policy.has(namespace, name)) {
      if (this.cached >= this.maxCached) {
        this.cache = new Map();
        this.cached = 0;
      }
      let byName = this.cache.get(namespace);
      if (byName === undefined) this.cache.set(namespace, (byName = new Map<string, Compiled>()));
      byName.set(name, compiled);
      this.cached += 1;
    }
    return compiled;
  }

  private compile(destination: ServiceRef): Compiled {
    const dest = { namespace: destination.namespace, name: destination.name };
    const intentionDefault = this.opts.policy.intentionDefault;
    if (intentionDefault === undefined) {
      return this.refusal(
        dest,
        'this sidecar holds no intentions from the operator yet (no snapshot, or an operator that does not send them); calls are refused until it does',
      );
    }
    if (this.opts.inScope !== undefined && !this.opts.inScope(dest)) {
      return this.refusal(
        dest,
        `${fmt(dest)} is outside this sidecar's discovery scope (maxine.io/discovery-scope), so the intentions deciding it are not mirrored here; list it in the MaxineService's dependencies, allow the call with a MaxineIntention, or widen the pod's scope`,
      );
    }
    const request = { source: this.caller, destination: dest };
    const candidates = topCandidates(this.opts.policy.intentions(), request);
    const l7 = candidates.some(
      (c) => c.source.action === undefined && (c.source.permissions ?? []).length > 0,
    );
    const readsHeaders = candidates.some((c) =>
      (c.source.permissions ?? []).some((p) => (p.http.headers ?? []).length > 0),
    );
    const l4 = this.decision(dest, decideCandidates(candidates, request, intentionDefault));
    const fixed = l7 ? undefined : l4;
    return { fixed, candidates, readsHeaders, discovery: l4 };
  }

  private refusal(destination: ServiceRef, why: string): Compiled {
    const refused: AuthorizeDecision = {
      allowed: false,
      reason: `${this.callerName} may not call ${fmt(destination)}: ${why}`,
    };
    return { fixed: refused, candidates: [], readsHeaders: false, discovery: refused };
  }

  private perRequest(compiled: Compiled, request: OutboundRequest): AuthorizeDecision {
    const intentionDefault = this.opts.policy.intentionDefault ?? 'deny';
    const headers = compiled.readsHeaders ? flatHeaders(request.headers) : NO_HEADERS;
    const http: HttpRequestInfo = { method: request.method, path: request.path, headers };
    const base = { source: this.caller, destination: request.destination, http };
    const raw = decideCandidates(compiled.candidates, base, intentionDefault);
    if (!raw.allowed || !UNNORMALISED.test(request.path))
      return this.decision(base.destination, raw);
    const normalised = normalisePath(request.path);
    if (normalised === pathOnly(request.path)) return this.decision(base.destination, raw);
    const second = decideCandidates(
      compiled.candidates,
      { ...base, http: { ...http, path: normalised } },
      intentionDefault,
    );
    return this.decision(base.destination, second.allowed ? raw : second);
  }

  private decision(destination: ServiceRef, d: IntentionDecision): AuthorizeDecision {
    if (d.allowed) {
      if (d.decidedBy === 'default') return ALLOWED;
      // An allowed call's answer depends only on the intention: one object per intention.
      const key = d.decidedBy.intention;
      let allowed = this.allowedBy.get(key);
      if (allowed === undefined) {
        if (this.allowedBy.size >= this.maxCached) this.allowedBy.clear();
        allowed = { allowed: true, intention: refOf(key) };
        this.allowedBy.set(key, allowed);
      }
      return allowed;
    }
    const intention = d.decidedBy === 'default' ? undefined : refOf(d.decidedBy.intention);
    return {
      allowed: false,
      reason: `${this.callerName} may not call ${fmt(destination)}: ${d.reason}`,
      ...(intention !== undefined && { intention }),
    };
  }
}

/**
 * Whether `destination` is within a mirror scope as `sidecar.ts` builds it (`ns/*` and
 * `ns/name` patterns; undefined: every service), for `inScope`.
 */
export function scopeCovers(
  scope: readonly string[] | undefined,
  destination: ServiceRef,
): boolean {
  if (scope === undefined) return true;
  return scope.some((pattern) => {
    const slash = pattern.indexOf('/');
    const ns = pattern.slice(0, slash);
    const name = pattern.slice(slash + 1);
    return (
      (ns === '*' || ns === destination.namespace) && (name === '*' || name === destination.name)
    );
  });
}
