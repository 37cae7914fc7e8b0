/**
 * A pod's override of its service's health check, as JSON in an annotation. It is validated by
 * the same schema as `spec.healthCheck`, so the defaults and rules cannot drift apart; the
 * admission webhook calls this too, hence no I/O.
 */
import { healthCheckSchema } from '../../common/resources.js';
import { formatPath } from '../../common/errors.js';
import { ANNOTATION_HEALTH_CHECK } from '../../common/injection.js';
import type { HealthCheck } from './checks.js';

export const HEALTH_CHECK_ANNOTATION = ANNOTATION_HEALTH_CHECK;

export type HealthCheckOverride =
  { ok: true; spec: HealthCheck | undefined } | { ok: false; message: string };

/**
 * An absent annotation is no override. The message names the field and the problem
 * (`timeoutSeconds: ...`), one clause per issue; the caller names the annotation
 * (`maxine.io/health-check: ${message}`).
 */
export function parseHealthCheckOverride(value: string | undefined): HealthCheckOverride {
  if (value === undefined) return { ok: true, spec: undefined };
  if (value.trim() === '') return { ok: false, message: 'empty; expected a JSON object' };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (err) {
    return { ok: false, message: `not valid JSON (${(err as Error).message})` };
  }
  const parsed = healthCheckSchema.safeParse(json);
  if (parsed.success) return { ok: true, spec: parsed.data };
  const issues = parsed.error.issues.map((i) => {
    const path = formatPath(i.path);
    return path === '' ? i.message : `${path}: ${i.message}`;
  });
  return { ok: false, message: issues.join('; ') };
}
