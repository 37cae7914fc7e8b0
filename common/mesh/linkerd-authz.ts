/**
 * Intentions as Linkerd policy (policy.linkerd.io), from the plan in authz.ts.
 *
 * Linkerd authorization is allow-only: a Server (one per declared port) with
 * `accessPolicy: deny` refuses everything that no AuthorizationPolicy admits. So:
 * - A caller class that may do everything gets an AuthorizationPolicy on every Server,
 *   requiring a MeshTLSAuthentication of its identities.
 * - A class with HTTP permissions gets routes: one HTTPRoute per distinct permission match,
 *   attached to the Servers. An allow permission authorizes the class on its route; a deny
 *   permission is a route the class is not authorized on. Linkerd picks the most specific
 *   route (by matched path length, then method, then headers), not the first permission, so an
 *   allow permission that an earlier deny permission may overlap is left out. With any route,
 *   a catch-all route keeps other traffic routable; when what matches no permission is
 *   allowed, the class is authorized on it, unless a deny could land there too (no route, or
 *   a tie with the catch-all on "/").
 * - Denied classes get nothing. Linkerd cannot exclude identities, so "everyone but X" is
 *   rendered as the namespaces and ServiceAccounts Maxine knows, minus X.
 * - Callers without a mesh identity are admitted only when nobody is restricted: Linkerd's
 *   NetworkAuthentication admits every caller of its networks, meshed ones included.
 * - No intention restricting anyone: `accessPolicy: all-unauthenticated`.
 * Each place where this is stricter than the intentions is a difference.
 */
import type { HttpPermissionMatch, Permission } from '../policy/intentions.js';
import { fullRegexMatch } from '../regex-safety.js';
import { lookupOf } from './lookup.js';
import {
  describeScope,
  fallthroughOf,
  identityKey,
  mayOverlap,
  type AuthzPlan,
  type Grant,
  type Identity,
} from './authz.js';
import {
  meshObject,
  type MeshDifference,
  type MeshInput,
  type MeshObject,
  type MeshOptions,
} from './model.js';

const POLICY_GROUP = 'policy.linkerd.io';
const PROXY_PROTOCOLS: Record<string, string> = {
  http: 'HTTP/1',
  http2: 'HTTP/2',
  grpc: 'gRPC',
  tcp: 'opaque',
};

export function linkerdIdentity(identity: Identity, options: MeshOptions): string {
  return `${identity.serviceAccount}.${identity.namespace}.serviceaccount.identity.linkerd.${options.linkerdIdentityDomain}`;
}

type Ref = { group: string; kind: string; name: string };

interface Build {
  input: MeshInput;
  servers: Ref[];
  objects: MeshObject[];
  differences: MeshDifference[];
  routes: Map<string, Ref>;
  catchAll?: Ref;
  authns: number;
  authzs: number;
}

/** Escapes regex syntax; `/` is left alone (the proxy's Rust regex refuses needless escapes). */
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type RouteMatch = Record<string, unknown>;

function pathMatchOf(match: HttpPermissionMatch): RouteMatch {
  if (match.pathExact !== undefined) return { type: 'Exact', value: match.pathExact };
  // Gateway API prefixes match whole path segments; a regex keeps Maxine's string prefix. The
  // proxy ranks a matching route by the length it matched: a regex matches the whole path, so
  // it outranks the catch-all PathPrefix "/" everywhere but on "/" itself.
  if (match.pathPrefix !== undefined)
    return { type: 'RegularExpression', value: `${escapeRegex(match.pathPrefix)}.*` };
  if (match.pathRegex !== undefined) return { type: 'RegularExpression', value: match.pathRegex };
  return { type: 'PathPrefix', value: '/' };
}

type Header = NonNullable<HttpPermissionMatch['headers']>[number];

/** A Gateway API header match (Exact or RegularExpression); undefined for a negation. */
function headerMatchOf(h: Header): { name: string; type: string; value: string } | undefined {
  if (h.invert === true || h.present === false) return undefined;
  if (h.exact !== undefined) return { name: h.name, type: 'Exact', value: h.exact };
  const value =
    h.prefix !== undefined
      ? `${escapeRegex(h.prefix)}.*`
      : h.suffix !== undefined
        ? `.*${escapeRegex(h.suffix)}`
        : h.contains !== undefined
          ? `.*${escapeRegex(h.contains)}.*`
          : (h.regex ?? '.*');
  return { name: h.name, type: 'RegularExpression', value };
}

/** HTTPRoute matches for a permission (one per method: a match holds one), or why not. */
function routeMatches(match: HttpPermissionMatch): { matches?: RouteMatch[]; lost?: string } {
  const base: RouteMatch = { path: pathMatchOf(match) };
  const headers = [];
  for (const h of match.headers ?? []) {
    const header = headerMatchOf(h);
    if (header === undefined) return { lost: `the negated header condition on ${h.name}` };
    headers.push(header);
  }
  if (headers.length > 0) base.headers = headers;
  const methods = match.methods ?? [];
  return {
    matches: methods.length === 0 ? [base] : methods.map((method) => ({ ...base, method })),
  };
}

function route(b: Build, key: string, matches: RouteMatch[]): Ref {
  const existing = b.routes.get(key);
  if (existing !== undefined) return existing;
  const { service } = b.input;
  const name = `${service.name}-route-${b.routes.size}`;
  const ref = { group: POLICY_GROUP, kind: 'HTTPRoute', name };
  b.routes.set(key, ref);
  b.objects.push(
    meshObject(
      'linkerd',
      service,
      { apiVersion: `${POLICY_GROUP}/v1beta3`, kind: 'HTTPRoute', name },
      { parentRefs: b.servers, rules: [{ matches }] },
    ),
  );
  return ref;
}

function catchAll(b: Build): Ref {
  if (b.catchAll === undefined) {
    b.catchAll = route(b, 'catch-all', [{ path: { type: 'PathPrefix', value: '/' } }]);
  }
  return b.catchAll;
}

/** The identities Linkerd should admit for a caller class; none when it cannot say. */
function identitiesOf(b: Build, grant: Grant): string[] {
  const { scope } = grant;
  const options = b.input.options;
  if (scope.kind === 'identities') return scope.identities.map((i) => linkerdIdentity(i, options));
  if (scope.kind !== 'others') return [];
  if (scope.except.length === 0) return ['*'];
  // "Everyone but X": the namespaces Maxine knows, with X's namespaces spelled out.
  const excluded = new Set(scope.except.map(identityKey));
  const affected = new Set(scope.except.map((i) => i.namespace));
  const out = new Set<string>();
  for (const [namespace, identities] of lookupOf(b.input).namespaces) {
    if (!affected.has(namespace)) {
      out.add(`*.${namespace}.serviceaccount.identity.linkerd.${options.linkerdIdentityDomain}`);
      continue;
    }
    for (const identity of identities)
      if (!excluded.has(identityKey(identity))) out.add(linkerdIdentity(identity, options));
  }
  b.differences.push({
    subject: describeScope(scope),
    message: `Linkerd cannot exclude identities, so instead of "every caller but ${[...excluded].join(', ')}" only the ServiceAccounts of MaxineServices in ${[...affected].sort().join(', ')} and every ServiceAccount of the other namespaces that have MaxineServices are admitted`,
  });
  return [...out].sort();
}

/** The authentication object of a class (created once), or undefined when nobody matches. */
function authenticationOf(b: Build, grant: Grant): Ref | undefined {
  const { service } = b.input;
  const identities = identitiesOf(b, grant);
  if (identities.length === 0) return undefined;
  const name = `${service.name}-authn-${b.authns++}`;
  b.objects.push(
    meshObject(
      'linkerd',
      service,
      { apiVersion: `${POLICY_GROUP}/v1alpha1`, kind: 'MeshTLSAuthentication', name },
      { identities },
    ),
  );
  return { group: POLICY_GROUP, kind: 'MeshTLSAuthentication', name };
}

function authorize(b: Build, target: Ref, authn: Ref): void {
  const { service } = b.input;
  const name = `${service.name}-authz-${b.authzs++}`;
  b.objects.push(
    meshObject(
      'linkerd',
      service,
      { apiVersion: `${POLICY_GROUP}/v1alpha1`, kind: 'AuthorizationPolicy', name },
      { targetRef: target, requiredAuthenticationRefs: [authn] },
    ),
  );
}

/** Routes and authorizations of a class with ordered HTTP permissions. */
function l7Grant(b: Build, grant: Grant, permissions: Permission[], authn: Ref): void {
  const subject = `${grant.decidedBy.join(', ')} (${describeScope(grant.scope)})`;
  const denies: { http: HttpPermissionMatch; routed: boolean }[] = [];
  permissions.forEach((p, index) => {
    const { matches, lost } = routeMatches(p.http);
    if (p.action === 'deny') {
      if (matches !== undefined) route(b, JSON.stringify(matches), matches);
      else
        b.differences.push({
          subject,
          message: `permission ${index}: Linkerd cannot express ${lost}; the deny has no route, so allow permissions after it that may overlap are left out`,
        });
      denies.push({ http: p.http, routed: matches !== undefined });
      return;
    }
    const shadowed = denies.find((d) => !d.routed || mayOverlap(d.http, p.http));
    if (matches === undefined || shadowed !== undefined) {
      b.differences.push({
        subject,
        message:
          matches === undefined
            ? `permission ${index}: Linkerd cannot express ${lost}; this allow permission is left out`
            : `permission ${index}: an earlier deny permission may overlap this allow, and Linkerd picks the most specific route rather than the first permission; this allow permission is left out`,
      });
      return;
    }
    authorize(b, route(b, JSON.stringify(matches), matches), authn);
  });
  if (fallthroughOf(permissions, b.input.options.intentionDefault) !== 'allow') return;
  // What matches no permission goes to the catch-all route, unless a deny would go there too:
  // one without a route, or one that ties with the catch-all on "/" (same match length, no
  // method or header to rank it higher; the proxy then takes either).
  const leaky = permissions.findIndex(
    (p, index) =>
      p.action === 'deny' &&
      (!denies[denyIndex(permissions, index)]!.routed || tiesCatchAll(p.http)),
  );
  if (leaky !== -1) {
    b.differences.push({
      subject,
      message: `permission ${leaky}: Linkerd would send requests this deny matches down the catch-all route, so requests that match no permission are refused instead of allowed`,
    });
    return;
  }
  authorize(b, catchAll(b), authn);
}

/** The position of permission `index` among the deny permissions. */
function denyIndex(permissions: readonly Permission[], index: number): number {
  return permissions.slice(0, index).filter((p) => p.action === 'deny').length;
}

/** Whether a route for `match` may rank equal to the catch-all PathPrefix "/" on the path "/". */
function tiesCatchAll(match: HttpPermissionMatch): boolean {
  if ((match.methods ?? []).length > 0 || (match.headers ?? []).length > 0) return false;
  if (match.pathExact !== undefined) return match.pathExact === '/';
  if (match.pathPrefix !== undefined) return '/'.startsWith(match.pathPrefix);
  if (match.pathRegex !== undefined) return fullRegexMatch(match.pathRegex, '/');
  return true;
}

function serversOf(input: MeshInput, accessPolicy: string): { refs: Ref[]; objects: MeshObject[] } {
  const { service } = input;
  const refs: Ref[] = [];
  const objects: MeshObject[] = [];
  for (const port of service.spec.ports ?? []) {
    const name = `${service.name}-${port.name ?? String(port.port)}`;
    refs.push({ group: POLICY_GROUP, kind: 'Server', name });
    objects.push(
      meshObject(
        'linkerd',
        service,
        { apiVersion: `${POLICY_GROUP}/v1beta3`, kind: 'Server', name },
        {
          podSelector: { matchLabels: { ...service.spec.selector } },
          port: port.name ?? port.port,
          proxyProtocol: PROXY_PROTOCOLS[port.protocol] ?? 'unknown',
          accessPolicy,
        },
      ),
    );
  }
  return { refs, objects };
}

function unrenderable(input: MeshInput): MeshDifference | undefined {
  const { spec } = input.service;
  if (spec.selector === undefined || Object.keys(spec.selector).length === 0)
    return {
      subject: 'spec.selector',
      message:
        'the service selects no pods, so there is no workload for a Server; intentions are not rendered',
    };
  if ((spec.ports ?? []).length === 0)
    return {
      subject: 'spec.ports',
      message:
        'Linkerd Servers select a port and the service declares none; intentions are not rendered',
    };
  return undefined;
}

export function linkerdAuthz(
  input: MeshInput,
  plan: AuthzPlan,
): { objects: MeshObject[]; differences: MeshDifference[] } {
  const missing = unrenderable(input);
  if (missing !== undefined) return { objects: [], differences: [missing] };
  const open = plan.grants.every((g) => g.verdict.kind === 'allow');
  const servers = serversOf(input, open ? 'all-unauthenticated' : 'deny');
  const b: Build = {
    input,
    servers: servers.refs,
    objects: [...servers.objects],
    differences: [...plan.differences],
    routes: new Map(),
    authns: 0,
    authzs: 0,
  };
  if (!open) {
    for (const grant of plan.grants) {
      if (grant.verdict.kind === 'deny') continue;
      if (grant.scope.kind === 'unauthenticated') {
        // A NetworkAuthentication admits every caller from its networks, meshed ones included,
        // so it would undo every stricter class: callers without an identity are left out.
        b.differences.push({
          subject: describeScope(grant.scope),
          message:
            'not admitted: Linkerd admits callers without a mesh identity only by network (NetworkAuthentication), which would admit every meshed caller too, including those the intentions restrict',
        });
        continue;
      }
      const authn = authenticationOf(b, grant);
      if (authn === undefined) continue;
      if (grant.verdict.kind === 'allow') for (const s of b.servers) authorize(b, s, authn);
      else l7Grant(b, grant, grant.verdict.permissions, authn);
    }
  }
  if (b.routes.size > 0) {
    b.differences.push({
      subject: 'HTTP permissions',
      message:
        'Linkerd sends each request down one route, the most specific; a caller with permissions is authorized only on the routes of its own allow permissions (and on the catch-all route when the default is allow), so its requests that match a more specific route of another permission are refused',
    });
  }
  const first = `Server/${b.servers[0]!.name}`;
  return {
    objects: b.objects,
    differences: b.differences.map((d) => (d.object === undefined ? { ...d, object: first } : d)),
  };
}
