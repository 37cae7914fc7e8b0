import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../../common/errors.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { registerRequestSchema } from '../../common/wire.js';
import { ANONYMOUS, serviceAccountPrincipal, userPrincipal } from './authenticator.js';
import type { Principal } from './authenticator.js';
import { PodGuard } from './instance-guard.js';

// Principals as the authenticator resolves them (TokenReview is tested end to end in e2e/).
const principals: Record<string, Principal> = {
  'web-1': serviceAccountPrincipal({
    namespace: 'shop',
    serviceAccount: 'web',
    pod: { name: 'web-1', uid: 'u1' },
  }),
  'web-old': serviceAccountPrincipal({
    namespace: 'shop',
    serviceAccount: 'web',
    pod: { name: 'web-1', uid: 'u0' },
  }),
  unbound: serviceAccountPrincipal({ namespace: 'shop', serviceAccount: 'web' }),
  'other-ns': serviceAccountPrincipal({
    namespace: 'bank',
    serviceAccount: 'web',
    pod: { name: 'web-1', uid: 'u9' },
  }),
  ghost: serviceAccountPrincipal({
    namespace: 'shop',
    serviceAccount: 'web',
    pod: { name: 'ghost', uid: 'u5' },
  }),
  alice: userPrincipal({ kind: 'User', name: 'alice', groups: [] }, { kind: 'token' }),
  anonymous: ANONYMOUS,
};
const guard = new PodGuard({
  pod: (ns, name) =>
    ns === 'shop' && name === 'web-1'
      ? { metadata: { name, namespace: ns, uid: 'u1', labels: { app: 'web' } } }
      : ns === 'bank' && name === 'web-1'
        ? { metadata: { name, namespace: ns, uid: 'u9', labels: { app: 'web' } } }
        : undefined,
  service: (ns, name) =>
    ns === 'shop' && (name === 'web' || name === 'orders')
      ? serviceSpecSchema.parse({ selector: { app: name } })
      : undefined,
  ownerOf: (id) =>
    id === 'shop.web-1.web'
      ? { namespace: 'shop', pod: 'web-1' }
      : id === 'shop.orders-1.orders'
        ? { namespace: 'shop', pod: 'orders-1' }
        : id === 'vm-1'
          ? { namespace: 'shop' }
          : undefined,
});

const body = (service: string, namespace = 'shop') =>
  registerRequestSchema.parse({ service, namespace, host: '10.0.0.1', port: 80 });

function outcome(work: () => unknown): string {
  try {
    const r = work();
    if (typeof r === 'string') return r;
    return (r as { kind?: string; id?: string } | undefined)?.id ?? 'ok';
  } catch (e) {
    if (e instanceof MaxineError) return e.code;
    throw e;
  }
}

describe('PodGuard.register', () => {
  it.each([
    ['its own pod, its own service', 'web-1', 'web', 'shop', 'shop.web-1.web'],
    [
      'a token not bound to a pod: a plain registration, left to ACLs',
      'unbound',
      'web',
      'shop',
      'ok',
    ],
    ['a JWT user: a plain registration, left to ACLs', 'alice', 'web', 'shop', 'ok'],
    ['a service that does not select its pod', 'web-1', 'orders', 'shop', 'FORBIDDEN'],
    ['another namespace', 'web-1', 'web', 'bank', 'FORBIDDEN'],
    ['an undeclared service', 'web-1', 'nope', 'shop', 'SERVICE_NOT_DECLARED'],
    ['a token of an earlier pod with the same name', 'web-old', 'web', 'shop', 'FORBIDDEN'],
    ['a pod the informer has not seen yet', 'ghost', 'web', 'shop', 'NOT_READY'],
  ])('%s', (_what, who, service, namespace, expected) => {
    expect(outcome(() => guard.register(principals[who]!, body(service, namespace)))).toBe(
      expected,
    );
  });
});

describe('PodGuard.instance', () => {
  it.each([
    ['its own instance', 'web-1', 'shop.web-1.web', 'own pod'],
    ["another pod's instance", 'web-1', 'shop.orders-1.orders', 'FORBIDDEN'],
    ['an unknown instance (the registry answers 404)', 'web-1', 'shop.gone.web', 'acl'],
    ["a pod's instance, by a user", 'alice', 'shop.web-1.web', 'FORBIDDEN'],
    ["a pod's instance, anonymously", 'anonymous', 'shop.web-1.web', 'FORBIDDEN'],
    ['an instance of no pod: left to ACLs', 'alice', 'vm-1', 'acl'],
    ['an instance of no pod, by a sidecar: left to ACLs', 'web-1', 'vm-1', 'acl'],
    ['the token of an earlier pod with the same name', 'web-old', 'shop.web-1.web', 'FORBIDDEN'],
  ])('%s', (_what, who, id, expected) => {
    expect(outcome(() => (guard.instance(principals[who]!, id) ? 'own pod' : 'acl'))).toBe(
      expected,
    );
  });
});

describe('PodGuard.reporter', () => {
  it.each([
    ["its own pod's service", 'web-1', 'web', 'shop', 'own pod'],
    ['a service that does not select its pod', 'web-1', 'orders', 'shop', 'FORBIDDEN'],
    ['a service of another namespace', 'web-1', 'web', 'bank', 'FORBIDDEN'],
    ['an undeclared service', 'web-1', 'nope', 'shop', 'FORBIDDEN'],
    ['the token of an earlier pod with the same name', 'web-old', 'web', 'shop', 'FORBIDDEN'],
    ['a pod the informer has not seen yet', 'ghost', 'web', 'shop', 'NOT_READY'],
    ['a JWT user: left to ACLs', 'alice', 'web', 'shop', 'acl'],
    ['a token not bound to a pod: left to ACLs', 'unbound', 'web', 'shop', 'acl'],
    ['anonymous: left to ACLs', 'anonymous', 'web', 'shop', 'acl'],
  ])('%s', (_what, who, name, namespace, expected) => {
    expect(
      outcome(() => (guard.reporter(principals[who]!, { namespace, name }) ? 'own pod' : 'acl')),
    ).toBe(expected);
  });
});
