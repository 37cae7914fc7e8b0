import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import { serviceSpecSchema } from '../../common/resources.js';
import { registerRequestSchema } from '../../common/wire.js';
import { SidecarTokenGuard } from './instance-guard.js';
import type { PodIdentity } from './tokenreview.js';

// The reviewer stands in for the API server's TokenReview (tested end to end in e2e/).
const identities: Record<string, PodIdentity> = {
  'web-1': { namespace: 'shop', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u1' } },
  'web-old': { namespace: 'shop', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u0' } },
  unbound: { namespace: 'shop', serviceAccount: 'web' },
  'other-ns': { namespace: 'bank', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u9' } },
  ghost: { namespace: 'shop', serviceAccount: 'web', pod: { name: 'ghost', uid: 'u5' } },
};
const guard = new SidecarTokenGuard({
  reviewer: {
    review: (token) =>
      identities[token] !== undefined
        ? Promise.resolve(identities[token])
        : Promise.reject(new MaxineError('UNAUTHENTICATED', 'The token was not accepted')),
  },
  directory: {
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
          : undefined,
  },
});

const req = (token?: string) =>
  ({ headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }) as IncomingMessage;
const body = (service: string, namespace = 'shop') =>
  registerRequestSchema.parse({ service, namespace, host: '10.0.0.1', port: 80 });

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const r = await p;
    return (r as { kind?: string; id?: string } | undefined)?.id ?? 'ok';
  } catch (e) {
    if (e instanceof MaxineError) return e.code;
    throw e;
  }
}

describe('SidecarTokenGuard.register', () => {
  it.each([
    ['its own pod, its own service', 'web-1', 'web', 'shop', 'shop.web-1.web'],
    ['no token', undefined, 'web', 'shop', 'UNAUTHENTICATED'],
    ['a token the API server refuses', 'forged', 'web', 'shop', 'UNAUTHENTICATED'],
    ['a token not bound to a pod', 'unbound', 'web', 'shop', 'FORBIDDEN'],
    ['a service that does not select its pod', 'web-1', 'orders', 'shop', 'FORBIDDEN'],
    ['another namespace', 'web-1', 'web', 'bank', 'FORBIDDEN'],
    ['an undeclared service', 'web-1', 'nope', 'shop', 'SERVICE_NOT_DECLARED'],
    ['a token of an earlier pod with the same name', 'web-old', 'web', 'shop', 'FORBIDDEN'],
    ['a pod the informer has not seen yet', 'ghost', 'web', 'shop', 'NOT_READY'],
  ])('%s', async (_what, token, service, namespace, expected) => {
    expect(await outcome(guard.register(req(token), body(service, namespace)))).toBe(expected);
  });
});

describe('SidecarTokenGuard.instance', () => {
  it.each([
    ['its own instance', 'web-1', 'shop.web-1.web', 'ok'],
    ["another pod's instance", 'web-1', 'shop.orders-1.orders', 'FORBIDDEN'],
    ['an unknown instance (the registry answers 404)', 'web-1', 'shop.gone.web', 'ok'],
    ['no token', undefined, 'shop.web-1.web', 'UNAUTHENTICATED'],
    ['the token of an earlier pod with the same name', 'web-old', 'shop.web-1.web', 'FORBIDDEN'],
  ])('%s', async (_what, token, id, expected) => {
    expect(await outcome(guard.instance(req(token), id))).toBe(expected);
  });
});
