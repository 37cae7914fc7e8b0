/**
 * Intentions as Istio AuthorizationPolicies (security.istio.io/v1), from the plan in authz.ts.
 *
 * Istio evaluates DENY policies before ALLOW policies and has no ordered "first permission
 * wins"; when any ALLOW policy selects a workload, a request that no ALLOW rule matches is
 * denied. So:
 * - Default deny: `<svc>-allow` (ALLOW) holds a rule per allowed caller class and per allow
 *   permission; it exists even when empty, which denies everything. Deny permissions that
 *   come before an allow permission go into `<svc>-deny` (DENY); later ones are the default.
 * - Default allow: only `<svc>-deny` (DENY) exists, with the denied caller classes and every
 *   deny permission; an ALLOW policy would deny everything it does not name.
 * - Callers denied by an intention are always listed in `<svc>-deny`, so an ALLOW policy that
 *   someone else writes for the workload cannot let them in.
 * The result is never more permissive than the intentions: a deny permission after an
 * overlapping allow permission denies the overlap (Istio's order), an allow permission that
 * Istio cannot express is left out, and a deny condition it cannot express is dropped, which
 * widens the deny. Each such case is a difference.
 */
import type { HttpPermissionMatch, IntentionAction, Permission } from '../policy/intentions.js';
import {
  describeScope,
  fallthroughOf,
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

const API_VERSION = 'security.istio.io/v1';

type Source = Record<string, string[]>;
interface Rule {
  from?: { source: Source }[];
  to?: { operation: Record<string, string[]> }[];
  when?: { key: string; values?: string[]; notValues?: string[] }[];
}

export function istioPrincipal(identity: Identity, options: MeshOptions): string {
  return `${options.trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount}`;
}

/** The `from` of a caller class; undefined matches every caller. */
function fromOf(grant: Grant, options: MeshOptions): Rule['from'] {
  const { scope } = grant;
  switch (scope.kind) {
    case 'identities':
      return [{ source: { principals: scope.identities.map((i) => istioPrincipal(i, options)) } }];
    case 'others':
      // notPrincipals also matches requests without a principal (plaintext), so this one
      // rule covers the unauthenticated class too.
      return scope.except.length === 0
        ? undefined
        : [{ source: { notPrincipals: scope.except.map((i) => istioPrincipal(i, options)) } }];
    case 'unauthenticated':
      return [{ source: { notPrincipals: ['*'] } }];
  }
}

interface Translated {
  rule: Omit<Rule, 'from'>;
  /** Conditions Istio cannot express (AuthorizationPolicy has no regex, contains or negation). */
  lost: string[];
}

function pathOf(match: HttpPermissionMatch, lost: string[]): string[] | undefined {
  if (match.pathRegex !== undefined) lost.push(`pathRegex ${match.pathRegex}`);
  const literal = match.pathExact ?? match.pathPrefix;
  if (literal === undefined) return undefined;
  if (literal.includes('*')) {
    lost.push(`path ${literal} (Istio reads "*" as a wildcard)`);
    return undefined;
  }
  return [match.pathExact ?? `${literal}*`];
}

type Header = NonNullable<HttpPermissionMatch['headers']>[number];

/** Istio `when` values: exact, `prefix*`, `*suffix`, or `*` (present). */
function headerValue(h: Header): string | undefined {
  if (h.invert === true || h.present === false) return undefined;
  if (h.contains !== undefined || h.regex !== undefined) return undefined;
  const literal = h.exact ?? h.prefix ?? h.suffix;
  if (literal === undefined) return '*';
  if (literal.includes('*') || literal === '') return undefined;
  if (h.prefix !== undefined) return `${literal}*`;
  if (h.suffix !== undefined) return `*${literal}`;
  return literal;
}

function translate(match: HttpPermissionMatch): Translated {
  const lost: string[] = [];
  const operation: Record<string, string[]> = {};
  const paths = pathOf(match, lost);
  if (paths !== undefined) operation.paths = paths;
  if ((match.methods ?? []).length > 0) operation.methods = [...match.methods!];
  const when: NonNullable<Rule['when']> = [];
  for (const h of match.headers ?? []) {
    const value = headerValue(h);
    if (value === undefined) lost.push(`header condition on ${h.name}`);
    else when.push({ key: `request.headers[${h.name}]`, values: [value] });
  }
  const rule: Translated['rule'] = {};
  if (Object.keys(operation).length > 0) rule.to = [{ operation }];
  if (when.length > 0) rule.when = when;
  return { rule, lost };
}

interface Build {
  allow: Rule[];
  deny: Rule[];
  differences: MeshDifference[];
  name: string;
  options: MeshOptions;
  defaultAction: IntentionAction;
  allowMode: boolean;
}

function withFrom(from: Rule['from'], rule: Omit<Rule, 'from'>): Rule {
  return from === undefined ? { ...rule } : { from, ...rule };
}

function permissionSubject(grant: Grant, index: number): string {
  return `${grant.decidedBy.join(', ') || 'default'} permission ${index}`;
}

/**
 * The rules of one caller class whose verdict is an ordered permission list. When what matches
 * no permission is allowed, the class gets one ALLOW rule (in allow mode) and its deny
 * permissions; otherwise an ALLOW rule per allow permission, and the deny permissions that come
 * before one of them.
 */
function l7Rules(b: Build, grant: Grant, from: Rule['from'], permissions: Permission[]) {
  const fallthrough = fallthroughOf(permissions, b.defaultAction);
  if (fallthrough === 'allow' && b.allowMode) b.allow.push(withFrom(from, {}));
  const lastAllow = permissions.map((p) => p.action).lastIndexOf('allow');
  permissions.forEach((p, index) => {
    const { rule, lost } = translate(p.http);
    const subject = permissionSubject(grant, index);
    if (p.action === 'allow') {
      if (!b.allowMode || fallthrough === 'allow') return;
      if (lost.length > 0) {
        b.differences.push({
          object: `AuthorizationPolicy/${b.name}-allow`,
          subject,
          message: `Istio cannot express ${lost.join(', ')}; this allow permission for ${describeScope(grant.scope)} is left out`,
        });
        return;
      }
      b.allow.push(withFrom(from, rule));
      return;
    }
    if (fallthrough === 'deny' && index > lastAllow) return;
    if (lost.length > 0) {
      b.differences.push({
        object: `AuthorizationPolicy/${b.name}-deny`,
        subject,
        message: `Istio cannot express ${lost.join(', ')}; this deny permission for ${describeScope(grant.scope)} is rendered without those conditions, so it denies more`,
      });
    }
    const earlier = permissions
      .slice(0, index)
      .findIndex((q) => q.action === 'allow' && mayOverlap(q.http, p.http));
    if (earlier !== -1) {
      b.differences.push({
        object: `AuthorizationPolicy/${b.name}-deny`,
        subject,
        message: `Istio evaluates deny before allow: requests matching both allow permission ${earlier} and this deny permission are denied, where the intention allows them (first match)`,
      });
    }
    b.deny.push(withFrom(from, rule));
  });
}

function grantRules(b: Build, grant: Grant): void {
  const { verdict } = grant;
  const from = fromOf(grant, b.options);
  if (verdict.kind === 'allow') {
    if (b.allowMode) b.allow.push(withFrom(from, {}));
    return;
  }
  if (verdict.kind === 'deny') {
    // In allow mode the default needs no rule; a denial an intention decided is written down.
    if (grant.decidedBy.length > 0 || !b.allowMode) b.deny.push(withFrom(from, {}));
    return;
  }
  l7Rules(b, grant, from, verdict.permissions);
}

/**
 * Allow mode (an ALLOW policy lists every caller class that may call): needed when the default
 * is deny, or when some class may do only what its allow permissions say (its list ends with a
 * catch-all deny). Otherwise DENY rules alone say it, and an ALLOW policy would shut out
 * everyone it does not name.
 */
function needsAllowMode(plan: AuthzPlan): boolean {
  return (
    plan.defaultAction === 'deny' ||
    plan.grants.some(
      (g) =>
        g.verdict.kind === 'l7' &&
        fallthroughOf(g.verdict.permissions, plan.defaultAction) === 'deny',
    )
  );
}

export function istioAuthz(
  input: MeshInput,
  plan: AuthzPlan,
): { objects: MeshObject[]; differences: MeshDifference[] } {
  const { service } = input;
  const selector = service.spec.selector;
  if (selector === undefined || Object.keys(selector).length === 0) {
    return {
      objects: [],
      differences: [
        {
          subject: 'spec.selector',
          message:
            'the service selects no pods, so there is no workload for an AuthorizationPolicy; intentions are not rendered',
        },
      ],
    };
  }
  const b: Build = {
    allow: [],
    deny: [],
    differences: [...plan.differences],
    name: service.name,
    options: input.options,
    defaultAction: plan.defaultAction,
    allowMode: needsAllowMode(plan),
  };
  // The others rule covers unauthenticated callers too (see fromOf).
  for (const grant of plan.grants) if (grant.scope.kind !== 'unauthenticated') grantRules(b, grant);
  const objects: MeshObject[] = [];
  const head = (suffix: string) => ({
    apiVersion: API_VERSION,
    kind: 'AuthorizationPolicy',
    name: `${service.name}-${suffix}`,
  });
  const workload = { matchLabels: { ...selector } };
  if (b.deny.length > 0)
    objects.push(
      meshObject('istio', service, head('deny'), {
        selector: workload,
        action: 'DENY',
        rules: b.deny,
      }),
    );
  if (b.allowMode) {
    const spec: Record<string, unknown> = { selector: workload, action: 'ALLOW' };
    if (b.allow.length > 0) spec.rules = b.allow;
    objects.push(meshObject('istio', service, head('allow'), spec));
  }
  const first = objects[0];
  const differences = b.differences.map((d) =>
    d.object === undefined && first !== undefined
      ? { ...d, object: `AuthorizationPolicy/${first.metadata.name}` }
      : d,
  );
  return { objects, differences };
}
