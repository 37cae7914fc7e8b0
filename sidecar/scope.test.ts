import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../common/errors.js';
import type { IntentionEntry } from '../common/policy/intentions.js';
import { intentionSpecSchema } from '../common/resources.js';
import { discoveryScope, MAX_SCOPE_PATTERNS, outsideScope } from './scope.js';

describe('discoveryScope', () => {
  it.each([
    {
      name: 'cluster scope filters nothing',
      scope: 'cluster',
      deps: [{ name: 'x', namespace: 'b' }],
      want: undefined,
    },
    {
      name: 'no spec yet: the own namespace',
      scope: 'namespace',
      deps: undefined,
      want: ['shop/*'],
    },
    {
      name: 'dependencies in the own namespace add nothing',
      scope: 'namespace',
      deps: [{ name: 'orders' }, { name: 'cart', namespace: 'shop' }],
      want: ['shop/*'],
    },
    {
      name: 'dependencies elsewhere are added once, sorted',
      scope: 'namespace',
      deps: [
        { name: 'ledger', namespace: 'pay' },
        { name: 'auth', namespace: 'iam' },
        { name: 'ledger', namespace: 'pay' },
      ],
      want: ['iam/auth', 'pay/ledger', 'shop/*'],
    },
    {
      name: 'a namespace that merely starts with the own name is another namespace',
      scope: 'namespace',
      deps: [{ name: 'x', namespace: 'shopping' }],
      want: ['shop/*', 'shopping/x'],
    },
  ] as const)('$name', ({ scope, deps, want }) => {
    const spec = deps === undefined ? undefined : { dependencies: [...deps] };
    expect(discoveryScope(scope, 'shop', spec)).toEqual(want);
  });
});

const intention = (
  namespace: string,
  destination: { name: string; namespace?: string },
  sources: Record<string, unknown>[],
): IntentionEntry => ({
  namespace,
  name: `i-${namespace}-${destination.name}`.replace('*', 'any'),
  spec: intentionSpecSchema.parse({ destination, sources }),
});

describe('discoveryScope: pod', () => {
  it.each([
    {
      name: 'no spec, no intention: the own service only',
      deps: undefined,
      intentions: [],
      want: ['shop/web'],
    },
    {
      name: 'dependencies anywhere, own namespace included, once each',
      deps: [{ name: 'orders' }, { name: 'ledger', namespace: 'pay' }, { name: 'orders' }],
      intentions: [],
      want: ['pay/ledger', 'shop/orders', 'shop/web'],
    },
    {
      name: 'an intention allowing the pod adds its destination',
      deps: [],
      intentions: [
        intention('pay', { name: 'ledger' }, [{ name: 'web', namespace: 'shop', action: 'allow' }]),
      ],
      want: ['pay/ledger', 'shop/web'],
    },
    {
      name: 'a source without namespace means the intention’s own namespace',
      deps: [],
      intentions: [
        intention('shop', { name: 'cart' }, [{ name: 'web', action: 'allow' }]),
        intention('pay', { name: 'ledger' }, [{ name: 'web', action: 'allow' }]),
      ],
      want: ['shop/cart', 'shop/web'],
    },
    {
      name: 'a denying intention adds nothing',
      deps: [],
      intentions: [
        intention('pay', { name: 'ledger' }, [{ name: 'web', namespace: 'shop', action: 'deny' }]),
      ],
      want: ['shop/web'],
    },
    {
      name: 'an intention allowing another service adds nothing',
      deps: [],
      intentions: [
        intention('pay', { name: 'ledger' }, [
          { name: 'admin', namespace: 'shop', action: 'allow' },
        ]),
      ],
      want: ['shop/web'],
    },
    {
      name: 'wildcard sources match the pod; a namespace-wide destination stays a pattern',
      deps: [],
      intentions: [
        intention('pay', { name: '*' }, [{ name: '*', namespace: 'shop', action: 'allow' }]),
        intention('iam', { name: 'auth' }, [{ name: '*', namespace: '*', action: 'allow' }]),
      ],
      want: ['iam/auth', 'pay/*', 'shop/web'],
    },
    {
      name: 'permissions with an allow add the destination; deny-only permissions do not',
      deps: [],
      intentions: [
        intention('pay', { name: 'ledger' }, [
          {
            name: 'web',
            namespace: 'shop',
            permissions: [{ action: 'allow', http: { pathPrefix: '/read' } }],
          },
        ]),
        intention('pay', { name: 'vault' }, [
          {
            name: 'web',
            namespace: 'shop',
            permissions: [{ action: 'deny', http: { pathPrefix: '/' } }],
          },
        ]),
      ],
      want: ['pay/ledger', 'shop/web'],
    },
  ])('$name', ({ deps, intentions, want }) => {
    const spec = deps === undefined ? undefined : { dependencies: [...deps] };
    expect(discoveryScope('pod', 'shop', spec, { service: 'web', intentions })).toEqual(want);
  });

  it('widens a list too long for one request to namespaces, then to everything', () => {
    const many = (n: number, namespaces: number) =>
      Array.from({ length: n }, (_, i) => ({ name: `s${i}`, namespace: `n${i % namespaces}` }));
    const few = discoveryScope(
      'pod',
      'shop',
      { dependencies: many(20, 3) },
      { service: 'web', intentions: [] },
    );
    expect(few).toHaveLength(21);
    const wide = discoveryScope(
      'pod',
      'shop',
      { dependencies: many(MAX_SCOPE_PATTERNS + 5, 40) },
      {
        service: 'web',
        intentions: [],
      },
    );
    expect(wide).toHaveLength(41);
    expect(wide?.every((p) => p.endsWith('/*'))).toBe(true);
    const all = discoveryScope(
      'pod',
      'shop',
      { dependencies: many(MAX_SCOPE_PATTERNS + 5, MAX_SCOPE_PATTERNS + 5) },
      {
        service: 'web',
        intentions: [],
      },
    );
    expect(all).toBeUndefined();
  });
});

describe('outsideScope', () => {
  const notFound = new MaxineError('SERVICE_NOT_FOUND', 'Service pay/ledger is not registered');
  const unknownHost = new MaxineError('UNKNOWN_PROXY_HOST', 'Host "ledger.pay" is not…', {
    host: 'ledger.pay',
  });
  it.each([
    {
      name: 'pod scope, outside',
      kind: 'pod',
      scope: ['shop/web'],
      fallback: notFound,
      want: 'OUTSIDE_DISCOVERY_SCOPE',
      status: 404,
    },
    {
      name: 'pod scope, inside: simply unknown',
      kind: 'pod',
      scope: ['pay/ledger'],
      fallback: notFound,
      want: undefined,
      status: 0,
    },
    {
      name: 'pod scope, forward listener keeps its code',
      kind: 'pod',
      scope: ['shop/web'],
      fallback: unknownHost,
      want: 'UNKNOWN_PROXY_HOST',
      status: 502,
    },
    {
      name: 'namespace scope keeps its code',
      kind: 'namespace',
      scope: ['shop/*'],
      fallback: notFound,
      want: 'SERVICE_NOT_FOUND',
      status: 404,
    },
    {
      name: 'cluster scope: never outside',
      kind: 'cluster',
      scope: undefined,
      fallback: notFound,
      want: undefined,
      status: 0,
    },
  ] as const)('$name', ({ kind, scope, fallback, want, status }) => {
    const got = outsideScope(kind, scope, { namespace: 'pay', name: 'ledger' }, fallback);
    expect(got?.code).toBe(want);
    if (got === undefined) return;
    expect(got.status).toBe(status);
    expect(got.message).toContain("pay/ledger is outside this pod's discovery scope");
    expect(got.message).toContain('maxine.io/discovery-scope');
    expect(got.message).toContain('spec.dependencies');
    expect(got.details).toMatchObject({ service: 'pay/ledger', scope: kind });
  });
});
