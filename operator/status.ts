/** Status conditions (pure): standard Kubernetes semantics, shared by the folder and cluster sources. */
import type { Condition } from '../common/resources.js';

/** Sets `cond` (in its place), keeping lastTransitionTime when the status did not change. */
export function setCondition(
  conditions: readonly Condition[],
  cond: Omit<Condition, 'lastTransitionTime'>,
  now: number,
): Condition[] {
  const previous = conditions.find((c) => c.type === cond.type);
  const lastTransitionTime =
    previous !== undefined && previous.status === cond.status
      ? previous.lastTransitionTime
      : new Date(now).toISOString();
  const next = { ...cond, lastTransitionTime };
  // In place, so re-setting a condition never reorders the list (which would read as a change).
  return previous === undefined
    ? [...conditions, next]
    : conditions.map((c) => (c.type === cond.type ? next : c));
}

export function removeCondition(conditions: readonly Condition[], type: string): Condition[] {
  return conditions.filter((c) => c.type !== type);
}

/** MaxineService: selected pods lack the sidecar its healthCheck needs (Kubernetes mode). */
export const SIDECARS_MISSING = 'SidecarsMissing';

export function sidecarsMissingCondition(
  pods: number,
  advice: string,
  generation: number,
): Omit<Condition, 'lastTransitionTime'> {
  return {
    type: SIDECARS_MISSING,
    status: 'True',
    reason: 'NoSidecar',
    message:
      `${pods} selected ${pods === 1 ? 'pod has' : 'pods have'} no maxine-sidecar container, ` +
      `so spec.healthCheck cannot run and ${pods === 1 ? 'it stays' : 'they stay'} critical ` +
      `(health reason no-sidecar): ${advice}`,
    observedGeneration: generation,
  };
}
