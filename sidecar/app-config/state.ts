/**
 * The pod's own service's config as the application sees it: the map, its content hash (the
 * `ETag`) and a version that only moves forward. The version is the operator's
 * (`config_changed.data.version`) whenever that is ahead; a content change the operator
 * numbers lower (it restarted and counts again) still moves this sidecar's version on by one,
 * so a client comparing versions never goes back. Long-polls wait here, bounded.
 */
import { configChanges, configHash } from '../../common/config-version.js';
import type { ConfigChanges, ConfigMap } from '../../common/config-version.js';

export interface ConfigSnapshot {
  readonly service: { namespace: string; name: string };
  readonly config: ConfigMap;
  readonly version: number;
  readonly hash: string;
}

export interface ConfigUpdate {
  readonly current: ConfigSnapshot;
  readonly changes: ConfigChanges;
}

type Waiter = (snapshot: ConfigSnapshot | undefined) => void;

export class WaitersFull extends Error {}

export class AppConfigState {
  private snapshot: ConfigSnapshot;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners: ((update: ConfigUpdate) => void)[] = [];

  constructor(
    service: { namespace: string; name: string },
    private readonly maxWaiters: number,
    private readonly onWaiters: (count: number) => void = () => {},
  ) {
    this.snapshot = { service, config: {}, version: 0, hash: configHash({}) };
  }

  get current(): ConfigSnapshot {
    return this.snapshot;
  }

  get waiting(): number {
    return this.waiters.size;
  }

  /** Called on every change (after waiters are woken); a listener must not throw. */
  onChange(listener: (update: ConfigUpdate) => void): void {
    this.listeners.push(listener);
  }

  /**
   * The copy's config of the service now, and the operator's version of it if known. Returns
   * the update when the content changed; an unchanged content keeps the version.
   */
  update(
    config: ConfigMap | undefined,
    operatorVersion: number | undefined,
  ): ConfigUpdate | undefined {
    const next = config ?? {};
    const hash = configHash(next);
    const before = this.snapshot;
    if (hash === before.hash) return undefined;
    const version = Math.max(before.version + 1, operatorVersion ?? 0);
    this.snapshot = { service: before.service, config: { ...next }, version, hash };
    const update = { current: this.snapshot, changes: configChanges(before.config, next) };
    for (const wake of [...this.waiters]) wake(this.snapshot);
    for (const listener of this.listeners) listener(update);
    return update;
  }

  /**
   * Resolves with the config once its version is not `version` (at once if it already is not),
   * or undefined after `ms`. Throws WaitersFull past the bound. `cancel` ends the wait early
   * (the client went away) with undefined.
   */
  wait(version: number, ms: number, cancel: AbortSignal): Promise<ConfigSnapshot | undefined> {
    if (this.snapshot.version !== version) return Promise.resolve(this.snapshot);
    if (this.waiters.size >= this.maxWaiters) throw new WaitersFull();
    return new Promise((resolve) => {
      const done: Waiter = (snapshot) => {
        if (!this.waiters.delete(done)) return;
        clearTimeout(timer);
        cancel.removeEventListener('abort', onAbort);
        this.onWaiters(this.waiters.size);
        resolve(snapshot);
      };
      const onAbort = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), ms);
      timer.unref();
      cancel.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(done);
      this.onWaiters(this.waiters.size);
      if (cancel.aborted) done(undefined);
    });
  }

  /** Ends every wait (shutdown): each answers as timed out. */
  release(): void {
    for (const wake of [...this.waiters]) wake(undefined);
  }
}
