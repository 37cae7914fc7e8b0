/**
 * One registered instance kept alive: heartbeats at a third of the lease the operator granted,
 * registration again when a heartbeat answers 404 INSTANCE_NOT_FOUND (the lease lapsed and the
 * instance was removed, an admin deregistered it, or the operator restarted without a store),
 * back-off with jitter after any other failure (the operator's `Retry-After` as a floor), and
 * deregistration on close().
 */
import { ClientError } from '../../../common/client.js';
import type { RegistryClient } from '../../../common/client.js';
import type { HeartbeatRequest, Instance, RegisterInput } from '../../../common/wire.js';
import { backoffDelayMs, heartbeatIntervalMs } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import { TypedEmitter } from './emitter.js';

export interface RegistrationOptions {
  /**
   * What each heartbeat reports (health status and output, active connections); asked before
   * each heartbeat. A function that throws sends a bare heartbeat and emits `error`.
   */
  report?: () => HeartbeatRequest | Promise<HeartbeatRequest>;
  /** Heartbeat this often instead of a third of the granted TTL. */
  intervalMs?: number;
  backoff?: BackoffOptions;
  /** For tests: the random source of the back-off's jitter. */
  random?: () => number;
}

export interface RegistrationEvents {
  /** A heartbeat renewed the lease. */
  heartbeat: [Instance];
  /** Registered again after a 404 heartbeat (the instance was gone). */
  reregistered: [Instance];
  /** A heartbeat or re-registration failed; the loop retries with back-off. */
  error: [ClientError];
  /** The loop stopped (close()). */
  close: [];
}

export class Registration extends TypedEmitter<RegistrationEvents> {
  private current: Instance;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Lets a beat stop waiting for a report() that never settles once close() is called. */
  private abandonReport: (() => void) | undefined;

  constructor(
    private readonly client: RegistryClient,
    private readonly input: RegisterInput,
    first: Instance,
    private readonly opts: RegistrationOptions = {},
  ) {
    super();
    this.current = first;
    this.schedule(this.intervalMs());
  }

  /** The instance as the operator last answered it. */
  get instance(): Instance {
    return this.current;
  }

  get id(): string {
    return this.current.id;
  }

  /** Stops heartbeating and deregisters (an instance already gone is fine); every call waits. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.abandonReport?.();
    await this.inFlight;
    try {
      await this.client.deregister(this.current.id);
    } catch (err) {
      if (!(err instanceof ClientError && err.code === 'INSTANCE_NOT_FOUND')) throw err;
    } finally {
      this.emit('close');
    }
  }

  private intervalMs(): number {
    return this.opts.intervalMs ?? heartbeatIntervalMs(this.current.lease?.ttlSeconds ?? 30);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.inFlight = this.beat().finally(() => (this.inFlight = undefined));
    }, ms);
  }

  /** One heartbeat (or re-registration); schedules the next. Never rejects. */
  private async beat(): Promise<void> {
    try {
      const report = await this.report();
      if (this.closed) return;
      this.current = await this.client.heartbeat(this.current.id, report);
      this.failures = 0;
      this.emit('heartbeat', this.current);
      this.schedule(this.intervalMs());
    } catch (err) {
      if (this.closed) return;
      const error = asClientError(err);
      if (error.code === 'INSTANCE_NOT_FOUND') return this.reregister();
      this.retry(error);
    }
  }

  private async reregister(): Promise<void> {
    try {
      this.current = (await this.client.register(this.input)).instance;
      this.failures = 0;
      this.emit('reregistered', this.current);
      this.schedule(this.intervalMs());
    } catch (err) {
      if (!this.closed) this.retry(asClientError(err));
    }
  }

  private retry(error: ClientError): void {
    this.emit('error', error);
    const delay = backoffDelayMs(
      this.failures,
      this.opts.backoff,
      this.opts.random,
      error.retryAfterMs,
    );
    this.failures += 1;
    this.schedule(delay);
  }

  private async report(): Promise<HeartbeatRequest> {
    if (this.opts.report === undefined) return {};
    const abandoned = new Promise<HeartbeatRequest>((resolve) => {
      this.abandonReport = () => resolve({});
    });
    try {
      return await Promise.race([this.opts.report(), abandoned]);
    } catch (err) {
      this.emit(
        'error',
        new ClientError(0, 'INTERNAL', `the report function threw: ${String(err)}`),
      );
      return {};
    } finally {
      this.abandonReport = undefined;
    }
  }
}

function asClientError(err: unknown): ClientError {
  return err instanceof ClientError ? err : new ClientError(0, 'NETWORK', String(err));
}
