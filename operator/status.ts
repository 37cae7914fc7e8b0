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
