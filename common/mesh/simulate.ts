/**
 * Test-only simulators of how Istio and Linkerd decide a request with the authorization
 * objects the renderers emit (see safety.test.ts). Small and pure: they model the parts of
 * each mesh's semantics that the renderers use, and throw on any field they do not model, so
 * a renderer change that emits something new cannot be silently misread.
 *
 * - Istio (security.istio.io/v1 AuthorizationPolicy): DENY policies first; with no ALLOW
 *   policy a request is allowed; otherwise it needs a matching ALLOW rule.
 * - Linkerd (policy.linkerd.io): per Server; `all-unauthenticated` admits everything, `deny`
 *   routes the request to the most specific HTTPRoute (or the default route when the Server
 *   has none) and admits it when an AuthorizationPolicy on the Server or on that route names
 *   authentications the client satisfies. Equally specific routes are all considered.
 */
import { fullRegexMatch } from '../regex-safety.js';
import type { MeshObject } from './model.js';

export interface SimRequest {
  method: string;
  /** May carry a query string; both meshes match the path without it. */
  path: string;
  headers: Readonly<Record<string, string | undefined>>;
}

export class UnsupportedError extends Error {}

function unsupported(what: string): never {
  throw new UnsupportedError(`simulator does not model ${what}`);
}

function onlyKeys(obj: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) unsupported(`${where}.${key}`);
  }
}

function pathOnly(path: string): string {
  const end = path.search(/[?#]/);
  return end === -1 ? path : path.slice(0, end);
}

function header(req: SimRequest, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(req.headers)) {
    if (value !== undefined && key.toLowerCase() === lower) return value;
  }
  return undefined;
}

// ---------------------------------------------------------------- Istio

interface IstioSource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
}
interface IstioOperation {
  paths?: string[];
  notPaths?: string[];
  methods?: string[];
  notMethods?: string[];
}
interface IstioCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}
interface IstioRule {
  from?: { source: IstioSource }[];
  to?: { operation: IstioOperation }[];
  when?: IstioCondition[];
}
interface IstioSpec {
  selector?: unknown;
  action?: string;
  rules?: IstioRule[];
}

/** A request as Istio sees it: `principal` undefined means plaintext (no mTLS identity). */
export interface IstioRequest extends SimRequest {
  principal?: string;
}

/** Istio string match: exact, `prefix*`, `*suffix`, `*` (any value). Absent values match nothing. */
function istioMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === '*') return value !== '';
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}

function fieldOk(
  values: string[] | undefined,
  notValues: string[] | undefined,
  value: string | undefined,
): boolean {
  if (values !== undefined && !values.some((p) => istioMatch(p, value))) return false;
  if (notValues !== undefined && notValues.some((p) => istioMatch(p, value))) return false;
  return true;
}

function principalNamespace(principal: string | undefined): string | undefined {
  if (principal === undefined) return undefined;
  return /\/ns\/([^/]+)\//.exec(principal)?.[1];
}

function sourceMatches(s: IstioSource, req: IstioRequest): boolean {
  onlyKeys(s, ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'], 'source');
  return (
    fieldOk(s.principals, s.notPrincipals, req.principal) &&
    fieldOk(s.namespaces, s.notNamespaces, principalNamespace(req.principal))
  );
}

function operationMatches(o: IstioOperation, req: IstioRequest): boolean {
  onlyKeys(o, ['paths', 'notPaths', 'methods', 'notMethods'], 'operation');
  return (
    fieldOk(o.paths, o.notPaths, pathOnly(req.path)) && fieldOk(o.methods, o.notMethods, req.method)
  );
}

function conditionHolds(c: IstioCondition, req: IstioRequest): boolean {
  onlyKeys(c, ['key', 'values', 'notValues'], 'when');
  const name = /^request\.headers\[(.+)\]$/.exec(c.key)?.[1];
  if (name === undefined) unsupported(`when key ${c.key}`);
  return fieldOk(c.values, c.notValues, header(req, name));
}

export function istioRuleMatches(rule: IstioRule, req: IstioRequest): boolean {
  onlyKeys(rule, ['from', 'to', 'when'], 'rule');
  if (rule.from !== undefined && !rule.from.some((f) => sourceMatches(f.source, req))) return false;
  if (rule.to !== undefined && !rule.to.some((t) => operationMatches(t.operation, req)))
    return false;
  return (rule.when ?? []).every((c) => conditionHolds(c, req));
}

export function istioPolicies(objects: readonly MeshObject[]): MeshObject[] {
  return objects.filter(
    (o) => o.kind === 'AuthorizationPolicy' && o.apiVersion === 'security.istio.io/v1',
  );
}

/** Istio's verdict for `req` at the workload the policies select. */
export function istioAllows(policies: readonly MeshObject[], req: IstioRequest): boolean {
  let allowPolicies = 0;
  let allowed = false;
  for (const p of policies) {
    const spec = p.spec as IstioSpec;
    onlyKeys(spec, ['selector', 'action', 'rules'], 'AuthorizationPolicy.spec');
    const action = spec.action ?? 'ALLOW';
    const matches = (spec.rules ?? []).some((r) => istioRuleMatches(r, req));
    if (action === 'DENY') {
      if (matches) return false;
    } else if (action === 'ALLOW') {
      allowPolicies++;
      allowed ||= matches;
    } else {
      unsupported(`action ${action}`);
    }
  }
  return allowPolicies === 0 || allowed;
}

// ---------------------------------------------------------------- Linkerd

/** A client as Linkerd sees it: `identity` undefined means plaintext. */
export interface LinkerdRequest extends SimRequest {
  identity?: string;
}

export interface LinkerdSemantics {
  /**
   * Whether a NetworkAuthentication also admits meshed (mTLS) clients from its networks. The
   * proxy admits every client from the networks for an authorization that requires no
   * MeshTLSAuthentication (`Authentication::Unauthenticated`), so true is Linkerd's behaviour;
   * false models a NetworkAuthentication as matching plaintext clients only.
   */
  networkAdmitsMeshed: boolean;
}

interface Ref {
  group?: string;
  kind: string;
  name: string;
}
interface HeaderMatch {
  name: string;
  type?: string;
  value: string;
}
interface RouteMatch {
  path?: { type?: string; value: string };
  headers?: HeaderMatch[];
  method?: string;
  queryParams?: unknown;
}
interface RouteSpec {
  parentRefs: Ref[];
  rules?: { matches?: RouteMatch[]; [k: string]: unknown }[];
}

/** How specific a matching route match is: compared field by field, greater wins. */
type Rank = [pathLength: number, hasMethod: number, headerCount: number];

function pathRank(path: RouteMatch['path'], reqPath: string): number | undefined {
  const p = path ?? { type: 'PathPrefix', value: '/' };
  switch (p.type ?? 'PathPrefix') {
    case 'Exact':
      return reqPath === p.value ? reqPath.length : undefined;
    case 'RegularExpression':
      return fullRegexMatch(p.value, reqPath) ? reqPath.length : undefined;
    case 'PathPrefix': {
      if (p.value === '/') return reqPath.startsWith('/') ? 1 : undefined;
      const prefix = p.value.endsWith('/') ? p.value.slice(0, -1) : p.value;
      return reqPath === prefix || reqPath.startsWith(`${prefix}/`) ? prefix.length : undefined;
    }
    default:
      return unsupported(`path match type ${p.type}`);
  }
}

function headerMatches(h: HeaderMatch, req: SimRequest): boolean {
  onlyKeys(h, ['name', 'type', 'value'], 'HTTPRoute header match');
  const value = header(req, h.name);
  if (value === undefined) return false;
  const type = h.type ?? 'Exact';
  if (type === 'Exact') return value === h.value;
  if (type === 'RegularExpression') return fullRegexMatch(h.value, value);
  return unsupported(`header match type ${type}`);
}

function matchRank(m: RouteMatch, req: SimRequest): Rank | undefined {
  onlyKeys(m, ['path', 'headers', 'method'], 'HTTPRoute match');
  const length = pathRank(m.path, pathOnly(req.path));
  if (length === undefined) return undefined;
  if (m.method !== undefined && m.method !== req.method) return undefined;
  const headers = m.headers ?? [];
  if (!headers.every((h) => headerMatches(h, req))) return undefined;
  return [length, m.method === undefined ? 0 : 1, headers.length];
}

function compareRank(a: Rank, b: Rank): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function routeRank(route: RouteSpec, req: SimRequest): Rank | undefined {
  let best: Rank | undefined;
  for (const rule of route.rules ?? []) {
    onlyKeys(rule, ['matches'], 'HTTPRoute rule');
    const matches = rule.matches ?? [{}];
    for (const m of matches) {
      const rank = matchRank(m, req);
      if (rank !== undefined && (best === undefined || compareRank(rank, best) > 0)) best = rank;
    }
  }
  return best;
}

const ANY_NETWORK = ['0.0.0.0/0', '::/0'];

interface LinkerdWorld {
  objects: readonly MeshObject[];
  semantics: LinkerdSemantics;
}

function byKind(world: LinkerdWorld, kind: string): MeshObject[] {
  return world.objects.filter(
    (o) => o.kind === kind && o.apiVersion.startsWith('policy.linkerd.io/'),
  );
}

function authnSatisfied(world: LinkerdWorld, ref: Ref, req: LinkerdRequest): boolean {
  const obj = byKind(world, ref.kind).find((o) => o.metadata.name === ref.name);
  if (obj === undefined) return false;
  if (ref.kind === 'MeshTLSAuthentication') {
    onlyKeys(obj.spec, ['identities'], 'MeshTLSAuthentication.spec');
    const identity = req.identity;
    if (identity === undefined) return false;
    const identities = (obj.spec.identities as string[] | undefined) ?? [];
    return identities.some((i) =>
      i === '*' ? true : i.startsWith('*.') ? identity.endsWith(i.slice(1)) : i === identity,
    );
  }
  if (ref.kind === 'NetworkAuthentication') {
    onlyKeys(obj.spec, ['networks'], 'NetworkAuthentication.spec');
    const networks = obj.spec.networks as { cidr: string; except?: string[] }[];
    for (const n of networks) {
      if (!ANY_NETWORK.includes(n.cidr) || n.except !== undefined)
        unsupported(`network ${JSON.stringify(n)}`);
    }
    if (networks.length === 0) return false;
    return req.identity === undefined || world.semantics.networkAdmitsMeshed;
  }
  return unsupported(`authentication kind ${ref.kind}`);
}

/** Whether an AuthorizationPolicy on `target` admits the client. */
function authorized(world: LinkerdWorld, target: Ref, req: LinkerdRequest): boolean {
  return byKind(world, 'AuthorizationPolicy').some((p) => {
    onlyKeys(p.spec, ['targetRef', 'requiredAuthenticationRefs'], 'AuthorizationPolicy.spec');
    const targetRef = p.spec.targetRef as Ref;
    if (targetRef.kind !== target.kind || targetRef.name !== target.name) return false;
    const refs = p.spec.requiredAuthenticationRefs as Ref[];
    return refs.length > 0 && refs.every((r) => authnSatisfied(world, r, req));
  });
}

/** The routes of `server` that may take `req` (all the equally most specific ones). */
function chosenRoutes(world: LinkerdWorld, server: string, req: SimRequest): Ref[] | 'default' {
  const routes = byKind(world, 'HTTPRoute').filter((r) =>
    (r.spec as unknown as RouteSpec).parentRefs.some(
      (p) => p.kind === 'Server' && p.name === server,
    ),
  );
  if (routes.length === 0) return 'default';
  let best: Rank | undefined;
  let chosen: Ref[] = [];
  for (const r of routes) {
    const rank = routeRank(r.spec as unknown as RouteSpec, req);
    if (rank === undefined) continue;
    const ref = { kind: 'HTTPRoute', name: r.metadata.name };
    const cmp = best === undefined ? 1 : compareRank(rank, best);
    if (cmp > 0) [best, chosen] = [rank, [ref]];
    else if (cmp === 0) chosen.push(ref);
  }
  return chosen;
}

export interface LinkerdVerdict {
  server: string;
  /** Allowed on some route the request may take (ties): what safety must bound. */
  allowed: boolean;
  /** Allowed on every route the request may take. */
  allowedOnEveryRoute: boolean;
  /** Routes the request may take; `default` when the Server has no HTTPRoute. */
  routes: string[];
}

function serverVerdict(world: LinkerdWorld, server: MeshObject, req: LinkerdRequest) {
  const name = server.metadata.name;
  const serverRef = { kind: 'Server', name };
  onlyKeys(server.spec, ['podSelector', 'port', 'proxyProtocol', 'accessPolicy'], 'Server.spec');
  const accessPolicy = server.spec.accessPolicy as string;
  if (accessPolicy === 'all-unauthenticated')
    return { server: name, allowed: true, allowedOnEveryRoute: true, routes: ['(open)'] };
  if (accessPolicy !== 'deny') unsupported(`accessPolicy ${accessPolicy}`);
  const onServer = authorized(world, serverRef, req);
  // Opaque traffic is authorized per connection: routes do not apply.
  const routes =
    server.spec.proxyProtocol === 'opaque' ? 'default' : chosenRoutes(world, name, req);
  if (routes === 'default')
    return { server: name, allowed: onServer, allowedOnEveryRoute: onServer, routes: [routes] };
  const each = routes.map((r) => onServer || authorized(world, r, req));
  return {
    server: name,
    allowed: each.some(Boolean),
    allowedOnEveryRoute: each.length > 0 && each.every(Boolean),
    routes: routes.map((r) => r.name),
  };
}

export function linkerdServers(objects: readonly MeshObject[]): MeshObject[] {
  return objects.filter(
    (o) => o.kind === 'Server' && o.apiVersion.startsWith('policy.linkerd.io/'),
  );
}

/** Linkerd's verdict for `req` on each Server of the objects. */
export function linkerdVerdicts(
  objects: readonly MeshObject[],
  req: LinkerdRequest,
  semantics: LinkerdSemantics,
): LinkerdVerdict[] {
  const world = { objects, semantics };
  return linkerdServers(objects).map((s) => serverVerdict(world, s, req));
}
