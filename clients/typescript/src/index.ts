/**
 * @maxine/client: register with automatic heartbeats, discover from a local cache fed by the
 * event stream, and typed events, for the Maxine service registry. The wire shapes are the
 * registry's own zod schemas (common/wire.ts, compiled into this package), re-exported here.
 */
export { MaxineClient, queryOf as discoverQueryOf } from './client.js';
export type {
  CacheOptions,
  ClientEvents,
  DiscoverOptions,
  MaxineClientOptions,
  ServiceName,
} from './client.js';
export { Registration } from './registration.js';
export type { RegistrationEvents, RegistrationOptions } from './registration.js';
export { EventStream } from './stream.js';
export type { EventQuery, EventStreamOptions, StreamEvents } from './stream.js';
export { ServiceCache } from './cache.js';
export type { CacheLimits, CacheState } from './cache.js';
export { backoffDelayMs, heartbeatIntervalMs } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { tokenFromFile } from './token-file.js';
export { ClientError, RegistryClient } from '../../../common/client.js';
export type { ClientErrorCode, ClientOptions, TokenSource } from '../../../common/client.js';
export { ERROR_CATALOG } from '../../../common/errors.js';
export type { ErrorCode } from '../../../common/errors.js';
export {
  EVENT_TYPES,
  HEALTH_STATUSES,
  heartbeatRequestSchema,
  instanceSchema,
  maxineEventSchema,
  registerRequestSchema,
  registryEventSchema,
} from '../../../common/wire.js';
export type {
  DiscoveredInstance,
  EventType,
  HealthStatus,
  HeartbeatRequest,
  Instance,
  MaxineEvent,
  RegisterInput,
  RegistryEvent,
  ResyncMessage,
  ServiceRef,
  ServiceSummary,
  SnapshotService,
} from '../../../common/wire.js';
