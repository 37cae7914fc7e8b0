/**
 * Pure evaluation of MaxineIntentions: may `source` call `destination` (and, at L7, this
 * request)? No I/O; the caller passes the intentions in force and the cluster-wide default.
 *
 * Semantics follow Consul ServiceIntentions (its intentions overview and config entry docs):
 * - Every (intention, source) pair whose destination and source patterns match the request
 *   is a candidate, ranked by Consul's precedence table (`intentionPrecedence`). Destination
 *   exactness dominates, so an exact destination name beats a `*` name in its namespace,
 *   which beats a `*` namespace; a wildcard-destination intention still applies when the
 *   exact one has no matching source.
 * - The highest precedence decides. Candidates of equal precedence are all evaluated and
 *   deny wins over allow.
 * - A source with `action` decides every request. A source with `permissions` evaluates them
 *   top to bottom; the first match is terminal. A request matching no permission falls
 *   through to the cluster default — not to lower-precedence intentions (as in Consul).
 * - No candidate: the cluster default.
 *
 * Choices where the schema is looser than Consul or the request carries less:
 * - A source without `namespace` means the intention object's namespace (the Kubernetes
 *   convention); a destination without one likewise.
 * - An unknown source (no identity) matches only sources naming `*` for both namespace and
 *   name, so "`*` deny" on a destination also shuts out anonymous callers and "`*` allow"
 *   opens the destination to them; named or namespace-scoped sources never match it.
 * - L4 check (no `http` in the request, e.g. at discovery time): a source with permissions
 *   counts as allowed when some request could be allowed — it reaches an `allow` permission
 *   before any catch-all `deny` permission, or some requests fall through to a default of
 *   allow. It is denied only when no request could pass: a catch-all `deny` permission comes
 *   first, or every permission denies and the default is deny. This over-approximates (a
 *   narrow deny can shadow a later allow); the per-request L7 check is authoritative.
 * - Path and header regexes must match the whole value (Envoy `safe_regex` semantics).
 *   Paths are matched as given minus the query string; the caller normalises them.
 * - A header matcher with no condition tests presence; `present: false` tests absence;
 *   `invert` negates the whole condition, so an inverted value matcher also matches when the
 *   header is absent.
 */
import { fullRegexMatch } from '../regex-safety.js';
import type { IntentionSpec } from '../resources.js';

export type IntentionAction = 'allow' | 'deny';

/** A service, or a pattern where either part may be `*`. */
export interface ServiceRef {
  namespace: string;
  name: string;
}

/** An intention in force: the object's namespace and name, and its spec. */
export interface IntentionEntry {
  namespace: string;
  name: string;
  spec: IntentionSpec;
}

export interface HttpRequestInfo {
  method: string;
  path: string;
  headers: Readonly<Record<string, string | undefined>>;
}

export interface IntentionRequest {
  /** `undefined`: the caller has no known identity. */
  source?: ServiceRef;
  destination: ServiceRef;
  /** Absent: an L4 (connection or discovery-time) check. */
  http?: HttpRequestInfo;
}

export interface IntentionDecidedBy {
  /** `namespace/name` of the MaxineIntention object. */
  intention: string;
  /** The matching source pattern, `namespace/name`. */
  source: string;
  /** Index into the source's `permissions` of the permission that decided. */
  permission?: number;
}

export interface IntentionDecision {
  allowed: boolean;
  decidedBy: IntentionDecidedBy | 'default';
  reason: string;
}

type IntentionSource = IntentionSpec['sources'][number];
export type Permission = NonNullable<IntentionSource['permissions']>[number];
export type HttpPermissionMatch = Permission['http'];
type HeaderMatch = NonNullable<HttpPermissionMatch['headers']>[number];

const WILDCARD = '*';

/** Consul's count of exact parts: a wildcard namespace makes the name irrelevant. */
function exactParts(pattern: ServiceRef): number {
  if (pattern.namespace === WILDCARD) return 0;
  return pattern.name === WILDCARD ? 1 : 2;
}

/**
 * Consul's intention precedence (1–9, higher wins) for a source pattern and a destination
 * pattern, as in Consul's `UpdatePrecedence`: destination exactness picks the band (9, 6, 3),
 * each wildcard part of the source takes one off.
 */
export function intentionPrecedence(source: ServiceRef, destination: ServiceRef): number {
  const band = 3 * (exactParts(destination) + 1);
  return band - (2 - exactParts(source));
}

function partMatches(pattern: string, value: string): boolean {
  return pattern === WILDCARD || pattern === value;
}

function patternMatches(pattern: ServiceRef, ref: ServiceRef | undefined): boolean {
  if (ref === undefined) return pattern.namespace === WILDCARD && pattern.name === WILDCARD;
  return partMatches(pattern.namespace, ref.namespace) && partMatches(pattern.name, ref.name);
}

/**
 * The sources of `entry` whose pattern matches `caller` (wildcards included): what the entry
 * says about calls from that service, to whichever destination it names. The event stream
 * sends a sidecar the intentions naming its service this way (`caller=`), and the sidecar's
 * discovery scope takes in the destinations they allow.
 */
export function sourcesNaming(
  entry: IntentionEntry,
  caller: ServiceRef,
): IntentionSpec['sources'][number][] {
  return entry.spec.sources.filter((source) =>
    patternMatches({ namespace: source.namespace ?? entry.namespace, name: source.name }, caller),
  );
}

// ---- L7 matching ----

function headerValue(
  headers: Readonly<Record<string, string | undefined>>,
  name: string,
): string | undefined {
  const lower = name.toLowerCase();
  const direct = headers[lower] ?? headers[name];
  if (direct !== undefined) return direct;
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined && key.toLowerCase() === lower) return value;
  }
  return undefined;
}

function headerConditionHolds(h: HeaderMatch, value: string | undefined): boolean {
  if (h.present !== undefined) return h.present === (value !== undefined);
  if (value === undefined) return false;
  if (h.exact !== undefined) return value === h.exact;
  if (h.prefix !== undefined) return value.startsWith(h.prefix);
  if (h.suffix !== undefined) return value.endsWith(h.suffix);
  if (h.contains !== undefined) return value.includes(h.contains);
  if (h.regex !== undefined) return fullRegexMatch(h.regex, value);
  return true;
}

function headerMatches(h: HeaderMatch, headers: HttpRequestInfo['headers']): boolean {
  const holds = headerConditionHolds(h, headerValue(headers, h.name));
  return h.invert === true ? !holds : holds;
}

function pathOnly(path: string): string {
  const end = path.search(/[?#]/);
  return end === -1 ? path : path.slice(0, end);
}

function pathMatches(match: HttpPermissionMatch, path: string): boolean {
  if (match.pathExact !== undefined) return path === match.pathExact;
  if (match.pathPrefix !== undefined) return path.startsWith(match.pathPrefix);
  if (match.pathRegex !== undefined) return fullRegexMatch(match.pathRegex, path);
  return true;
}

/** Whether one permission's HTTP conditions (path, methods, all headers) match the request. */
export function httpMatches(match: HttpPermissionMatch, http: HttpRequestInfo): boolean {
  if (!pathMatches(match, pathOnly(http.path))) return false;
  const methods = match.methods ?? [];
  if (methods.length > 0 && !(methods as readonly string[]).includes(http.method)) return false;
  return (match.headers ?? []).every((h) => headerMatches(h, http.headers));
}

/** A permission that matches every request (nothing after it is reachable). */
export function isCatchAll(match: HttpPermissionMatch): boolean {
  return (
    match.pathExact === undefined &&
    match.pathRegex === undefined &&
    (match.pathPrefix === undefined || match.pathPrefix === '/') &&
    (match.methods ?? []).length === 0 &&
    (match.headers ?? []).length === 0
  );
}

// ---- evaluation ----

/** A matching (intention, source) pair: who said what about this caller and destination. */
export interface Candidate {
  /** `namespace/name` of the MaxineIntention object. */
  intention: string;
  /** The source pattern with the default namespace filled in. */
  sourcePattern: ServiceRef;
  source: IntentionSource;
}

interface Context {
  request: IntentionRequest;
  defaultAction: IntentionAction;
}

const fmt = (ref: ServiceRef) => `${ref.namespace}/${ref.name}`;
const verb = (action: IntentionAction) => (action === 'allow' ? 'allows' : 'denies');

function describeRequest(http: HttpRequestInfo): string {
  return `${http.method} ${http.path}`;
}

function defaultDecision(ctx: Context, reason: string): IntentionDecision {
  return {
    allowed: ctx.defaultAction === 'allow',
    decidedBy: 'default',
    reason: `${reason}; default ${ctx.defaultAction}`,
  };
}

function byCandidate(
  c: Candidate,
  action: IntentionAction,
  what: string,
  permission?: number,
): IntentionDecision {
  const decidedBy: IntentionDecidedBy = { intention: c.intention, source: fmt(c.sourcePattern) };
  if (permission !== undefined) decidedBy.permission = permission;
  const suffix = permission === undefined ? '' : ` (permission ${permission})`;
  return {
    allowed: action === 'allow',
    decidedBy,
    reason: `intention ${c.intention}: source ${fmt(c.sourcePattern)} ${verb(action)} ${what}${suffix}`,
  };
}

function decideL7(c: Candidate, permissions: Permission[], ctx: Context): IntentionDecision {
  const http = ctx.request.http;
  if (http === undefined) return decideL4(c, permissions, ctx);
  for (const [index, p] of permissions.entries()) {
    if (httpMatches(p.http, http)) return byCandidate(c, p.action, describeRequest(http), index);
  }
  return defaultDecision(
    ctx,
    `intention ${c.intention}: source ${fmt(c.sourcePattern)} has no permission matching ${describeRequest(http)}`,
  );
}

/** L4 check of a source with permissions: could some request be allowed? See the header. */
function decideL4(c: Candidate, permissions: Permission[], ctx: Context): IntentionDecision {
  for (const [index, p] of permissions.entries()) {
    if (p.action === 'allow') return byCandidate(c, 'allow', 'some requests', index);
    if (isCatchAll(p.http)) return byCandidate(c, 'deny', 'every request', index);
  }
  const subject = `intention ${c.intention}: source ${fmt(c.sourcePattern)}`;
  return defaultDecision(
    ctx,
    ctx.defaultAction === 'allow'
      ? `${subject} denies some requests, the rest match no permission`
      : `${subject} has only deny permissions`,
  );
}

function decide(c: Candidate, ctx: Context): IntentionDecision {
  const { action, permissions = [] } = c.source;
  if (action !== undefined) return byCandidate(c, action, 'every request');
  return decideL7(c, permissions, ctx);
}

/**
 * The matching (intention, source) pairs of the highest precedence, in a stable order: the
 * pairs that decide `request` (`evaluateIntentions` decides from them). The mesh renderers use
 * them to translate the decision for a class of callers.
 */
export function topCandidates(
  intentions: Iterable<IntentionEntry>,
  request: IntentionRequest,
): Candidate[] {
  let best = 0;
  let top: Candidate[] = [];
  for (const entry of intentions) {
    const { destination, sources } = entry.spec;
    const dest = { namespace: destination.namespace ?? entry.namespace, name: destination.name };
    if (!patternMatches(dest, request.destination)) continue;
    for (const source of sources) {
      const pattern = { namespace: source.namespace ?? entry.namespace, name: source.name };
      if (!patternMatches(pattern, request.source)) continue;
      const precedence = intentionPrecedence(pattern, dest);
      if (precedence < best) continue;
      if (precedence > best) [best, top] = [precedence, []];
      top.push({ intention: `${entry.namespace}/${entry.name}`, sourcePattern: pattern, source });
    }
  }
  const key = (c: Candidate) => `${c.intention} ${fmt(c.sourcePattern)}`;
  return top.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * Decide whether `request` is allowed by the intentions in force, falling back to
 * `defaultAction` (the cluster-wide default) when none decides.
 */
export function evaluateIntentions(
  intentions: Iterable<IntentionEntry>,
  request: IntentionRequest,
  defaultAction: IntentionAction,
): IntentionDecision {
  return decideCandidates(topCandidates(intentions, request), request, defaultAction);
}

/**
 * The decision from the top candidates of `request` (`topCandidates`): `evaluateIntentions`
 * in two steps, for a caller that decides many requests of the same source and destination
 * (the sidecar's call authorizer) and finds the candidates once.
 */
export function decideCandidates(
  candidates: readonly Candidate[],
  request: IntentionRequest,
  defaultAction: IntentionAction,
): IntentionDecision {
  const ctx: Context = { request, defaultAction };
  if (candidates.length === 0) {
    const source =
      request.source === undefined ? 'unknown source' : `source ${fmt(request.source)}`;
    return defaultDecision(ctx, `no intention for ${fmt(request.destination)} matches ${source}`);
  }
  const decisions = candidates.map((c) => decide(c, ctx));
  return decisions.find((d) => !d.allowed) ?? decisions[0]!;
}
