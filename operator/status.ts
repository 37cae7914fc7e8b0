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

/** MaxineService: selected pods have no port, so they are no instances (Kubernetes mode). */
export const PORTS_MISSING = 'PortsMissing';

export function portsMissingCondition(
  pods: number,
  advice: string,
  generation: number,
): Omit<Condition, 'lastTransitionTime'> {
  return {
    type: PORTS_MISSING,
    status: 'True',
    reason: 'NoPort',
    message: `${pods} selected ${pods === 1 ? 'pod has' : 'pods have'} no port to route to: ${advice}`,
    observedGeneration: generation,
  };
}

/**
 * The API server refused a status write for good (400, 403, 422: retrying would fail the same
 * way). Said on the object as a condition beside the stored ones, since the rest of the status
 * is now out of date; the next successful write replaces the list and drops it.
 */
export const STATUS_WRITE_FAILED = 'StatusWriteFailed';

/** The CRD's bound on `status.conditions`. */
const MAX_CONDITIONS = 16;

export function statusWriteFailedConditions(
  stored: readonly Condition[],
  problem: string,
  generation: number,
  now: number,
): Condition[] {
  const cond = {
    type: STATUS_WRITE_FAILED,
    status: 'True' as const,
    reason: 'WriteRefused',
    message:
      `The API server refused the status write, so this status is out of date; ` +
      `tried again when the object changes or is resynced: ${problem}`,
    observedGeneration: generation,
  };
  return setCondition(stored, cond, now).slice(-MAX_CONDITIONS);
}
