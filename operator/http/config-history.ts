/**
 * The answer of `GET /api/v1/services/{ns}/{name}/config/history` (common/config-history.ts):
 * the versions the registry keeps (operator/registry/config-history.ts), newest first. Values of
 * keys that came from a Secret are not kept, so they cannot be answered.
 */
import type { ConfigHistoryResponse } from '../../common/config-history.js';
import type { Registry } from '../registry/registry.js';

/** Undefined when the service is neither in the registry nor has a kept config history. */
export function configHistoryOf(
  registry: Pick<Registry, 'configs' | 'counts'>,
  namespace: string,
  name: string,
): ConfigHistoryResponse | undefined {
  const record = registry.configs.record(namespace, name);
  if (record === undefined && registry.counts(namespace, name) === undefined) return undefined;
  return {
    service: { namespace, name },
    version: record?.version ?? 0,
    hash: record?.hash ?? null,
    limit: registry.configs.opts.limit,
    entries: [...(record?.entries ?? [])].reverse(),
  };
}
