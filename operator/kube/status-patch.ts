import type { ResourceStatus } from '../../common/resources.js';
import { setCondition } from '../status.js';

/**
 * The status of an object whose spec is invalid. Ready stays as it is while an earlier valid
 * version (`inForce`) is in force; without one Ready is False. Invalid is always True.
 */
export function invalidStatus(
  inForce: ResourceStatus | undefined,
  generation: number,
  message: string,
  now: number,
): ResourceStatus {
  let conditions = inForce?.conditions ?? [];
  if (inForce === undefined) {
    conditions = setCondition(
      conditions,
      {
        type: 'Ready',
        status: 'False',
        reason: 'Invalid',
        message: 'Not applied: the spec is invalid',
        observedGeneration: generation,
      },
      now,
    );
  }
  conditions = setCondition(
    conditions,
    {
      type: 'Invalid',
      status: 'True',
      reason: 'SpecInvalid',
      message,
      observedGeneration: generation,
    },
    now,
  );
  return { ...inForce, observedGeneration: generation, conditions };
}

/**
 * `desired` as a JSON merge patch over `current`: a key `current` has and `desired` lacks is
 * sent as null, which deletes it (a merge patch leaves absent keys alone). Arrays are replaced.
 */
export function withDeletions(current: unknown, desired: unknown): unknown {
  if (!isPlainObject(desired)) return desired;
  const out: Record<string, unknown> = {};
  const before = isPlainObject(current) ? current : {};
  for (const key of Object.keys(before)) if (!(key in desired)) out[key] = null;
  for (const [key, value] of Object.entries(desired)) out[key] = withDeletions(before[key], value);
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** JSON with sorted keys, so statuses compare equal whatever order the API server keeps. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

/** Transition times are derived: a status that differs only in them needs no write. */
export function withoutTimes(status: unknown): unknown {
  if (status === null || typeof status !== 'object') return status;
  const s = status as { conditions?: { lastTransitionTime?: string }[] };
  return { ...s, conditions: s.conditions?.map(({ lastTransitionTime: _t, ...rest }) => rest) };
}

/** Whether writing `desired` over `current` would change more than transition times. */
export function statusDiffers(current: unknown, desired: unknown): boolean {
  return stableJson(withoutTimes(current)) !== stableJson(withoutTimes(desired));
}
