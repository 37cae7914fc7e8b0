import { describe, expect, it } from '@jest/globals';
import type { IntentionEntry } from '../../common/policy/intentions.js';
import type { IntentionSpec } from '../../common/resources.js';
import type { IntentionDefault, IntentionSource } from '../mirror-state.js';
import { IntentionAuthorizer, normalisePath, scopeCovers } from './authorizer.js';
import type { OutboundRequest } from './hooks.js';

const CALLER = { namespace: 'shop', name: 'web' };

type Source = IntentionSpec['sources'][number];

/** An intention `shop/<name>` on `destination` (`ns/name`, the name may be `*`). */
function intention(name: string, destination: string, sources: Source[]): IntentionEntry {
  const [namespace, dest] = destination.split('/') as [string, string];
  return {
    namespace: 'shop',
    name,
    spec: { destination: { namespace, name: dest }, sources },
  };
}

/** An IntentionSource as the mirror offers it; `calls` counts reads of the intentions. */
class FakePolicy implements IntentionSource {
  policyVersion = 1;
  calls = 0;
  constructor(
    private list: IntentionEntry[],
    public intentionDefault: IntentionDefault | undefined,
    private readonly known: ReadonlySet<string> = new Set(['shop/orders', 'pay/api']),
  ) {}
  intentions(): Iterable<IntentionEntry> {
    this.calls += 1;
    return this.list;
  }
  has(namespace: string, name: string): boolean {
    return this.known.has(`${namespace}/${name}`);
  }
  set(list: IntentionEntry[]): void {
    this.list = list;
    this.policyVersion += 1;
  }
}

function call(
  destination: string,
  method = 'GET',
  path = '/',
  headers: OutboundRequest['headers'] = {},
): OutboundRequest {
  const [namespace, name] = destination.split('/') as [string, string];
  return { destination: { namespace, name }, method, path, headers };
}

const allow = (name: string, namespace?: string): Source => ({
  name,
  action: 'allow',
  ...(namespace !== undefined && { namespace }),
});
const deny = (name: string, namespace?: string): Source => ({
  name,
  action: 'deny',
  ...(namespace !== undefined && { namespace }),
});

/** `web` may call orders by these L7 permissions (first match wins), nothing else said. */
const l7 = (permissions: NonNullable<Source['permissions']>): IntentionEntry[] => [
  intention('orders-l7', 'shop/orders', [{ name: 'web', permissions }]),
];

interface Case {
  name: string;
  intentions: IntentionEntry[];
  default: IntentionDefault;
  request: OutboundRequest;
  allowed: boolean;
  /** `namespace/name` of the deciding intention, or `default`. */
  by: string;
  /** A part of the refusal's reason. */
  reason?: RegExp;
}

const cases: Case[] = [
  {
    name: 'an exact intention allows, over a default deny',
    intentions: [intention('orders', 'shop/orders', [allow('web')])],
    default: 'deny',
    request: call('shop/orders'),
    allowed: true,
    by: 'shop/orders',
  },
  {
    name: 'an exact intention denies, over a default allow',
    intentions: [intention('orders', 'shop/orders', [deny('web')])],
    default: 'allow',
    request: call('shop/orders'),
    allowed: false,
    by: 'shop/orders',
    reason: /^shop\/web may not call shop\/orders: intention shop\/orders: source shop\/web denies/,
  },
  {
    name: 'an intention for another caller does not apply: default',
    intentions: [intention('orders', 'shop/orders', [deny('cart')])],
    default: 'allow',
    request: call('shop/orders'),
    by: 'default',
    allowed: true,
  },
  {
    name: 'a source of the same name in another namespace does not apply',
    intentions: [intention('orders', 'shop/orders', [allow('web', 'other')])],
    default: 'deny',
    request: call('shop/orders'),
    by: 'default',
    allowed: false,
    reason: /no intention for shop\/orders matches source shop\/web; default deny/,
  },
  {
    name: 'an exact destination beats a wildcard one (exact allows, * denies)',
    intentions: [
      intention('all-shop', 'shop/*', [deny('web')]),
      intention('orders', 'shop/orders', [allow('web')]),
    ],
    default: 'deny',
    request: call('shop/orders'),
    allowed: true,
    by: 'shop/orders',
  },
  {
    name: 'an exact destination beats a wildcard one (exact denies, * allows)',
    intentions: [
      intention('all-shop', 'shop/*', [allow('web')]),
      intention('orders', 'shop/orders', [deny('web')]),
    ],
    default: 'allow',
    request: call('shop/orders'),
    allowed: false,
    by: 'shop/orders',
  },
  {
    name: 'a wildcard destination decides when the exact one names other callers',
    intentions: [
      intention('all-shop', 'shop/*', [deny('web')]),
      intention('orders', 'shop/orders', [allow('cart')]),
    ],
    default: 'allow',
    request: call('shop/orders'),
    allowed: false,
    by: 'shop/all-shop',
  },
  {
    name: 'a namespace-wide destination with an any-caller source applies',
    intentions: [intention('everything', 'pay/*', [deny('*', '*')])],
    default: 'allow',
    request: call('pay/api'),
    allowed: false,
    by: 'shop/everything',
  },
  {
    name: 'an exact source beats a wildcard source',
    intentions: [intention('orders', 'shop/orders', [deny('*'), allow('web')])],
    default: 'deny',
    request: call('shop/orders'),
    allowed: true,
    by: 'shop/orders',
  },
  {
    name: 'deny wins a tie of equal precedence across intentions',
    intentions: [
      intention('a-allow', 'shop/orders', [allow('web')]),
      intention('b-deny', 'shop/orders', [deny('web')]),
    ],
    default: 'allow',
    request: call('shop/orders'),
    allowed: false,
    by: 'shop/b-deny',
  },
  {
    name: 'no intention at all: default allow',
    intentions: [],
    default: 'allow',
    request: call('shop/orders'),
    by: 'default',
    allowed: true,
  },
  {
    name: 'no intention at all: default deny, the reason says so',
    intentions: [],
    default: 'deny',
    request: call('shop/orders'),
    by: 'default',
    allowed: false,
    reason: /default deny$/,
  },
  {
    name: 'L7 path exact: allowed',
    intentions: l7([{ action: 'allow', http: { pathExact: '/orders' } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/orders?page=2'),
    allowed: true,
    by: 'shop/orders-l7',
  },
  {
    name: 'L7 path exact: another path falls through to the default',
    intentions: l7([{ action: 'allow', http: { pathExact: '/orders' } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/orders/1'),
    by: 'default',
    allowed: false,
    reason: /has no permission matching GET \/orders\/1; default deny/,
  },
  {
    name: 'L7 path prefix denies, first match wins over a later allow',
    intentions: l7([
      { action: 'deny', http: { pathPrefix: '/admin' } },
      { action: 'allow', http: { pathPrefix: '/' } },
    ]),
    default: 'allow',
    request: call('shop/orders', 'GET', '/admin/users'),
    allowed: false,
    by: 'shop/orders-l7',
    reason: /denies GET \/admin\/users \(permission 0\)/,
  },
  {
    name: 'L7 path regex matches the whole path',
    intentions: l7([{ action: 'allow', http: { pathRegex: '/orders/[0-9]+' } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/orders/42'),
    by: 'shop/orders-l7',
    allowed: true,
  },
  {
    name: 'L7 path regex: a partial match is no match',
    intentions: l7([{ action: 'allow', http: { pathRegex: '/orders/[0-9]+' } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/orders/42/items'),
    by: 'default',
    allowed: false,
  },
  {
    name: 'L7 methods: GET allowed',
    intentions: l7([{ action: 'allow', http: { methods: ['GET', 'HEAD'] } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/x'),
    by: 'shop/orders-l7',
    allowed: true,
  },
  {
    name: 'L7 methods: DELETE not listed',
    intentions: l7([{ action: 'allow', http: { methods: ['GET', 'HEAD'] } }]),
    default: 'deny',
    request: call('shop/orders', 'DELETE', '/x'),
    by: 'default',
    allowed: false,
  },
  {
    name: 'L7 header exact matches the real request header',
    intentions: l7([{ action: 'allow', http: { headers: [{ name: 'X-Tenant', exact: 'acme' }] } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/', { 'x-tenant': 'acme' }),
    by: 'shop/orders-l7',
    allowed: true,
  },
  {
    name: 'L7 header exact: another value',
    intentions: l7([{ action: 'allow', http: { headers: [{ name: 'X-Tenant', exact: 'acme' }] } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/', { 'x-tenant': 'evil' }),
    by: 'default',
    allowed: false,
  },
  {
    name: 'L7 header presence: absent header denied by an inverted presence test',
    intentions: l7([
      {
        action: 'deny',
        http: { headers: [{ name: 'authorization', present: true, invert: true }] },
      },
    ]),
    default: 'allow',
    request: call('shop/orders', 'POST', '/'),
    by: 'shop/orders-l7',
    allowed: false,
  },
  {
    name: 'L7 header of a repeated (array) request header is read joined',
    intentions: l7([
      { action: 'deny', http: { headers: [{ name: 'set-cookie', contains: 'admin=1' }] } },
    ]),
    default: 'allow',
    request: call('shop/orders', 'GET', '/', { 'set-cookie': ['a=1', 'admin=1'] }),
    by: 'shop/orders-l7',
    allowed: false,
  },
  {
    name: 'L7 and a tie: an action deny of equal precedence still wins',
    intentions: [
      ...l7([{ action: 'allow', http: { pathPrefix: '/' } }]),
      intention('z-deny', 'shop/orders', [deny('web')]),
    ],
    default: 'allow',
    request: call('shop/orders', 'GET', '/x'),
    allowed: false,
    by: 'shop/z-deny',
  },
  {
    name: 'path normalisation: a dot segment cannot reach a denied prefix',
    intentions: l7([{ action: 'deny', http: { pathPrefix: '/admin' } }]),
    default: 'allow',
    request: call('shop/orders', 'GET', '/public/../admin/users'),
    by: 'shop/orders-l7',
    allowed: false,
    reason: /denies GET \/admin\/users/,
  },
  {
    name: 'path normalisation: a doubled slash cannot reach a denied path',
    intentions: l7([{ action: 'deny', http: { pathExact: '/admin' } }]),
    default: 'allow',
    request: call('shop/orders', 'GET', '//admin'),
    by: 'shop/orders-l7',
    allowed: false,
  },
  {
    name: 'path normalisation: percent-encoding cannot reach a denied prefix',
    intentions: l7([{ action: 'deny', http: { pathPrefix: '/admin' } }]),
    default: 'allow',
    request: call('shop/orders', 'GET', '/%61dmin/x'),
    by: 'shop/orders-l7',
    allowed: false,
  },
  {
    name: 'path normalisation: a path parameter cannot hide a denied path',
    intentions: l7([{ action: 'deny', http: { pathExact: '/admin' } }]),
    default: 'allow',
    by: 'shop/orders-l7',
    request: call('shop/orders', 'GET', '/admin;x=1'),
    allowed: false,
  },
  {
    // An origin-form request-target has no fragment (RFC 9112 §3.2): a server that does not
    // split at `#` (Go's ParseRequestURI, then path.Clean) acts on `/admin`.
    name: 'path normalisation: a `#` cannot hide the dot segments after it',
    intentions: l7([{ action: 'deny', http: { pathPrefix: '/admin' } }]),
    default: 'allow',
    by: 'shop/orders-l7',
    request: call('shop/orders', 'GET', '/x#/../admin'),
    allowed: false,
  },
  {
    name: 'path normalisation: an allowed prefix cannot be left by a dot segment',
    intentions: l7([{ action: 'allow', http: { pathPrefix: '/public/' } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/public/../admin'),
    by: 'default',
    allowed: false,
  },
  {
    name: 'path normalisation: a path unchanged by it is decided once, as given',
    intentions: l7([{ action: 'allow', http: { pathPrefix: '/public/' } }]),
    default: 'deny',
    request: call('shop/orders', 'GET', '/public/a.b/c'),
    by: 'shop/orders-l7',
    allowed: true,
  },
];

describe('IntentionAuthorizer', () => {
  it.each(cases)('$name', (c) => {
    const authorizer = new IntentionAuthorizer({
      caller: CALLER,
      policy: new FakePolicy(c.intentions, c.default),
    });
    const decision = authorizer.authorize(c.request);
    expect(decision.allowed).toBe(c.allowed);
    const by = decision.intention && `${decision.intention.namespace}/${decision.intention.name}`;
    expect(by ?? 'default').toBe(c.by);
    if (c.reason !== undefined) {
      expect(decision.allowed).toBe(false);
      if (!decision.allowed) expect(decision.reason).toMatch(c.reason);
    }
  });

  it('an intention removed: the default decides again, without a new authorizer', () => {
    const policy = new FakePolicy([intention('orders', 'shop/orders', [deny('web')])], 'allow');
    const authorizer = new IntentionAuthorizer({ caller: CALLER, policy });
    expect(authorizer.authorize(call('shop/orders')).allowed).toBe(false);
    policy.set([]);
    expect(authorizer.authorize(call('shop/orders'))).toEqual({ allowed: true });
    policy.intentionDefault = 'deny';
    policy.set([]);
    const d = authorizer.authorize(call('shop/orders'));
    expect(d).toMatchObject({ allowed: false, reason: expect.stringMatching(/default deny$/) });
    expect(d.intention).toBeUndefined();
  });

  it('precomputes: a decision no request detail changes is one object, the policy read once', () => {
    const policy = new FakePolicy([intention('orders', 'shop/orders', [allow('web')])], 'deny');
    const authorizer = new IntentionAuthorizer({ caller: CALLER, policy });
    const first = authorizer.authorize(call('shop/orders', 'GET', '/a'));
    const second = authorizer.authorize(call('shop/orders', 'POST', '/b'));
    expect(second).toBe(first);
    expect(policy.calls).toBe(1);
    // A destination the copy does not hold is not kept (an app cannot grow the cache).
    authorizer.authorize(call('shop/nope'));
    authorizer.authorize(call('shop/nope'));
    expect(policy.calls).toBe(3);
  });

  it('L7: the calls an intention allows share one decision object (none built per call)', () => {
    const policy = new FakePolicy(
      l7([{ action: 'allow', http: { methods: ['GET'], pathPrefix: '/' } }]),
      'deny',
    );
    const authorizer = new IntentionAuthorizer({ caller: CALLER, policy });
    const first = authorizer.authorize(call('shop/orders', 'GET', '/a'));
    const second = authorizer.authorize(call('shop/orders', 'GET', '/b'));
    expect(first).toEqual({ allowed: true, intention: { namespace: 'shop', name: 'orders-l7' } });
    expect(second).toBe(first);
    const refused = authorizer.authorize(call('shop/orders', 'POST', '/a'));
    expect(refused.allowed).toBe(false);
    // A new policy: decisions are made afresh.
    policy.set(l7([{ action: 'allow', http: { methods: ['GET'], pathPrefix: '/' } }]));
    const after = authorizer.authorize(call('shop/orders', 'GET', '/a'));
    expect(after).toEqual(first);
    expect(after).not.toBe(first);
  });

  it('before the operator sent intentions (default unknown) every call is refused', () => {
    const policy = new FakePolicy([], undefined);
    const authorizer = new IntentionAuthorizer({ caller: CALLER, policy });
    const d = authorizer.authorize(call('shop/orders'));
    expect(d).toMatchObject({ allowed: false, reason: expect.stringMatching(/no intentions/) });
  });

  it('a destination outside the scope is refused (its intentions are not mirrored)', () => {
    const policy = new FakePolicy([], 'allow');
    const authorizer = new IntentionAuthorizer({
      caller: CALLER,
      policy,
      inScope: (d) => d.namespace === 'shop',
    });
    expect(authorizer.authorize(call('shop/orders')).allowed).toBe(true);
    expect(authorizer.authorize(call('pay/api'))).toMatchObject({
      allowed: false,
      reason: expect.stringMatching(/outside this sidecar's discovery scope/),
    });
  });
});

describe('IntentionAuthorizer.discovery (local discovery, issue 17)', () => {
  // intentions, default → may shop/web discover shop/orders?
  it.each<[string, IntentionEntry[], IntentionDefault | undefined, boolean]>([
    ['an allowing intention', [intention('orders', 'shop/orders', [allow('web')])], 'deny', true],
    ['a denying intention', [intention('orders', 'shop/orders', [deny('web')])], 'allow', false],
    ['no intention, default deny', [], 'deny', false],
    ['no intention, default allow', [], 'allow', true],
    [
      'an L7 intention allowing some calls',
      l7([{ action: 'allow', http: { methods: ['GET'], pathPrefix: '/api' } }]),
      'deny',
      true,
    ],
    [
      'an L7 intention allowing nothing',
      l7([{ action: 'deny', http: { pathPrefix: '/' } }]),
      'deny',
      false,
    ],
    ['no intentions from the operator yet', [], undefined, false],
  ])('%s', (_what, intentions, intentionDefault, allowed) => {
    const authorizer = new IntentionAuthorizer({
      caller: CALLER,
      policy: new FakePolicy(intentions, intentionDefault),
    });
    expect(authorizer.discovery({ namespace: 'shop', name: 'orders' }).allowed).toBe(allowed);
  });

  it('is precomputed with the call decision and follows a policy change', () => {
    const policy = new FakePolicy([intention('orders', 'shop/orders', [allow('web')])], 'deny');
    const authorizer = new IntentionAuthorizer({ caller: CALLER, policy });
    const orders = { namespace: 'shop', name: 'orders' };
    expect(authorizer.discovery(orders)).toBe(authorizer.discovery(orders));
    expect(policy.calls).toBe(1);
    policy.set([intention('orders', 'shop/orders', [deny('web')])]);
    expect(authorizer.discovery(orders)).toMatchObject({
      allowed: false,
      intention: { namespace: 'shop', name: 'orders' },
    });
  });
});

describe('normalisePath', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a/b?x=/../y', '/a/b'],
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/../../b', '/b'],
    ['/a/b/..', '/a/'],
    ['//a///b', '/a/b'],
    ['/a%2Fb', '/a/b'],
    ['/%2e%2e/admin', '/admin'],
    ['/a\\..\\admin', '/admin'],
    ['/bad%zz', '/bad%zz'],
    ['/admin;jsessionid=1/x', '/admin/x'],
    ['/a/..;/admin', '/admin'],
    ['/x#/../admin', '/admin'],
    ['/a?b#/../c', '/a'],
    ['', '/'],
  ])('%s → %s', (raw, expected) => {
    expect(normalisePath(raw)).toBe(expected);
  });
});

describe('scopeCovers', () => {
  const scope = ['pay/api', 'shop/*'];
  it.each([
    [undefined, 'pay/secret', true],
    [scope, 'shop/orders', true],
    [scope, 'pay/api', true],
    [scope, 'pay/secret', false],
    [scope, 'hr/api', false],
    [['*/*'], 'hr/api', true],
  ])('%j covers %s: %s', (patterns, destination, expected) => {
    const [namespace, name] = destination.split('/') as [string, string];
    expect(scopeCovers(patterns, { namespace, name })).toBe(expected);
  });
});
