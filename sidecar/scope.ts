/**
 * Which services the sidecar's local copy holds (pure): with `namespace` scope, the pod's
 * namespace and every service its own MaxineService lists in `dependencies` elsewhere;
 * with `cluster` scope, everything its token may read (undefined: no filter).
 */
import type { ServiceSpec } from '../common/resources.js';

export function discoveryScope(
  scope: 'cluster' | 'namespace',
  namespace: string,
  ownSpec: Pick<ServiceSpec, 'dependencies'> | undefined,
): string[] | undefined {
  if (scope === 'cluster') return undefined;
  const refs = (ownSpec?.dependencies ?? [])
    .map((d) => `${d.namespace ?? namespace}/${d.name}`)
    .filter((r) => !r.startsWith(`${namespace}/`));
  return [`${namespace}/*`, ...new Set(refs)].sort();
}
