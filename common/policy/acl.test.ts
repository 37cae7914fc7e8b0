import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { aclSpecSchema, maxineAclSchema, servicePattern } from '../resources.js';
import type { AclIdentity, AclObject, AclVerb, ServiceRef } from './acl.js';
import { AclEvaluator, describeIdentity, identityKeys, principalName } from './acl.js';

type Subject = { kind: 'ServiceAccount' | 'User' | 'Group'; name: string; namespace?: string };
type Rule = { services: string[]; verbs: AclVerb[]; effect?: 'allow' | 'deny' };

/** An ACL object whose spec went through the schema (defaults applied, fixtures valid). */
function acl(key: string, subjects: Subject[], rules: Rule[]): AclObject {
  const [namespace = '', name = ''] = key.split('/');
  return { namespace, name, spec: aclSpecSchema.parse({ subjects, rules }) };
}

const sa = (namespace: string, name: string, groups?: string[]): AclIdentity =>
  groups === undefined
    ? { kind: 'ServiceAccount', namespace, name }
    : { kind: 'ServiceAccount', namespace, name, groups };
const user = (name: string, groups: string[] = []): AclIdentity => ({
  kind: 'User',
  name,
  groups,
  source: { kind: 'token' },
});
const jwtUser = (
  name: string,
  issuer = 'https://idp.example',
  groups: string[] = [],
): AclIdentity => ({
  kind: 'User',
  name,
  groups,
  source: { kind: 'jwt', issuer },
});
const anonymous: AclIdentity = { kind: 'Anonymous' };
const svc = (key: string): ServiceRef => {
  const [namespace = '', name = ''] = key.split('/');
  return { namespace, name };
};

const ALL_VERBS: AclVerb[] = ['register', 'discover', 'read', 'write', 'admin'];

describe('subjects', () => {
  const evaluator = new AclEvaluator([
    acl(
      'shop/readers',
      [
        { kind: 'ServiceAccount', namespace: 'shop', name: 'web' },
        { kind: 'User', name: 'alice' },
        { kind: 'Group', name: 'devs' },
      ],
      [{ services: ['shop/orders'], verbs: ['discover'] }],
    ),
  ]);

  it.each<[string, AclIdentity, boolean]>([
    ['the ServiceAccount named', sa('shop', 'web'), true],
    ['a ServiceAccount of the same name in another namespace', sa('billing', 'web'), false],
    ['another ServiceAccount of the namespace', sa('shop', 'api'), false],
    ['a ServiceAccount carrying a named group', sa('billing', 'x', ['devs']), true],
    ['the user named', user('alice'), true],
    ['another user', user('bob'), false],
    ['a user in a named group', user('bob', ['ops', 'devs']), true],
    ['a user named like the ServiceAccount', user('web'), false],
    ['a user named like the group', user('devs'), false],
    ['anonymous', anonymous, false],
  ])('%s', (_, identity, allowed) => {
    expect(evaluator.decide(identity, 'discover', svc('shop/orders'), 'deny').allowed).toBe(
      allowed,
    );
  });
});

describe('Kubernetes user and group names', () => {
  it.each<[string, Subject, AclIdentity, boolean]>([
    [
      'SA namespace group, member',
      { kind: 'Group', name: 'system:serviceaccounts:shop' },
      sa('shop', 'web'),
      true,
    ],
    [
      'SA namespace group, other namespace',
      { kind: 'Group', name: 'system:serviceaccounts:shop' },
      sa('billing', 'web'),
      false,
    ],
    [
      'SA namespace group, a user',
      { kind: 'Group', name: 'system:serviceaccounts:shop' },
      user('alice'),
      false,
    ],
    [
      'all SAs group, an SA',
      { kind: 'Group', name: 'system:serviceaccounts' },
      sa('billing', 'web'),
      true,
    ],
    [
      'all SAs group, a user',
      { kind: 'Group', name: 'system:serviceaccounts' },
      user('alice'),
      false,
    ],
    [
      'SA user name',
      { kind: 'User', name: 'system:serviceaccount:shop:web' },
      sa('shop', 'web'),
      true,
    ],
    [
      'SA user name, other SA',
      { kind: 'User', name: 'system:serviceaccount:shop:web' },
      sa('shop', 'api'),
      false,
    ],
    ['authenticated, a user', { kind: 'Group', name: 'system:authenticated' }, user('alice'), true],
    [
      'authenticated, an SA',
      { kind: 'Group', name: 'system:authenticated' },
      sa('shop', 'web'),
      true,
    ],
    ['authenticated, anonymous', { kind: 'Group', name: 'system:authenticated' }, anonymous, false],
    [
      'unauthenticated, anonymous',
      { kind: 'Group', name: 'system:unauthenticated' },
      anonymous,
      true,
    ],
    [
      'unauthenticated, a user',
      { kind: 'Group', name: 'system:unauthenticated' },
      user('alice'),
      false,
    ],
    ['system:anonymous, anonymous', { kind: 'User', name: 'system:anonymous' }, anonymous, true],
    ['system:anonymous, a user', { kind: 'User', name: 'system:anonymous' }, user('alice'), false],
  ])('%s', (_, subject, identity, allowed) => {
    const evaluator = new AclEvaluator([
      acl('shop/k8s', [subject], [{ services: ['*/*'], verbs: ['read'] }]),
    ]);
    expect(evaluator.decide(identity, 'read', svc('shop/orders'), 'deny').allowed).toBe(allowed);
  });

  it('lists the keys of an identity', () => {
    expect(identityKeys(sa('shop', 'web', ['extra']))).toEqual([
      'sa:shop/web',
      'user:system:serviceaccount:shop:web',
      'group:system:serviceaccounts',
      'group:system:serviceaccounts:shop',
      'group:system:authenticated',
      'group:extra',
    ]);
    expect(identityKeys(anonymous)).toEqual([
      'user:system:anonymous',
      'group:system:unauthenticated',
    ]);
  });
});

describe('user names are qualified by where the user was authenticated', () => {
  const ISSUER = 'https://idp.example';
  // subject name → [static-token user ops-admin, JWT user ops-admin of ISSUER, of another issuer]
  it.each<[string, boolean[]]>([
    ['ops-admin', [true, false, false]],
    ['token:ops-admin', [true, false, false]],
    ['jwt:ops-admin', [false, true, true]],
    [`jwt:${ISSUER}:ops-admin`, [false, true, false]],
    ['jwt:https://other.example:ops-admin', [false, false, true]],
    ['jwt:other', [false, false, false]],
  ])('User %s', (name, expected) => {
    const evaluator = new AclEvaluator([
      acl('shop/k8s', [{ kind: 'User', name }], [{ services: ['*/*'], verbs: ['admin'] }]),
    ]);
    expect(
      [
        user('ops-admin'),
        jwtUser('ops-admin', ISSUER),
        jwtUser('ops-admin', 'https://other.example'),
      ].map((id) => evaluator.decide(id, 'read', svc('shop/orders'), 'deny').allowed),
    ).toEqual(expected);
  });

  it.each<[AclIdentity, string, string]>([
    [user('alice'), 'token:alice', 'User token:alice'],
    [jwtUser('bob', ISSUER), `jwt:${ISSUER}:bob`, `User jwt:${ISSUER}:bob`],
    [sa('shop', 'web'), 'system:serviceaccount:shop:web', 'ServiceAccount shop/web'],
    [anonymous, 'system:anonymous', 'anonymous'],
  ])('%j is %s', (identity, name, described) => {
    expect(principalName(identity)).toBe(name);
    expect(describeIdentity(identity)).toBe(described);
  });

  it('groups are not qualified: a JWT group and a token group of one name match one subject', () => {
    const evaluator = new AclEvaluator([
      acl('shop/k8s', [{ kind: 'Group', name: 'ops' }], [{ services: ['*/*'], verbs: ['read'] }]),
    ]);
    expect(evaluator.decide(user('a', ['ops']), 'read', svc('shop/x'), 'deny').allowed).toBe(true);
    expect(
      evaluator.decide(jwtUser('a', ISSUER, ['ops']), 'read', svc('shop/x'), 'deny').allowed,
    ).toBe(true);
  });
});

describe('service patterns', () => {
  const services = ['shop/orders', 'shop/cart', 'billing/orders', 'billing/cart'];
  it.each<[string, boolean[]]>([
    ['shop/orders', [true, false, false, false]],
    ['shop/*', [true, true, false, false]],
    ['*/orders', [true, false, true, false]],
    ['*/*', [true, true, true, true]],
    ['*', [true, true, true, true]],
  ])('%s', (pattern, expected) => {
    const evaluator = new AclEvaluator([
      acl('shop/p', [{ kind: 'User', name: 'alice' }], [{ services: [pattern], verbs: ['read'] }]),
    ]);
    expect(
      services.map((s) => evaluator.decide(user('alice'), 'read', svc(s), 'deny').allowed),
    ).toEqual(expected);
  });

  it('matches any of several patterns of a rule', () => {
    const evaluator = new AclEvaluator([
      acl(
        'shop/p',
        [{ kind: 'User', name: 'alice' }],
        [{ services: ['shop/cart', 'billing/*'], verbs: ['read'] }],
      ),
    ]);
    expect(
      services.map((s) => evaluator.decide(user('alice'), 'read', svc(s), 'deny').allowed),
    ).toEqual([false, true, true, true]);
  });

  it.each(['shop/ord*', 'shop', 'shop/orders/x', '*/ord*', 'Shop/orders'])(
    'the schema refuses %s',
    (pattern) => {
      expect(servicePattern.safeParse(pattern).success).toBe(false);
    },
  );
});

describe('verbs and implications', () => {
  // granted verb → verbs it allows, in ALL_VERBS order
  it.each<[AclVerb, boolean[]]>([
    ['register', [true, false, false, false, false]],
    ['discover', [false, true, false, false, false]],
    ['read', [false, false, true, false, false]],
    ['write', [true, true, true, true, false]],
    ['admin', [true, true, true, true, true]],
  ])('an allow of %s', (granted, expected) => {
    const evaluator = new AclEvaluator([
      acl(
        'shop/v',
        [{ kind: 'User', name: 'alice' }],
        [{ services: ['shop/*'], verbs: [granted] }],
      ),
    ]);
    expect(
      ALL_VERBS.map((v) => evaluator.decide(user('alice'), v, svc('shop/orders'), 'deny').allowed),
    ).toEqual(expected);
  });

  // denied verb (with an allow of admin beside it) → verbs still allowed. A deny covers what
  // the verb implies, as an allow does: deny write takes register, discover and read too.
  it.each<[AclVerb, boolean[]]>([
    ['register', [false, true, true, true, true]],
    ['discover', [true, false, true, true, true]],
    ['read', [true, true, false, true, true]],
    ['write', [false, false, false, false, true]],
    ['admin', [false, false, false, false, false]],
  ])('a deny of %s covers that verb and every verb it implies', (denied, expected) => {
    const evaluator = new AclEvaluator([
      acl(
        'shop/v',
        [{ kind: 'User', name: 'alice' }],
        [
          { services: ['*/*'], verbs: ['admin'] },
          { services: ['shop/*'], verbs: [denied], effect: 'deny' },
        ],
      ),
    ]);
    expect(
      ALL_VERBS.map((v) => evaluator.decide(user('alice'), v, svc('shop/orders'), 'deny').allowed),
    ).toEqual(expected);
  });

  // allowed verbs, denied verbs → register, discover, read, write, admin
  it.each<[AclVerb[], AclVerb[], boolean[]]>([
    [['write'], ['write'], [false, false, false, false, false]],
    [['write'], ['register'], [false, true, true, true, false]],
    [['admin'], ['write'], [false, false, false, false, true]],
    [['read', 'discover', 'register'], ['write'], [false, false, false, false, false]],
    [['write'], ['read'], [true, true, false, true, false]],
  ])('allow %j beside deny %j', (allowed, denied, expected) => {
    const evaluator = new AclEvaluator([
      acl(
        'shop/v',
        [{ kind: 'User', name: 'alice' }],
        [
          { services: ['shop/*'], verbs: allowed },
          { services: ['shop/*'], verbs: denied, effect: 'deny' },
        ],
      ),
    ]);
    expect(
      ALL_VERBS.map((v) => evaluator.decide(user('alice'), v, svc('shop/orders'), 'deny').allowed),
    ).toEqual(expected);
  });

  it('says which verb of a deny implied the one refused', () => {
    const evaluator = new AclEvaluator([
      acl(
        'shop/v',
        [{ kind: 'User', name: 'alice' }],
        [
          { services: ['shop/*'], verbs: ['write'] },
          { services: ['shop/orders'], verbs: ['write'], effect: 'deny' },
        ],
      ),
    ]);
    expect(evaluator.decide(user('alice'), 'register', svc('shop/orders'), 'deny')).toEqual({
      allowed: false,
      decidedBy: 'shop/v',
      rule: 1,
      reason:
        'ACL shop/v rule 1 denies register (implied by write) on shop/orders for User token:alice',
    });
  });

  it('says which verb implied the one asked for', () => {
    const evaluator = new AclEvaluator([
      acl(
        'shop/v',
        [{ kind: 'User', name: 'alice' }],
        [
          { services: ['shop/orders'], verbs: ['write'] },
          { services: ['shop/cart'], verbs: ['read', 'admin'] },
        ],
      ),
    ]);
    expect(evaluator.decide(user('alice'), 'read', svc('shop/orders'), 'deny').reason).toBe(
      'ACL shop/v rule 0 allows read (implied by write) on shop/orders for User token:alice',
    );
    expect(evaluator.decide(user('alice'), 'write', svc('shop/cart'), 'deny').reason).toBe(
      'ACL shop/v rule 1 allows write (implied by admin) on shop/cart for User token:alice',
    );
    expect(evaluator.decide(user('alice'), 'read', svc('shop/cart'), 'deny').reason).toBe(
      'ACL shop/v rule 1 allows read on shop/cart for User token:alice',
    );
  });
});

describe('deny wins', () => {
  const allowExact = acl(
    'shop/writers',
    [{ kind: 'ServiceAccount', namespace: 'shop', name: 'web' }],
    [{ services: ['shop/orders'], verbs: ['admin'] }],
  );
  const denyBroad = acl(
    'shop/readers',
    [{ kind: 'Group', name: 'system:serviceaccounts:shop' }],
    [
      { services: ['billing/*'], verbs: ['read'] },
      { services: ['*/*'], verbs: ['discover'], effect: 'deny' },
    ],
  );

  it.each<[string, AclObject[]]>([
    ['in one order', [allowExact, denyBroad]],
    ['in the other', [denyBroad, allowExact]],
  ])('across two ACLs, whatever the specificity, %s', (_, acls) => {
    const evaluator = new AclEvaluator(acls);
    expect(evaluator.decide(sa('shop', 'web'), 'discover', svc('shop/orders'), 'allow')).toEqual({
      allowed: false,
      decidedBy: 'shop/readers',
      rule: 1,
      reason: 'ACL shop/readers rule 1 denies discover on shop/orders for ServiceAccount shop/web',
    });
    expect(evaluator.decide(sa('shop', 'web'), 'read', svc('shop/orders'), 'deny')).toEqual({
      allowed: true,
      decidedBy: 'shop/writers',
      rule: 0,
      reason:
        'ACL shop/writers rule 0 allows read (implied by admin) on shop/orders for ServiceAccount shop/web',
    });
  });

  it('only where the deny applies', () => {
    const evaluator = new AclEvaluator([allowExact, denyBroad]);
    // another SA of the namespace is denied by the group, but has no allow either
    expect(evaluator.decide(sa('shop', 'api'), 'discover', svc('x/y'), 'allow').allowed).toBe(
      false,
    );
    // outside the group the deny does not reach
    expect(evaluator.decide(sa('other', 'web'), 'discover', svc('x/y'), 'allow').allowed).toBe(
      true,
    );
  });

  it('reports the first applying rule in ACL-name and rule order', () => {
    const subjects: Subject[] = [{ kind: 'User', name: 'alice' }];
    const evaluator = new AclEvaluator([
      acl('shop/b', subjects, [{ services: ['*/*'], verbs: ['read'], effect: 'deny' }]),
      acl('shop/a', subjects, [
        { services: ['shop/cart'], verbs: ['read'], effect: 'deny' },
        { services: ['shop/*'], verbs: ['read'], effect: 'deny' },
      ]),
      acl('admin/z', subjects, [{ services: ['*/*'], verbs: ['admin'] }]),
    ]);
    const d = evaluator.decide(user('alice'), 'read', svc('shop/orders'), 'allow');
    expect([d.allowed, d.decidedBy, d.rule]).toEqual([false, 'shop/a', 1]);
    const e = evaluator.decide(user('alice'), 'read', svc('other/orders'), 'allow');
    expect([e.allowed, e.decidedBy, e.rule]).toEqual([false, 'shop/b', 0]);
  });
});

describe('default policy', () => {
  const evaluator = new AclEvaluator([
    acl('shop/x', [{ kind: 'User', name: 'alice' }], [{ services: ['shop/*'], verbs: ['read'] }]),
  ]);

  it.each<[string, AclIdentity, AclVerb, string, 'allow' | 'deny', boolean]>([
    ['no subject matches, default allow', user('bob'), 'read', 'shop/a', 'allow', true],
    ['no subject matches, default deny', user('bob'), 'read', 'shop/a', 'deny', false],
    ['no pattern matches, default allow', user('alice'), 'read', 'billing/a', 'allow', true],
    ['no pattern matches, default deny', user('alice'), 'read', 'billing/a', 'deny', false],
    ['no verb matches, default allow', user('alice'), 'write', 'shop/a', 'allow', true],
    ['no verb matches, default deny', user('alice'), 'write', 'shop/a', 'deny', false],
  ])('%s', (_, identity, verb, service, policy, allowed) => {
    const d = evaluator.decide(identity, verb, svc(service), policy);
    expect(d.allowed).toBe(allowed);
    expect(d.decidedBy).toBe('default');
    expect(d.rule).toBeUndefined();
  });

  it('decides by default when there are no ACLs, and says so', () => {
    const empty = new AclEvaluator([]);
    expect(empty.decide(anonymous, 'register', svc('shop/a'), 'deny')).toEqual({
      allowed: false,
      decidedBy: 'default',
      reason: 'no ACL rule covers register on shop/a for anonymous; the default policy denies',
    });
    expect(empty.decide(sa('shop', 'web'), 'admin', svc('shop/a'), 'allow').reason).toBe(
      'no ACL rule covers admin on shop/a for ServiceAccount shop/web; the default policy allows',
    );
  });
});

describe('namespace confinement', () => {
  const subjects: Subject[] = [{ kind: 'User', name: 'alice' }];
  const acls = [
    acl('shop/local', subjects, [
      { services: ['*/*'], verbs: ['read'] },
      { services: ['billing/*'], verbs: ['write'] },
      { services: ['*/cart'], verbs: ['discover'], effect: 'deny' },
    ]),
    acl(
      'maxine-system/global',
      [{ kind: 'User', name: 'root' }],
      [{ services: ['*/*'], verbs: ['admin'] }],
    ),
  ];
  const confined = new AclEvaluator(acls, { globalNamespaces: ['maxine-system'] });
  const open = new AclEvaluator(acls);

  // default policy: allow where a deny is under test, else deny
  it.each<[string, string, AclVerb, string, 'allow' | 'deny', boolean, boolean]>([
    ['*/* reaches the own namespace', 'alice', 'read', 'shop/orders', 'deny', true, true],
    ['*/* does not reach another', 'alice', 'read', 'billing/orders', 'deny', false, true],
    [
      'an explicit other namespace reaches nothing',
      'alice',
      'write',
      'billing/orders',
      'deny',
      false,
      true,
    ],
    [
      'an explicit other namespace is not rewritten to the own',
      'alice',
      'write',
      'shop/orders',
      'deny',
      false,
      false,
    ],
    ['a deny stays in the own namespace', 'alice', 'discover', 'shop/cart', 'allow', false, false],
    ['a deny does not reach another', 'alice', 'discover', 'billing/cart', 'allow', true, false],
    ['a global ACL reaches everywhere', 'root', 'write', 'billing/orders', 'deny', true, true],
  ])('%s', (_, name, verb, service, policy, whenConfined, whenOpen) => {
    const ask = (e: AclEvaluator) => e.decide(user(name), verb, svc(service), policy).allowed;
    expect(ask(confined)).toBe(whenConfined);
    expect(ask(open)).toBe(whenOpen);
  });
});

describe('visibility', () => {
  const services = ['shop/orders', 'shop/cart', 'billing/orders', 'billing/cart'].map(svc);
  const evaluator = new AclEvaluator([
    acl(
      'shop/readers',
      [{ kind: 'Group', name: 'system:serviceaccounts:shop' }],
      [
        { services: ['shop/*', '*/orders'], verbs: ['read'] },
        { services: ['billing/orders'], verbs: ['read'], effect: 'deny' },
      ],
    ),
    acl(
      'shop/writers',
      [{ kind: 'User', name: 'alice' }],
      [{ services: ['*/cart'], verbs: ['write'] }],
    ),
  ]);
  const names = (list: ServiceRef[]) => list.map((s) => `${s.namespace}/${s.name}`);

  it.each<[string, AclIdentity, 'allow' | 'deny', string[]]>([
    ['allow and deny rules, default deny', sa('shop', 'web'), 'deny', ['shop/orders', 'shop/cart']],
    [
      'allow and deny rules, default allow',
      sa('shop', 'web'),
      'allow',
      ['shop/orders', 'shop/cart', 'billing/cart'],
    ],
    ['read implied by write', user('alice'), 'deny', ['shop/cart', 'billing/cart']],
    ['no rules, default deny', anonymous, 'deny', []],
    [
      'no rules, default allow',
      anonymous,
      'allow',
      ['shop/orders', 'shop/cart', 'billing/orders', 'billing/cart'],
    ],
  ])('%s', (_, identity, policy, expected) => {
    expect(names(evaluator.servicesVisible(identity, services, policy))).toEqual(expected);
    expect(names(services.filter(evaluator.canRead(identity, policy)))).toEqual(expected);
  });

  it('returns the objects given, not copies', () => {
    const extended = services.map((s) => ({ ...s, extra: 1 }));
    const visible = evaluator.servicesVisible(sa('shop', 'web'), extended, 'deny');
    expect(visible).toHaveLength(2);
    expect(visible[0]).toBe(extended[0]);
  });
});

describe('examples/acls.yaml', () => {
  const text = readFileSync(new URL('../../examples/acls.yaml', import.meta.url), 'utf8');
  const acls = parseAllDocuments(text).map((d) => {
    const r = maxineAclSchema.parse(d.toJSON());
    return { namespace: r.metadata.namespace, name: r.metadata.name, spec: r.spec };
  });
  const evaluator = new AclEvaluator(acls);

  it.each<[string, AclIdentity, AclVerb, string, boolean]>([
    ['web registers in shop', sa('shop', 'web'), 'register', 'shop/web', true],
    ['orders discovers in shop', sa('shop', 'orders'), 'discover', 'shop/payments', true],
    ['web may not write in shop', sa('shop', 'web'), 'write', 'shop/web', false],
    ['web may not discover in billing', sa('shop', 'web'), 'discover', 'billing/api', false],
    ['another SA of shop may not register', sa('shop', 'cart'), 'register', 'shop/cart', false],
    ['the platform team administers', user('sam', ['platform-team']), 'admin', 'billing/api', true],
    ['the platform team writes', user('sam', ['platform-team']), 'write', 'shop/web', true],
    ['others do not administer', user('sam', ['shop-team']), 'admin', 'shop/web', false],
  ])('%s', (_, identity, verb, service, allowed) => {
    expect(evaluator.decide(identity, verb, svc(service), 'deny').allowed).toBe(allowed);
  });
});
