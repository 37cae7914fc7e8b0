/**
 * Pure evaluation of MaxineACLs: who may `register`, `discover`, `read`, `write` or `admin`
 * which service. No I/O: the evaluator is built from the ACL objects in force and compiled
 * once (subject → service pattern → rules), so a decision is a handful of map look-ups.
 *
 * Semantics
 * - A rule applies to a request when one of its ACL's subjects matches the identity, one of its
 *   service patterns matches the service, and it covers the verb.
 * - Any applying `deny` rule denies, whatever the specificity of the allow rules (deny wins,
 *   across ACLs too). Else any applying `allow` rule allows. Else the default policy decides.
 * - When several rules apply, the one reported is the first in a stable order: ACLs by
 *   `namespace/name`, rules by index.
 *
 * Verb implications, one rule for allow and deny alike: a rule covers the verbs it lists and
 * every verb they imply.
 * - `admin` implies every verb.
 * - `write` implies `register`, `read` and `discover` (as in Consul, where `service:write`
 *   includes `service:read` and registration is a write).
 * - `register`, `discover` and `read` imply nothing: `read` (catalog, events) does not grant
 *   `discover` (instances), nor the other way round.
 *
 * So `deny [write]` takes away register (with renew and deregister), read and discover, and
 * `deny [admin]` takes away everything. A read-only grant is `allow [read, discover]`, or an
 * allow of `write` with `deny [register]` beside it. (Covering only the listed verbs let
 * `deny [write]` next to `allow [write]` still register, read and discover.)
 *
 * Subjects (as Kubernetes authentication names them)
 * - `ServiceAccount` matches the identity's namespace and name. A ServiceAccount identity is
 *   also the user `system:serviceaccount:<ns>:<name>` and a member of the groups
 *   `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`, as a
 *   TokenReview reports it, plus any groups it carries.
 * - `User` matches the identity's user name, qualified by where it was authenticated
 *   (`userNames`): a static-token user `alice` by `alice` or `token:alice`, a JWT user by
 *   `jwt:<sub>` or `jwt:<issuer>:<sub>` (never by a bare name). `Group` matches any of its
 *   groups. Every user is in `system:authenticated`.
 * - An anonymous caller is the user `system:anonymous` in the group `system:unauthenticated`,
 *   so only a subject naming one of those reaches it.
 * - A subject's `namespace` is read for ServiceAccounts only.
 *
 * Service patterns are what `servicePattern` admits: `ns/name`, `ns/*`, `*\/name`, `*\/*` and a
 * bare `*` (the same as `*\/*`). There are no prefix patterns such as `shop/ord*`.
 *
 * Namespace confinement (optional): with `globalNamespaces` given, an ACL that lives in any
 * other namespace only reaches services of its own namespace (`*\/x` in an ACL of `shop` means
 * `shop/x`, `team/*` there means nothing), so whoever may create ACLs in one namespace cannot
 * grant or deny anything in another. Without it, every ACL applies as written.
 */
import type { AclSpec } from '../resources.js';

export type AclVerb = AclSpec['rules'][number]['verbs'][number];
export type AclEffect = 'allow' | 'deny';
export type DefaultPolicy = 'allow' | 'deny';

/**
 * Where a user was authenticated. Static-token users and JWT users are different name spaces:
 * a JWT whose `sub` is `ops-admin` is not the static-token user `ops-admin`.
 */
export type UserSource =
  | { kind: 'token' }
  | { kind: 'jwt'; issuer: string }
  /** A Kubernetes user a TokenReview vouched for (`kubectl maxine` through the service proxy). */
  | { kind: 'kubernetes' };

export type AclIdentity =
  | { kind: 'ServiceAccount'; namespace: string; name: string; groups?: readonly string[] }
  | { kind: 'User'; name: string; groups: readonly string[]; source: UserSource }
  | { kind: 'Anonymous' };

export interface ServiceRef {
  namespace: string;
  name: string;
}

export interface AclObject {
  namespace: string;
  name: string;
  spec: AclSpec;
}

export interface AclDecision {
  allowed: boolean;
  /** `namespace/name` of the deciding ACL, or `default` when no rule applied. */
  decidedBy: string;
  /** Index of the deciding rule in its ACL's `rules`. */
  rule?: number;
  reason: string;
}

export interface AclEvaluatorOptions {
  /** Namespaces whose ACLs may reach services in any namespace (see the module comment). */
  globalNamespaces?: readonly string[];
}

export const ANONYMOUS_USER = 'system:anonymous';
export const UNAUTHENTICATED_GROUP = 'system:unauthenticated';
export const AUTHENTICATED_GROUP = 'system:authenticated';
export const SERVICE_ACCOUNTS_GROUP = 'system:serviceaccounts';

const BIT: Record<AclVerb, number> = {
  register: 1,
  discover: 2,
  read: 4,
  write: 8,
  admin: 16,
};
const ALL = 31;
/** What each verb covers in a rule, allow or deny. */
const IMPLIES: Record<AclVerb, number> = {
  register: BIT.register,
  discover: BIT.discover,
  read: BIT.read,
  write: BIT.write | BIT.read | BIT.register | BIT.discover,
  admin: ALL,
};

interface CompiledRule {
  /** Position in the stable order; the smallest applying rule is reported. */
  order: number;
  acl: string;
  rule: number;
  effect: AclEffect;
  /** Verbs covered, implications included. */
  covers: number;
  verbs: readonly AclVerb[];
}

/** subject key → pattern key (`ns/name`, `ns/*`, `*\/name`, `*\/*`) → rules. */
type Index = Map<string, Map<string, CompiledRule[]>>;

const saKey = (namespace: string, name: string) => `sa:${namespace}/${name}`;
const userKey = (name: string) => `user:${name}`;
const groupKey = (name: string) => `group:${name}`;

function subjectKey(s: AclSpec['subjects'][number]): string {
  switch (s.kind) {
    case 'ServiceAccount':
      return saKey(s.namespace ?? '', s.name);
    case 'User':
      return userKey(s.name);
    case 'Group':
      return groupKey(s.name);
  }
}

/** The pattern as it applies, or undefined when confinement leaves it nothing to match. */
function patternKey(pattern: string, confinedTo: string | undefined): string | undefined {
  const [ns = '*', name = '*'] = pattern === '*' ? [] : pattern.split('/');
  if (confinedTo === undefined) return `${ns}/${name}`;
  if (ns !== '*' && ns !== confinedTo) return undefined;
  return `${confinedTo}/${name}`;
}

function coverage(verbs: readonly AclVerb[]): number {
  let mask = 0;
  for (const v of verbs) mask |= IMPLIES[v];
  return mask;
}

/** Every subject key the identity answers to. */
export function identityKeys(identity: AclIdentity): string[] {
  switch (identity.kind) {
    case 'Anonymous':
      return [userKey(ANONYMOUS_USER), groupKey(UNAUTHENTICATED_GROUP)];
    case 'User':
      return [
        ...userNames(identity).map(userKey),
        ...identity.groups.map(groupKey),
        groupKey(AUTHENTICATED_GROUP),
      ];
    case 'ServiceAccount': {
      const { namespace, name } = identity;
      return [
        saKey(namespace, name),
        userKey(`system:serviceaccount:${namespace}:${name}`),
        groupKey(SERVICE_ACCOUNTS_GROUP),
        groupKey(`${SERVICE_ACCOUNTS_GROUP}:${namespace}`),
        groupKey(AUTHENTICATED_GROUP),
        ...(identity.groups ?? []).map(groupKey),
      ];
    }
  }
}

/**
 * The `User` subject names that match a user, the qualified one first: a static-token user
 * `alice` is `token:alice` and also plain `alice` (ACL subjects and `--bootstrap-admins` name
 * static-token users by their bare name); a JWT user is `jwt:<issuer>:<sub>` and `jwt:<sub>`,
 * never a bare name; a Kubernetes user (a TokenReview of the kubectl user's forwarded token) is
 * `kubernetes:<name>` only. Authenticators refuse user names starting with `jwt:`, `token:` or
 * `kubernetes:`, so a static-token user cannot pose as a JWT or a Kubernetes user.
 */
export function userNames(identity: { name: string; source: UserSource }): string[] {
  const { name, source } = identity;
  if (source.kind === 'token') return [`token:${name}`, name];
  if (source.kind === 'kubernetes') return [`kubernetes:${name}`];
  return [`jwt:${source.issuer}:${name}`, `jwt:${name}`];
}

/** The principal's qualified name: one per principal, whatever its groups. */
export function principalName(identity: AclIdentity): string {
  switch (identity.kind) {
    case 'Anonymous':
      return ANONYMOUS_USER;
    case 'User':
      return userNames(identity)[0]!;
    case 'ServiceAccount':
      return `system:serviceaccount:${identity.namespace}:${identity.name}`;
  }
}

export function describeIdentity(identity: AclIdentity): string {
  switch (identity.kind) {
    case 'Anonymous':
      return 'anonymous';
    case 'User':
      return `User ${userNames(identity)[0]!}`;
    case 'ServiceAccount':
      return `ServiceAccount ${identity.namespace}/${identity.name}`;
  }
}

function servicePatternKeys(service: ServiceRef): string[] {
  const { namespace: ns, name } = service;
  return [`${ns}/${name}`, `${ns}/*`, `*/${name}`, '*/*'];
}

function better(current: CompiledRule | undefined, r: CompiledRule): CompiledRule {
  return current === undefined || r.order < current.order ? r : current;
}

function describeRule(r: CompiledRule, verb: AclVerb, target: string): string {
  const does = r.effect === 'deny' ? 'denies' : 'allows';
  const via = r.verbs.includes(verb)
    ? ''
    : ` (implied by ${r.verbs.includes('admin') ? 'admin' : 'write'})`;
  return `ACL ${r.acl} rule ${r.rule} ${does} ${verb}${via} on ${target}`;
}

export class AclEvaluator {
  private readonly index: Index = new Map();

  constructor(acls: readonly AclObject[], options: AclEvaluatorOptions = {}) {
    const global = options.globalNamespaces && new Set(options.globalNamespaces);
    const sorted = [...acls].sort((a, b) =>
      a.namespace === b.namespace ? compare(a.name, b.name) : compare(a.namespace, b.namespace),
    );
    let order = 0;
    for (const acl of sorted) {
      const confinedTo =
        global === undefined || global.has(acl.namespace) ? undefined : acl.namespace;
      const subjects = new Set(acl.spec.subjects.map(subjectKey));
      acl.spec.rules.forEach((rule, i) => {
        const compiled: CompiledRule = {
          order: order++,
          acl: `${acl.namespace}/${acl.name}`,
          rule: i,
          effect: rule.effect,
          covers: coverage(rule.verbs),
          verbs: rule.verbs,
        };
        this.add(subjects, rule.services, confinedTo, compiled);
      });
    }
  }

  private add(
    subjects: ReadonlySet<string>,
    services: readonly string[],
    confinedTo: string | undefined,
    rule: CompiledRule,
  ): void {
    const patterns = new Set<string>();
    for (const p of services) {
      const key = patternKey(p, confinedTo);
      if (key !== undefined) patterns.add(key);
    }
    for (const subject of subjects) {
      let byPattern = this.index.get(subject);
      if (byPattern === undefined)
        this.index.set(subject, (byPattern = new Map<string, CompiledRule[]>()));
      for (const p of patterns) {
        const list = byPattern.get(p);
        if (list === undefined) byPattern.set(p, [rule]);
        else list.push(rule);
      }
    }
  }

  /** Whether `identity` may do `verb` on `service`, and why. */
  decide(
    identity: AclIdentity,
    verb: AclVerb,
    service: ServiceRef,
    defaultPolicy: DefaultPolicy,
  ): AclDecision {
    const bit = BIT[verb];
    let deny: CompiledRule | undefined;
    let allow: CompiledRule | undefined;
    const patterns = servicePatternKeys(service);
    for (const subject of identityKeys(identity)) {
      const byPattern = this.index.get(subject);
      if (byPattern === undefined) continue;
      for (const p of patterns) {
        for (const r of byPattern.get(p) ?? []) {
          if ((r.covers & bit) === 0) continue;
          if (r.effect === 'deny') deny = better(deny, r);
          else allow = better(allow, r);
        }
      }
    }
    const target = `${service.namespace}/${service.name} for ${describeIdentity(identity)}`;
    const r = deny ?? allow;
    if (r !== undefined) {
      return {
        allowed: r.effect === 'allow',
        decidedBy: r.acl,
        rule: r.rule,
        reason: describeRule(r, verb, target),
      };
    }
    return {
      allowed: defaultPolicy === 'allow',
      decidedBy: 'default',
      reason: `no ACL rule covers ${verb} on ${target}; the default policy ${defaultPolicy === 'allow' ? 'allows' : 'denies'}`,
    };
  }

  /** A predicate telling which services `identity` may `read` (event and catalog filtering). */
  canRead(identity: AclIdentity, defaultPolicy: DefaultPolicy): (service: ServiceRef) => boolean {
    return (service) => this.decide(identity, 'read', service, defaultPolicy).allowed;
  }

  /** The services `identity` may `read`, in their given order. */
  servicesVisible<S extends ServiceRef>(
    identity: AclIdentity,
    services: readonly S[],
    defaultPolicy: DefaultPolicy,
  ): S[] {
    return services.filter(this.canRead(identity, defaultPolicy));
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
