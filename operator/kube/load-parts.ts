/**
 * The lazy door to operator/kube/parts.ts: imports nothing of the Kubernetes client itself, so
 * a standalone operator never loads it (docs/decisions/0027-memory-per-instance-and-sidecar-footprint.md).
 */
import type { KubeParts } from './parts.js';

let loaded: KubeParts | undefined;

/** Loads the Kubernetes-mode parts (once); await it before `createOperator` in Kubernetes mode. */
export async function loadKubeParts(): Promise<KubeParts> {
  loaded ??= (await import('./parts.js')).kubeParts;
  return loaded;
}

/** The loaded parts; throws when `loadKubeParts()` has not been awaited (a wiring bug). */
export function kubePartsLoaded(): KubeParts {
  if (loaded === undefined)
    throw new Error('Kubernetes mode: await loadKubeParts() before createOperator()');
  return loaded;
}
