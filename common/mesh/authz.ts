/**
 * Who may call a service, as the meshes can see it: the intentions that name the service,
 * translated from Maxine's callers (services) to mesh identities (ServiceAccounts).
 *
 * A mesh authorizes by the caller's mTLS identity, a ServiceAccount, not by its service. So
 * the plan evaluates the intentions once per class of caller, with the registry's precedence
 * rules (`topCandidates` in common/policy/intentions.ts), and gives each class one verdict:
 * - **identities**: the ServiceAccount of MaxineServices whose verdict differs from everyone
 *   else's. Services sharing a ServiceAccount share a verdict; when their intentions disagree
 *   the identity gets the stricter one (a mesh cannot tell them apart).
 * - **others**: every other caller with a mesh identity. Maxine knows it as no service, so
 *   only `*` / `*` sources match it, as in the registry (an unknown source).
 * - **unauthenticated**: callers without an mTLS identity; the same verdict as others, but
 *   the meshes express it differently.
 *
 * Every caller falls into exactly one class, so the renderers need no precedence of their own.
 * Where the plan has to be stricter than the intentions it says so (`differences`).
 */
import {
  isCatchAll,
  topCandidates,
  type Candidate,
  type IntentionAction,
  type IntentionEntry,
  type Permission,
  type ServiceRef,
} from '../policy/intentions.js';
import { identityKey, identityOf, lookupOf, type Identity, type IdentityGroup } from './lookup.js';
import type { MeshDifference, MeshInput } from './model.js';

/** A ServiceAccount. */
export type { Identity };

export type Scope =
  | { kind: 'identities'; identities: Identity[] }
  | { kind: 'others'; except: Identity[] }
  | { kind: 'unauthenticated' };

/**
 * What one class of caller may do: everything, nothing, or what an ordered list of HTTP
 * permissions says (first match wins; a request matching none gets the plan's default).
 */
export type Verdict =
  { kind: 'allow' } | { kind: 'deny' } | { kind: 'l7'; permissions: Permission[] };

export interface Grant {
  scope: Scope;
  verdict: Verdict;
  /** The intention sources that decided, `intention: source` (for annotations and docs). */
  decidedBy: string[];
}

export interface AuthzPlan {
  /** What happens to a request no intention decides. */
  defaultAction: IntentionAction;
  grants: Grant[];
  differences: MeshDifference[];
}

const refString = (r: ServiceRef) => `${r.namespace}/${r.name}`;

function verdictEquals(a: Verdict, b: Verdict): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Drops what a catch-all permission makes unreachable; a leading catch-all is the whole verdict. */
function simplify(permissions: readonly Permission[]): Verdict {
  const out: Permission[] = [];
  for (const p of permissions) {
    if (isCatchAll(p.http)) {
      if (out.length === 0) return { kind: p.action };
      out.push(p);
      break;
    }
    out.push(p);
  }
  return { kind: 'l7', permissions: out };
}

interface Decided {
  verdict: Verdict;
  decidedBy: string[];
  /** A note when the verdict had to be made stricter than the intentions. */
  note?: string;
}

/**
 * The verdict of the top candidates, combined as `evaluateIntentions` does: all of them must
 * allow (deny wins ties). Several different permission lists cannot be combined into one
 * ordered list, so that case is denied, and said.
 */
function verdictOf(candidates: readonly Candidate[], defaultAction: IntentionAction): Decided {
  const decidedBy = candidates.map((c) => `${c.intention}: ${refString(c.sourcePattern)}`);
  if (candidates.length === 0) return { verdict: { kind: defaultAction }, decidedBy };
  const verdicts = candidates.map((c): Verdict =>
    c.source.action !== undefined
      ? { kind: c.source.action }
      : simplify(c.source.permissions ?? []),
  );
  if (verdicts.some((v) => v.kind === 'deny')) return { verdict: { kind: 'deny' }, decidedBy };
  const l7 = verdicts.filter((v) => v.kind === 'l7');
  if (l7.length === 0) return { verdict: { kind: 'allow' }, decidedBy };
  if (l7.every((v) => verdictEquals(v, l7[0]!))) return { verdict: l7[0]!, decidedBy };
  return {
    verdict: { kind: 'deny' },
    decidedBy,
    note: `${decidedBy.join(' and ')} give different permission lists of equal precedence; a mesh cannot evaluate both in order, so these callers are denied`,
  };
}

/** The stricter of two verdicts: equal ones stay, anything else but allow+X becomes deny. */
function meet(a: Verdict, b: Verdict): Verdict {
  if (verdictEquals(a, b)) return a;
  if (a.kind === 'allow') return b;
  if (b.kind === 'allow') return a;
  return { kind: 'deny' };
}

interface Context {
  destination: ServiceRef;
  intentions: readonly IntentionEntry[];
  defaultAction: IntentionAction;
  differences: MeshDifference[];
  subject: string;
}

function decide(ctx: Context, source: ServiceRef | undefined): Decided {
  const decided = verdictOf(
    topCandidates(ctx.intentions, { source, destination: ctx.destination }),
    ctx.defaultAction,
  );
  if (decided.note !== undefined)
    ctx.differences.push({ subject: ctx.subject, message: decided.note });
  return decided;
}

/**
 * The grant of one ServiceAccount, or undefined when it gets what every unlisted caller gets.
 * Members that disagree get the stricter verdict; so does an identity Maxine only assumes (no
 * `spec.serviceAccount`: the pods run as `default`, which unknown pods of the namespace share).
 */
function identityGrant(ctx: Context, group: IdentityGroup, others: Verdict): Grant | undefined {
  const { identity, members } = group;
  const decisions = members.map((m) => decide(ctx, { namespace: m.namespace, name: m.name }));
  if (decisions.every((d) => d.decidedBy.length === 0)) return undefined;
  const names = members.map((m) => refString(m)).join(', ');
  let verdict = decisions.map((d) => d.verdict).reduce(meet);
  if (decisions.some((d) => !verdictEquals(d.verdict, verdict))) {
    ctx.differences.push({
      subject: ctx.subject,
      message: `services ${names} share the ServiceAccount ${identityKey(identity)} but the intentions treat them differently; a mesh sees only the ServiceAccount, so all of them get the stricter verdict (${verdict.kind})`,
    });
  }
  if (members.some((m) => identityOf(m).implicit)) {
    const stricter = meet(verdict, others);
    if (!verdictEquals(stricter, verdict)) {
      ctx.differences.push({
        subject: ctx.subject,
        message: `${names} set no spec.serviceAccount, so their pods run as ${identityKey(identity)}, which pods outside Maxine may share; that identity gets the stricter verdict (${stricter.kind})`,
      });
      verdict = stricter;
    }
  }
  if (verdictEquals(verdict, others)) return undefined;
  const decidedBy = [...new Set(decisions.flatMap((d) => d.decidedBy))];
  return { scope: { kind: 'identities', identities: [identity] }, verdict, decidedBy };
}

/** Identity grants with the same verdict become one grant (one mesh rule), in first-seen order. */
function mergeByVerdict(grants: readonly Grant[]): Grant[] {
  const byVerdict = new Map<string, Grant>();
  for (const g of grants) {
    const key = JSON.stringify(g.verdict);
    const seen = byVerdict.get(key);
    if (seen === undefined || seen.scope.kind !== 'identities' || g.scope.kind !== 'identities') {
      byVerdict.set(key, { ...g, decidedBy: [...g.decidedBy] });
      continue;
    }
    seen.scope.identities.push(...g.scope.identities);
    for (const d of g.decidedBy) if (!seen.decidedBy.includes(d)) seen.decidedBy.push(d);
  }
  return [...byVerdict.values()];
}

/** The authorization plan of `input.service`: one grant per class of caller. */
export function authzPlan(input: MeshInput): AuthzPlan {
  const { service, options } = input;
  const lookup = lookupOf(input);
  const destination = { namespace: service.namespace, name: service.name };
  // Only the intentions that may govern this destination, and only the callers they name:
  // every other caller gets what an unlisted one gets (`others`), so it needs no grant.
  const intentions = lookup.intentionsFor(destination);
  const ctx: Context = {
    destination,
    intentions,
    defaultAction: options.intentionDefault,
    differences: [],
    subject: `intentions for ${service.namespace}/${service.name}`,
  };
  // A caller that is no MaxineService is an unknown source: only "*" / "*" sources match it.
  const others = decide(ctx, undefined);
  const grants: Grant[] = [];
  for (const group of lookup.groupsNamedBy(intentions)) {
    const grant = identityGrant(ctx, group, others.verdict);
    if (grant !== undefined) grants.push(grant);
  }
  const listed = grants.flatMap((g) => (g.scope.kind === 'identities' ? g.scope.identities : []));
  const merged = mergeByVerdict(grants);
  grants.length = 0;
  grants.push(...merged);
  grants.push(
    {
      scope: { kind: 'others', except: listed },
      verdict: others.verdict,
      decidedBy: others.decidedBy,
    },
    { scope: { kind: 'unauthenticated' }, verdict: others.verdict, decidedBy: others.decidedBy },
  );
  return { defaultAction: options.intentionDefault, grants, differences: ctx.differences };
}

/**
 * What happens to a request of a class with HTTP permissions that none of them matches: the
 * plan's default, unless the list ends with a catch-all (which then decides everything left).
 */
export function fallthroughOf(
  permissions: readonly Permission[],
  defaultAction: IntentionAction,
): IntentionAction {
  const last = permissions[permissions.length - 1];
  return last !== undefined && isCatchAll(last.http) ? last.action : defaultAction;
}

/**
 * Whether some request could match both permissions' HTTP conditions. Conservative: true
 * unless methods or paths prove them disjoint (regexes and headers are assumed to overlap).
 */
export function mayOverlap(a: Permission['http'], b: Permission['http']): boolean {
  const ma = a.methods ?? [];
  const mb = b.methods ?? [];
  if (ma.length > 0 && mb.length > 0 && !ma.some((m) => mb.includes(m))) return false;
  return pathsMayOverlap(a, b);
}

function pathsMayOverlap(a: Permission['http'], b: Permission['http']): boolean {
  if (a.pathExact !== undefined && b.pathExact !== undefined) return a.pathExact === b.pathExact;
  const exact = a.pathExact ?? b.pathExact;
  const prefix = a.pathExact !== undefined ? b.pathPrefix : a.pathPrefix;
  if (exact !== undefined && prefix !== undefined) return exact.startsWith(prefix);
  if (a.pathPrefix !== undefined && b.pathPrefix !== undefined)
    return a.pathPrefix.startsWith(b.pathPrefix) || b.pathPrefix.startsWith(a.pathPrefix);
  return true;
}

/** A short description of a scope, for messages. */
export function describeScope(scope: Scope): string {
  switch (scope.kind) {
    case 'identities':
      return `ServiceAccount ${scope.identities.map(identityKey).join(', ')}`;
    case 'others':
      return 'other callers with a mesh identity';
    case 'unauthenticated':
      return 'callers without a mesh identity';
  }
}

export { identityKey };
