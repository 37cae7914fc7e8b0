/**
 * Where a standalone operator's registrations outlive the process (`--store`). The registry
 * stays the one model: a store reads back what it kept before the server listens
 * (`load`, then Registry.restore), then follows the registry's change events and asks the
 * registry for the current state of each instance they name (`attach`). Declared resources
 * are not stored: they come from the folder.
 */
import type { EventLog } from '../events/log.js';
import type { ServiceConfigRecord } from '../../common/config-history.js';
import type { ConfigHistory } from '../registry/config-history.js';
import type { KeptEvents } from './event-file.js';
import type { PersistedInstance, Registry } from '../registry/registry.js';

/** What a store gives back on start. */
export interface StoredState {
  instances: PersistedInstance[];
  /** The event sequence the previous process had reached (0 when nothing was kept). */
  seq: number;
  /** The previous process's event log, when the store keeps it (`since=` survives a restart). */
  events?: KeptEvents;
  /** Config versions and history, when the store keeps them (registry/config-history.ts). */
  configs?: ServiceConfigRecord[];
}

export interface RegistryStore {
  readonly kind: 'memory' | 'file' | 'redis';
  /** Reads what was kept. Throws StoreCorruptError (codec.ts) when it cannot be trusted. */
  load(): Promise<StoredState>;
  /** From now on, keeps the registry's changes. */
  attach(registry: Pick<Registry, 'persisted' | 'persistedAll'>, events: EventLog): void;
  /** From now on, keeps the config versions and history (stores that can). */
  keepConfigs?(history: ConfigHistory): void;
  /** Drops what is kept of these instances (stored registrations the registry refused). */
  forget(ids: readonly string[]): void;
  /**
   * Resolves once every change made so far is as durable as the fsync policy promises;
   * rejects (STORE_UNAVAILABLE) when it cannot be written. Undefined: nothing to wait for.
   */
  readonly committed: (() => Promise<void>) | undefined;
  /** Whether the store can write now (readiness is false while it cannot). */
  available(): boolean;
  /** Writes what is pending and closes. */
  close(): Promise<void>;
}

/** The default: the registry lives in this process's memory only. */
export class MemoryStore implements RegistryStore {
  readonly kind = 'memory';
  readonly committed = undefined;
  load(): Promise<StoredState> {
    return Promise.resolve({ instances: [], seq: 0 });
  }
  attach(): void {}
  forget(): void {}
  available(): boolean {
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The store could not be reached when the operator started: where, and why. */
export class StoreUnreachableError extends Error {
  constructor(
    readonly store: string,
    readonly why: string,
  ) {
    super(`the store at ${store} cannot be reached: ${why}`);
    this.name = 'StoreUnreachableError';
  }
}
