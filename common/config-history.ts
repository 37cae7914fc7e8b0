/**
 * A service's config history as the operator answers it
 * (`GET /api/v1/services/{ns}/{name}/config/history`) and keeps it in its store: the last
 * versions, each with its hash, time, changed keys and the values of its keys. A key whose
 * value came from a Secret is listed in `redacted` and has no value here, ever.
 */
import { z } from 'zod';

const configChangesSchema = z.strictObject({
  added: z.array(z.string()).describe('Keys the version added.'),
  changed: z.array(z.string()).describe('Keys whose value the version changed.'),
  removed: z.array(z.string()).describe('Keys the version removed.'),
});

export const configHistoryEntrySchema = z.strictObject({
  version: z.int().min(1).describe('The config version (config_changed.data.version).'),
  /** The content hash (the sidecar's ETag); null when this version deleted the config. */
  hash: z.string().nullable().describe('Content hash of the config; null when it was deleted.'),
  time: z.string().describe('When the operator made this version (RFC 3339).'),
  changes: configChangesSchema,
  values: z
    .record(z.string(), z.string())
    .describe('The value of each key that is not redacted, as this version had it.'),
  redacted: z
    .array(z.string())
    .describe('Keys of this version whose value came from a Secret: never shown.'),
});
export type ConfigHistoryEntry = z.infer<typeof configHistoryEntrySchema>;

/** What a store keeps of one service: its current version and hash, and its last versions. */
export const serviceConfigRecordSchema = z.strictObject({
  namespace: z.string().min(1).max(253),
  name: z.string().min(1).max(253),
  version: z.int().min(0),
  hash: z.string().nullable(),
  /** Oldest first. */
  entries: z.array(configHistoryEntrySchema).max(10_000),
});
export type ServiceConfigRecord = z.infer<typeof serviceConfigRecordSchema>;

/** The answer of `GET /api/v1/services/{ns}/{name}/config/history`: newest first. */
export const configHistoryResponseSchema = z.strictObject({
  service: z.strictObject({ namespace: z.string(), name: z.string() }),
  version: z.int().min(0).describe('The version in force (0: never had a config).'),
  hash: z.string().nullable().describe('Its content hash; null when there is no config now.'),
  /** How many versions are kept per service (`--config-history`). */
  limit: z.int().min(1),
  entries: z.array(configHistoryEntrySchema).describe('The last versions, newest first.'),
});
export type ConfigHistoryResponse = z.infer<typeof configHistoryResponseSchema>;
