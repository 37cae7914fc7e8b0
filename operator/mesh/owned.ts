/**
 * Ownership of the mesh objects Maxine writes: the body applied (the rendered object with its
 * MaxineService as controlling owner), the key that identifies an object across passes, and
 * whether a listed object is ours to prune. Pure.
 */
import { API_GROUP_VERSION } from '../../common/resources.js';
import { SERVICE_LABEL, type MeshObject } from '../../common/mesh/model.js';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  uid: string;
  controller?: boolean;
}

export interface ListedMeta {
  namespace: string;
  name: string;
  labels?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

/** `apiVersion/kind/namespace/name`: one object, across passes. */
export const objectKey = (o: {
  apiVersion: string;
  kind: string;
  metadata: { namespace: string; name: string };
}): string => `${o.apiVersion}/${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;

/** The controlling owner reference, if any. */
export function controllerOf(
  meta: Pick<ListedMeta, 'ownerReferences'>,
): OwnerReference | undefined {
  return meta.ownerReferences?.find((r) => r.controller === true);
}

/** Whether the object is controlled by a MaxineService (our labels alone do not make it ours). */
export function ownedByMaxine(meta: ListedMeta): boolean {
  const owner = controllerOf(meta);
  return owner?.apiVersion === API_GROUP_VERSION && owner.kind === 'MaxineService';
}

/**
 * The body to apply: `obj` controlled by the MaxineService named by its service label, with
 * `uid`, so the garbage collector deletes it with the service (without blocking the delete).
 */
export function ownedObject(obj: MeshObject, uid: string) {
  return {
    ...obj,
    metadata: {
      ...obj.metadata,
      ownerReferences: [
        {
          apiVersion: API_GROUP_VERSION,
          kind: 'MaxineService',
          name: obj.metadata.labels[SERVICE_LABEL]!,
          uid,
          controller: true,
          blockOwnerDeletion: false,
        },
      ],
    },
  };
}
