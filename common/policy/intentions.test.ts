import { describe, it, expect, jest } from '@jest/globals';
import { createRequire } from 'node:module';
import type * as Re2 from 're2js';
import { intentionSpecSchema } from '../resources.js';
import type { IntentionSpec } from '../resources.js';
import { evaluateIntentions, httpMatches, intentionPrecedence } from './intentions.js';
import type {
  HttpPermissionMatch,
  HttpRequestInfo,
  IntentionAction,
  IntentionEntry,
  IntentionRequest,
  ServiceRef,
} from './intentions.js';

/** An intention object; its spec goes through the schema like one read from the cluster. */
function intention(namespace: string, name: string, spec: unknown): IntentionEntry {
  return { namespace, name, spec: intentionSpecSchema.parse(spec) };
}

/** For what the schema cannot express (a `*` destination namespace); see the report. */
function rawIntention(namespace: string, name: string, spec: IntentionSpec): IntentionEntry {
  return { namespace, name, spec };
}

const WEB: ServiceRef = { namespace: 'shop', name: 'web' };
const ORDERS: ServiceRef = { namespace: 'shop', name: 'orders' };

function http(method: string, path: string, headers: Record<string, string> = {}): HttpRequestInfo {
  return { method, path, headers };
}

function l7(method: string, path: string, headers?: Record<string, string>): IntentionRequest {
  return { source: WEB, destination: ORDERS, http: http(method, path, headers) };
}

const L4: IntentionRequest = { source: WEB, destination: ORDERS };

// ---- precedence table ----

const SRC = {
  exact: { namespace: 'shop', name: 'web' },
  nsOnly: { namespace: 'shop', name: '*' },
  any: { namespace: '*', name: '*' },
} satisfies Record<string, ServiceRef>;
const DST = {
  exact: { namespace: 'shop', name: 'orders' },
  nsOnly: { namespace: 'shop', name: '*' },
  any: { namespace: '*', name: '*' },
} satisfies Record<string, ServiceRef>;

/** Consul's table, highest first: [precedence, source pattern, destination pattern]. */
const TABLE: [number, keyof typeof SRC, keyof typeof DST][] = [
  [9, 'exact', 'exact'],
  [8, 'nsOnly', 'exact'],
  [7, 'any', 'exact'],
  [6, 'exact', 'nsOnly'],
  [5, 'nsOnly', 'nsOnly'],
  [4, 'any', 'nsOnly'],
  [3, 'exact', 'any'],
  [2, 'nsOnly', 'any'],
  [1, 'any', 'any'],
];

/** An intention `shop/<name>` holding one source at the given table row. */
function atRow(row: number, name: string, action: IntentionAction): IntentionEntry {
  const [, src, dst] = TABLE.find(([p]) => p === row)!;
  return rawIntention('shop', name, {
    destination: DST[dst],
    sources: [{ ...SRC[src], action }],
  });
}

describe('intentionPrecedence', () => {
  it.each(TABLE)('row %i: source %s, destination %s', (row, src, dst) => {
    expect(intentionPrecedence(SRC[src], DST[dst])).toBe(row);
  });

  it('ranks a wildcard namespace as fully wildcard, as Consul does', () => {
    expect(intentionPrecedence({ namespace: '*', name: 'web' }, DST.exact)).toBe(7);
  });
});

describe('evaluateIntentions: precedence', () => {
  const pairs = TABLE.flatMap(([high]) =>
    TABLE.filter(([low]) => low < high).flatMap(([low]) => [
      [high, low, 'allow', 'deny'] as const,
      [high, low, 'deny', 'allow'] as const,
    ]),
  );

  it.each(pairs)('row %i beats row %i (%s over %s)', (high, low, highAction, lowAction) => {
    for (const order of [
      [atRow(high, 'high', highAction), atRow(low, 'low', lowAction)],
      [atRow(low, 'low', lowAction), atRow(high, 'high', highAction)],
    ]) {
      const decision = evaluateIntentions(order, L4, 'deny');
      expect(decision.allowed).toBe(highAction === 'allow');
      expect(decision.decidedBy).toEqual({
        intention: 'shop/high',
        source: `${SRC[TABLE[9 - high]![1]].namespace}/${SRC[TABLE[9 - high]![1]].name}`,
      });
    }
  });

  it.each(TABLE.map(([row]) => row))('row %i: deny wins over allow at equal precedence', (row) => {
    for (const order of [
      [atRow(row, 'a', 'allow'), atRow(row, 'b', 'deny')],
      [atRow(row, 'b', 'deny'), atRow(row, 'a', 'allow')],
    ]) {
      const decision = evaluateIntentions(order, L4, 'allow');
      expect(decision.allowed).toBe(false);
      expect(decision.decidedBy).toMatchObject({ intention: 'shop/b' });
    }
  });

  it('allows at equal precedence when every tied source allows', () => {
    const decision = evaluateIntentions(
      [atRow(9, 'b', 'allow'), atRow(9, 'a', 'allow')],
      L4,
      'deny',
    );
    expect(decision).toMatchObject({ allowed: true, decidedBy: { intention: 'shop/a' } });
  });

  it('counts `web` and `shop/web` in a shop intention as the same source: deny wins', () => {
    const entry = intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [
        { name: 'web', action: 'allow' },
        { namespace: 'shop', name: 'web', action: 'deny' },
      ],
    });
    expect(evaluateIntentions([entry], L4, 'allow').allowed).toBe(false);
  });

  it('a tied L7 source whose matching permission denies beats a tied allow', () => {
    const allow = intention('shop', 'a', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', action: 'allow' }],
    });
    const l7Deny = intention('shop', 'b', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', permissions: [{ action: 'deny', http: { pathPrefix: '/admin' } }] }],
    });
    expect(evaluateIntentions([allow, l7Deny], l7('GET', '/admin/x'), 'allow')).toMatchObject({
      allowed: false,
      decidedBy: { intention: 'shop/b', source: 'shop/web', permission: 0 },
    });
    expect(evaluateIntentions([allow, l7Deny], l7('GET', '/public'), 'allow')).toMatchObject({
      allowed: true,
    });
  });
});

describe('evaluateIntentions: destinations and sources', () => {
  const exactDest = intention('shop', 'orders', {
    destination: { name: 'orders' },
    sources: [{ name: 'web', action: 'deny' }],
  });
  const nsWide = intention('shop', 'everything', {
    destination: { name: '*' },
    sources: [{ name: '*', action: 'allow' }],
  });
  const meshWide = rawIntention('ops', 'mesh', {
    destination: { namespace: '*', name: '*' },
    sources: [{ namespace: '*', name: '*', action: 'allow' }],
  });

  it('an exact destination beats a namespace-wide one for a source both match', () => {
    expect(evaluateIntentions([nsWide, exactDest], L4, 'allow')).toMatchObject({
      allowed: false,
      decidedBy: { intention: 'shop/orders', source: 'shop/web' },
    });
  });

  it('falls to a wildcard destination when the exact one has no matching source', () => {
    const other = { namespace: 'shop', name: 'cart' };
    expect(
      evaluateIntentions([exactDest, nsWide], { source: other, destination: ORDERS }, 'deny'),
    ).toMatchObject({
      allowed: true,
      decidedBy: { intention: 'shop/everything', source: 'shop/*' },
    });
  });

  it('a namespace-wide destination does not reach other namespaces; `*/*` does', () => {
    const request = { source: { namespace: 'billing', name: 'web' }, destination: ORDERS };
    const elsewhere = { source: WEB, destination: { namespace: 'billing', name: 'pay' } };
    expect(evaluateIntentions([nsWide], elsewhere, 'deny').decidedBy).toBe('default');
    expect(evaluateIntentions([nsWide], request, 'deny').decidedBy).toBe('default');
    expect(evaluateIntentions([meshWide], elsewhere, 'deny')).toMatchObject({
      allowed: true,
      decidedBy: { intention: 'ops/mesh', source: '*/*' },
    });
  });

  it('an explicit destination namespace overrides the intention object namespace', () => {
    const remote = intention('ops', 'orders-policy', {
      destination: { namespace: 'shop', name: 'orders' },
      sources: [{ namespace: 'shop', name: 'web', action: 'deny' }],
    });
    expect(evaluateIntentions([remote], L4, 'allow')).toMatchObject({
      allowed: false,
      decidedBy: { intention: 'ops/orders-policy', source: 'shop/web' },
    });
    const opsOrders = { source: WEB, destination: { namespace: 'ops', name: 'orders' } };
    expect(evaluateIntentions([remote], opsOrders, 'allow').decidedBy).toBe('default');
  });

  it('a source without namespace means the intention object namespace', () => {
    const entry = intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', action: 'deny' }],
    });
    const fromBilling = { source: { namespace: 'billing', name: 'web' }, destination: ORDERS };
    expect(evaluateIntentions([entry], fromBilling, 'allow')).toMatchObject({
      allowed: true,
      decidedBy: 'default',
    });
    expect(evaluateIntentions([entry], L4, 'allow').allowed).toBe(false);
  });

  it('no intentions at all: the default, either way', () => {
    expect(evaluateIntentions([], L4, 'allow')).toEqual({
      allowed: true,
      decidedBy: 'default',
      reason: 'no intention for shop/orders matches source shop/web; default allow',
    });
    expect(evaluateIntentions([], L4, 'deny')).toMatchObject({
      allowed: false,
      decidedBy: 'default',
    });
  });
});

describe('evaluateIntentions: unknown source', () => {
  const unknown: IntentionRequest = { destination: ORDERS };
  const named = intention('shop', 'orders', {
    destination: { name: 'orders' },
    sources: [
      { name: 'web', action: 'allow' },
      { name: '*', action: 'allow' },
    ],
  });

  it.each(['allow', 'deny'] as const)(
    'named and namespace-wide sources never match it (default %s)',
    (def) => {
      expect(evaluateIntentions([named], unknown, def)).toEqual({
        allowed: def === 'allow',
        decidedBy: 'default',
        reason: `no intention for shop/orders matches unknown source; default ${def}`,
      });
    },
  );

  it.each(['allow', 'deny'] as const)('a `*/*` source decides for it (%s)', (action) => {
    const entry = intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ namespace: '*', name: '*', action }],
    });
    const other = action === 'allow' ? 'deny' : 'allow';
    expect(evaluateIntentions([entry], unknown, other)).toMatchObject({
      allowed: action === 'allow',
      decidedBy: { intention: 'shop/orders', source: '*/*' },
    });
  });
});

describe('evaluateIntentions: L7 permissions', () => {
  function withPermissions(permissions: unknown[]): IntentionEntry {
    return intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', permissions }],
    });
  }

  it.each([
    ['allow first', 'allow', 'deny', true],
    ['deny first', 'deny', 'allow', false],
  ] as const)('first match is terminal (%s)', (_, first, second, allowed) => {
    const entry = withPermissions([
      { action: first, http: { pathPrefix: '/api' } },
      { action: second, http: { pathPrefix: '/api/admin' } },
    ]);
    expect(evaluateIntentions([entry], l7('GET', '/api/admin/users'), 'deny')).toMatchObject({
      allowed,
      decidedBy: { intention: 'shop/orders', source: 'shop/web', permission: 0 },
    });
  });

  it('a later permission decides when earlier ones do not match, with a readable reason', () => {
    const entry = withPermissions([
      { action: 'allow', http: { pathPrefix: '/api' } },
      { action: 'allow', http: { pathExact: '/health' } },
      { action: 'deny', http: { pathPrefix: '/admin', methods: ['GET'] } },
    ]);
    expect(evaluateIntentions([entry], l7('GET', '/admin'), 'allow')).toEqual({
      allowed: false,
      decidedBy: { intention: 'shop/orders', source: 'shop/web', permission: 2 },
      reason: 'intention shop/orders: source shop/web denies GET /admin (permission 2)',
    });
  });

  it.each(['allow', 'deny'] as const)(
    'no matching permission falls through to default %s',
    (def) => {
      const entry = withPermissions([
        { action: 'allow', http: { pathPrefix: '/api' } },
        { action: 'deny', http: { pathPrefix: '/admin' } },
      ]);
      expect(evaluateIntentions([entry], l7('GET', '/other'), def)).toEqual({
        allowed: def === 'allow',
        decidedBy: 'default',
        reason: `intention shop/orders: source shop/web has no permission matching GET /other; default ${def}`,
      });
    },
  );

  it('falls through to the default, not to a lower-precedence intention', () => {
    const entry = withPermissions([{ action: 'deny', http: { pathPrefix: '/admin' } }]);
    const lower = intention('shop', 'all', {
      destination: { name: '*' },
      sources: [{ namespace: '*', name: '*', action: 'allow' }],
    });
    expect(evaluateIntentions([entry, lower], l7('GET', '/other'), 'deny')).toMatchObject({
      allowed: false,
      decidedBy: 'default',
    });
  });

  it.each([
    ['pathExact', { pathExact: '/health' }, '/health', true],
    ['pathExact, longer path', { pathExact: '/health' }, '/health/x', false],
    ['pathExact ignores the query string', { pathExact: '/health' }, '/health?full=1', true],
    ['pathPrefix', { pathPrefix: '/api/' }, '/api/v1', true],
    ['pathPrefix, other path', { pathPrefix: '/api/' }, '/apiv1', false],
    ['pathRegex', { pathRegex: '/users/[0-9]+' }, '/users/42', true],
    [
      'pathRegex matches the whole path (suffix)',
      { pathRegex: '/users/[0-9]+' },
      '/users/42/x',
      false,
    ],
    [
      'pathRegex matches the whole path (prefix)',
      { pathRegex: '/users/[0-9]+' },
      '/v1/users/42',
      false,
    ],
    ['pathRegex with alternation stays anchored', { pathRegex: '/a|/b' }, '/a/x', false],
    ['pathRegex ignores the query string', { pathRegex: '/users/[0-9]+' }, '/users/7?x=1', true],
    ['no path condition', {}, '/anything', true],
  ] as [string, HttpPermissionMatch, string, boolean][])('%s', (_, match, path, expected) => {
    expect(httpMatches(match, http('GET', path))).toBe(expected);
  });

  it.each([
    [['GET', 'HEAD'], 'GET', true],
    [['GET', 'HEAD'], 'HEAD', true],
    [['GET', 'HEAD'], 'POST', false],
    [['GET'], 'get', false],
    [[], 'DELETE', true],
    [undefined, 'PATCH', true],
  ] as [HttpPermissionMatch['methods'], string, boolean][])(
    'methods %j, request %s → %s',
    (methods, method, expected) => {
      expect(httpMatches({ methods }, http(method, '/'))).toBe(expected);
    },
  );
});

describe('regex compilation', () => {
  it('compiles each pattern once with RE2, never with the backtracking RegExp', () => {
    // The engine as common/regex-safety.ts loads it: required on first use (decision 0027).
    const { RE2JS } = createRequire(import.meta.url)('re2js') as typeof Re2;
    const re2 = jest.spyOn(RE2JS, 'compile');
    const native = jest.spyOn(globalThis, 'RegExp');
    try {
      const match: HttpPermissionMatch = {
        pathRegex: '/cached/[a-z]+',
        headers: [{ name: 'x-cached', regex: 'c[0-9]' }],
      };
      for (let i = 0; i < 5; i++) {
        expect(httpMatches(match, http('GET', '/cached/abc', { 'x-cached': 'c1' }))).toBe(true);
      }
      expect(re2).toHaveBeenCalledTimes(2);
      expect(native).not.toHaveBeenCalled();
    } finally {
      re2.mockRestore();
      native.mockRestore();
    }
  });

  it.each([
    ['pathRegex', { pathRegex: '/(a|a)*b' }, (v: string) => http('GET', v)],
    [
      'header regex',
      { headers: [{ name: 'x-a', regex: '/(a|a)*b' }] },
      (v: string) => http('GET', '/', { 'x-a': v }),
    ],
  ] as [string, HttpPermissionMatch, (v: string) => ReturnType<typeof http>][])(
    'a %s with overlapping alternatives answers in linear time on 2,048 characters',
    (_name, match, request) => {
      // Node's backtracking RegExp takes seconds on a 28-character path here.
      const long = '/' + 'a'.repeat(2047);
      const started = performance.now();
      expect(httpMatches(match, request(long))).toBe(false);
      expect(httpMatches(match, request(long + 'b'))).toBe(true);
      expect(performance.now() - started).toBeLessThan(200);
    },
  );
});

describe('header matchers', () => {
  type Header = NonNullable<HttpPermissionMatch['headers']>[number];
  const cases: [string, Header, Record<string, string>, boolean][] = [
    ['present, header there', { name: 'x-tenant', present: true }, { 'x-tenant': '' }, true],
    ['present, header missing', { name: 'x-tenant', present: true }, {}, false],
    ['present: false, header missing', { name: 'x-tenant', present: false }, {}, true],
    [
      'present: false, header there',
      { name: 'x-tenant', present: false },
      { 'x-tenant': 'a' },
      false,
    ],
    ['name only means present', { name: 'x-tenant' }, { 'x-tenant': 'a' }, true],
    ['name only, header missing', { name: 'x-tenant' }, {}, false],
    ['exact', { name: 'x-tenant', exact: 'acme' }, { 'x-tenant': 'acme' }, true],
    ['exact, other value', { name: 'x-tenant', exact: 'acme' }, { 'x-tenant': 'acme2' }, false],
    ['exact, missing', { name: 'x-tenant', exact: 'acme' }, {}, false],
    [
      'header names are case-insensitive',
      { name: 'X-Tenant', exact: 'acme' },
      { 'x-tenant': 'acme' },
      true,
    ],
    [
      'request header names may be mixed case',
      { name: 'x-tenant', exact: 'acme' },
      { 'X-TENANT': 'acme' },
      true,
    ],
    ['prefix', { name: 'x-v', prefix: 'v1.' }, { 'x-v': 'v1.2' }, true],
    ['prefix, no', { name: 'x-v', prefix: 'v1.' }, { 'x-v': 'v2.1' }, false],
    ['suffix', { name: 'host', suffix: '.internal' }, { host: 'a.internal' }, true],
    ['suffix, no', { name: 'host', suffix: '.internal' }, { host: 'a.internal.com' }, false],
    ['contains', { name: 'ua', contains: 'bot' }, { ua: 'googlebot/2' }, true],
    ['contains, no', { name: 'ua', contains: 'bot' }, { ua: 'firefox' }, false],
    ['regex, whole value', { name: 'x-v', regex: 'v[0-9]+' }, { 'x-v': 'v12' }, true],
    [
      'regex, partial value does not match',
      { name: 'x-v', regex: 'v[0-9]+' },
      { 'x-v': 'xv12' },
      false,
    ],
    ['regex, header missing', { name: 'x-v', regex: '.*' }, {}, false],
    [
      'invert exact, other value',
      { name: 'x-env', exact: 'prod', invert: true },
      { 'x-env': 'dev' },
      true,
    ],
    [
      'invert exact, same value',
      { name: 'x-env', exact: 'prod', invert: true },
      { 'x-env': 'prod' },
      false,
    ],
    ['invert exact, header missing', { name: 'x-env', exact: 'prod', invert: true }, {}, true],
    ['invert present', { name: 'x-debug', present: true, invert: true }, { 'x-debug': '1' }, false],
    ['invert present, missing', { name: 'x-debug', present: true, invert: true }, {}, true],
    ['invert regex', { name: 'x-v', regex: 'v[0-9]+', invert: true }, { 'x-v': 'beta' }, true],
  ];

  it.each(cases)('%s', (_, header, headers, expected) => {
    expect(httpMatches({ headers: [header] }, http('GET', '/', headers))).toBe(expected);
  });

  it('all header conditions must match', () => {
    const match: HttpPermissionMatch = {
      headers: [
        { name: 'x-tenant', exact: 'acme' },
        { name: 'x-env', exact: 'prod', invert: true },
      ],
    };
    expect(httpMatches(match, http('GET', '/', { 'x-tenant': 'acme', 'x-env': 'dev' }))).toBe(true);
    expect(httpMatches(match, http('GET', '/', { 'x-tenant': 'acme', 'x-env': 'prod' }))).toBe(
      false,
    );
    expect(httpMatches(match, http('GET', '/', { 'x-env': 'dev' }))).toBe(false);
  });

  it('path, methods and headers must all match, through evaluateIntentions', () => {
    const entry = intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [
        {
          name: 'web',
          permissions: [
            {
              action: 'allow',
              http: {
                pathPrefix: '/v2',
                methods: ['GET', 'PUT'],
                headers: [{ name: 'x-tenant', exact: 'acme' }],
              },
            },
          ],
        },
      ],
    });
    const ok = l7('PUT', '/v2/orders', { 'x-tenant': 'acme' });
    expect(evaluateIntentions([entry], ok, 'deny')).toMatchObject({
      allowed: true,
      decidedBy: { permission: 0 },
    });
    for (const request of [
      l7('POST', '/v2/orders', { 'x-tenant': 'acme' }),
      l7('PUT', '/v1/orders', { 'x-tenant': 'acme' }),
      l7('PUT', '/v2/orders', { 'x-tenant': 'other' }),
    ]) {
      expect(evaluateIntentions([entry], request, 'deny')).toMatchObject({
        allowed: false,
        decidedBy: 'default',
      });
    }
  });
});

describe('evaluateIntentions: L4 check of a source with permissions', () => {
  function withPermissions(permissions: unknown[]): IntentionEntry {
    return intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', permissions }],
    });
  }

  it.each([
    [
      'an allow permission: allowed for some requests',
      [{ action: 'allow', http: { pathPrefix: '/api' } }],
      'deny',
      true,
      { intention: 'shop/orders', source: 'shop/web', permission: 0 },
    ],
    [
      'a narrow deny before an allow: still allowed',
      [
        { action: 'deny', http: { pathPrefix: '/admin' } },
        { action: 'allow', http: { pathPrefix: '/api' } },
      ],
      'deny',
      true,
      { intention: 'shop/orders', source: 'shop/web', permission: 1 },
    ],
    [
      'a catch-all deny before an allow: denied',
      [
        { action: 'deny', http: { pathPrefix: '/' } },
        { action: 'allow', http: { pathPrefix: '/api' } },
      ],
      'allow',
      false,
      { intention: 'shop/orders', source: 'shop/web', permission: 0 },
    ],
    [
      'only deny permissions, default deny: denied',
      [{ action: 'deny', http: { pathPrefix: '/admin' } }],
      'deny',
      false,
      'default',
    ],
    [
      'only deny permissions, default allow: the rest fall through, allowed',
      [{ action: 'deny', http: { pathPrefix: '/admin' } }],
      'allow',
      true,
      'default',
    ],
  ] as const)('%s', (_, permissions, def, allowed, decidedBy) => {
    const decision = evaluateIntentions([withPermissions([...permissions])], L4, def);
    expect(decision.allowed).toBe(allowed);
    expect(decision.decidedBy).toEqual(decidedBy);
  });

  it('an L4 action source decides every request with a readable reason', () => {
    const entry = intention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: '*', action: 'deny' }],
    });
    expect(evaluateIntentions([entry], l7('GET', '/x'), 'allow')).toEqual({
      allowed: false,
      decidedBy: { intention: 'shop/orders', source: 'shop/*' },
      reason: 'intention shop/orders: source shop/* denies every request',
    });
  });
});
