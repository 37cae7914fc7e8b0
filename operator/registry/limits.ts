/**
 * How much the registry holds at most, and the refusals when a registration would go past it.
 * Pure: the registry asks before it changes anything, so a refused registration leaves no
 * trace. Count limits answer 429 LIMIT_EXCEEDED, size limits 413; details name the limit,
 * the flag that sets it, its value and the current count.
 */
import { MaxineError } from '../../common/errors.js';

export interface RegistryLimits {
  /** Instances in the registry, registrations and pods together. */
  instances: number;
  instancesPerService: number;
  /** Registered instances per principal (pod instances belong to no principal). */
  instancesPerPrincipal: number;
  /** Services that exist only because a registration created them (`declared: false`). */
  undeclaredServices: number;
  undeclaredServicesPerPrincipal: number;
  /** Serialized size of an instance's metadata (JSON, UTF-8 bytes). */
  metadataBytes: number;
  metadataKeys: number;
  /** Entries of an instance's `ports`. */
  ports: number;
}

export type LimitName = keyof RegistryLimits;

/**
 * Enough for a large real deployment, small enough that one client cannot fill the heap: at
 * the defaults 200k instances with 4 KiB metadata stay under ~1.5 GB even in the worst case.
 */
export const DEFAULT_LIMITS: RegistryLimits = {
  instances: 200_000,
  instancesPerService: 10_000,
  instancesPerPrincipal: 10_000,
  undeclaredServices: 10_000,
  undeclaredServicesPerPrincipal: 1_000,
  metadataBytes: 4096,
  metadataKeys: 64,
  ports: 16,
};

/** The operator flag of each limit, named in refusals so the operator knows what to raise. */
export const LIMIT_FLAGS: Record<LimitName, string> = {
  instances: '--max-instances',
  instancesPerService: '--max-instances-per-service',
  instancesPerPrincipal: '--max-instances-per-principal',
  undeclaredServices: '--max-undeclared-services',
  undeclaredServicesPerPrincipal: '--max-undeclared-services-per-principal',
  metadataBytes: '--max-metadata-bytes',
  metadataKeys: '--max-metadata-keys',
  ports: '--max-ports',
};

export const LIMIT_NAMES = Object.keys(LIMIT_FLAGS) as LimitName[];

/** Why a count refusal has no Retry-After: waiting does not lower a count. */
const NO_RETRY =
  'no Retry-After: the count falls only when instances are deregistered or expire (or services lose their last instance), not with time';

export interface CountCheck {
  limit: Exclude<LimitName, 'metadataBytes' | 'metadataKeys' | 'ports'>;
  current: number;
  /** Whose count it is, for the message: `service shop/web`, `User alice`, `the registry`. */
  of: string;
}

/** The 429 for a count at its limit, or undefined while there is room for one more. */
export function countRefusal(limits: RegistryLimits, check: CountCheck): MaxineError | undefined {
  const max = limits[check.limit];
  if (check.current < max) return undefined;
  const what = check.limit.startsWith('instances') ? 'instances' : 'undeclared services';
  return new MaxineError(
    'LIMIT_EXCEEDED',
    `${check.of} already has ${check.current} ${what}, the most ${LIMIT_FLAGS[check.limit]} allows (${max}); deregister some or ask the operator to raise the limit`,
    {
      limit: check.limit,
      flag: LIMIT_FLAGS[check.limit],
      max,
      current: check.current,
      retry: NO_RETRY,
    },
  );
}

/** The 413 for metadata or ports above their size limits, or undefined when they fit. */
export function sizeRefusal(
  limits: RegistryLimits,
  instance: { metadata?: Record<string, string> | undefined; ports?: Record<string, number> },
): MaxineError | undefined {
  const ports = instance.ports === undefined ? 0 : Object.keys(instance.ports).length;
  if (ports > limits.ports) return tooLarge('TOO_MANY_PORTS', 'ports', ports, limits);
  const metadata = instance.metadata;
  if (metadata === undefined) return undefined;
  const keys = Object.keys(metadata).length;
  if (keys > limits.metadataKeys)
    return tooLarge('METADATA_TOO_LARGE', 'metadataKeys', keys, limits);
  // As the API and the event stream send it: the JSON of the map, in UTF-8.
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > limits.metadataBytes)
    return tooLarge('METADATA_TOO_LARGE', 'metadataBytes', bytes, limits);
  return undefined;
}

function tooLarge(
  code: 'METADATA_TOO_LARGE' | 'TOO_MANY_PORTS',
  limit: 'metadataBytes' | 'metadataKeys' | 'ports',
  actual: number,
  limits: RegistryLimits,
): MaxineError {
  const unit = {
    metadataBytes: 'bytes of metadata',
    metadataKeys: 'metadata keys',
    ports: 'ports',
  };
  return new MaxineError(
    code,
    `The instance has ${actual} ${unit[limit]}; ${LIMIT_FLAGS[limit]} allows ${limits[limit]}`,
    { limit, flag: LIMIT_FLAGS[limit], max: limits[limit], actual },
  );
}
