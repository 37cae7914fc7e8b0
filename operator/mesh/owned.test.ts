import { describe, expect, it } from '@jest/globals';
import { API_GROUP_VERSION } from '../../common/resources.js';
import { SERVICE_LABEL, type MeshObject } from '../../common/mesh/model.js';
import { controllerOf, objectKey, ownedByMaxine, ownedObject, type ListedMeta } from './owned.js';

const meta = (ownerReferences?: ListedMeta['ownerReferences']): ListedMeta => ({
  namespace: 'shop',
  name: 'cart',
  ...(ownerReferences !== undefined && { ownerReferences }),
});
const maxine = { apiVersion: API_GROUP_VERSION, kind: 'MaxineService', uid: 'u1' };

describe('objectKey', () => {
  it.each([
    [
      'istio',
      'networking.istio.io/v1',
      'VirtualService',
      'shop',
      'cart',
      'networking.istio.io/v1/VirtualService/shop/cart',
    ],
    [
      'linkerd',
      'policy.linkerd.io/v1beta3',
      'Server',
      'ns',
      'a',
      'policy.linkerd.io/v1beta3/Server/ns/a',
    ],
  ])('%s', (_name, apiVersion, kind, namespace, name, want) => {
    expect(objectKey({ apiVersion, kind, metadata: { namespace, name } })).toBe(want);
  });
});

describe('ownership', () => {
  it.each([
    ['no owner references', meta(), undefined, false],
    ['a non-controlling MaxineService owner', meta([{ ...maxine }]), undefined, false],
    ['a controlling MaxineService', meta([{ ...maxine, controller: true }]), 'u1', true],
    [
      'a controlling owner of another kind',
      meta([{ apiVersion: 'apps/v1', kind: 'Deployment', uid: 'd1', controller: true }]),
      'd1',
      false,
    ],
    [
      'a controlling MaxineService of another API group',
      meta([{ ...maxine, apiVersion: 'example.com/v1', controller: true }]),
      'u1',
      false,
    ],
    [
      'a controller after a non-controller',
      meta([
        { apiVersion: 'v1', kind: 'ConfigMap', uid: 'c1' },
        { ...maxine, uid: 'u2', controller: true },
      ]),
      'u2',
      true,
    ],
  ])('%s', (_name, m, controllerUid, owned) => {
    expect(controllerOf(m)?.uid).toBe(controllerUid);
    expect(ownedByMaxine(m)).toBe(owned);
  });
});

describe('ownedObject', () => {
  const rendered = (service: string): MeshObject => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: {
      name: `${service}-vs`,
      namespace: 'shop',
      labels: { [SERVICE_LABEL]: service },
      annotations: { a: 'b' },
    },
    spec: { hosts: [service] },
  });
  it.each([
    ['cart', 'uid-1'],
    ['payments', 'uid-2'],
  ])('makes MaxineService %s (%s) the controlling owner, keeping the rest', (service, uid) => {
    const obj = rendered(service);
    const body = ownedObject(obj, uid);
    expect(body).toEqual({
      ...obj,
      metadata: {
        ...obj.metadata,
        ownerReferences: [
          {
            apiVersion: API_GROUP_VERSION,
            kind: 'MaxineService',
            name: service,
            uid,
            controller: true,
            blockOwnerDeletion: false,
          },
        ],
      },
    });
    expect(ownedByMaxine({ ...body.metadata })).toBe(true);
    expect(obj.metadata).not.toHaveProperty('ownerReferences');
  });
});
