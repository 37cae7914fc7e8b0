/**
 * Registers the pod's instance with the operator and keeps its lease: heartbeats at a third
 * of the TTL carrying the latest check result, registers again when the operator answers 404
 * (it restarted, or evicted us), retries with jittered back-off while the operator is away
 * (or, while a replica says no leader can take writes, when it says one is due),
 * and deregisters on shutdown. It never throws into the process: an unreachable operator
 * means retries and log lines, never a crashed pod.
 */
import type { HealthStatus, Instance, RegisterInput } from '../common/wire.js';
import type { Logger } from '../common/logger.js';
import { backoffDelay } from './backoff.js';
import { requestJson } from './http-json.js';

export interface AgentOptions {
  operatorUrl: string;
  registration: RegisterInput;
  logger: Logger;
  /** The bearer token (the pod's projected ServiceAccount token), read fresh each call. */
  token?: () => Promise<string | undefined>;
  /** The latest check result to report, or undefined when no check runs. */
  health?: () => { status: HealthStatus; output?: string } | undefined;
  requestTimeoutMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export type AgentState = 'starting' | 'registered' | 'retrying' | 'stopped';

interface Answer {
  status: number;
  body:
    | { instance?: Instance; error?: { code: string; message: string; details?: unknown } }
    | undefined;
}

export class RegistrationAgent {
  private timer: NodeJS.Timeout | undefined;
  private instance: Instance | undefined;
  private failures = 0;
  private running: Promise<void> = Promise.resolve();
  private stateNow: AgentState = 'starting';
  private lastError: string | undefined;
  /** The check result changed since the last heartbeat was sent. */
  private dirty = false;

  constructor(private readonly opts: AgentOptions) {}

  get state(): AgentState {
    return this.stateNow;
  }

  get instanceId(): string | undefined {
    return this.instance?.id;
  }

  status(): { state: AgentState; instance?: string; lastError?: string } {
    return {
      state: this.stateNow,
      ...(this.instance && { instance: this.instance.id }),
      ...(this.lastError !== undefined && { lastError: this.lastError }),
    };
  }

  start(): void {
    this.schedule(0);
  }

  /** Sends a heartbeat now (a check result changed), also if one is already on its way. */
  heartbeatNow(): void {
    this.dirty = true;
    if (this.stateNow === 'registered') this.schedule(0);
  }

  /** Stops the loop and deregisters (bounded by the request timeout). */
  async stop(): Promise<void> {
    this.stateNow = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    // A registration in flight may still bring an id: wait for it, then deregister that.
    await this.running;
    const id = this.instance?.id;
    if (id === undefined) return;
    try {
      const res = await this.call('DELETE', `/api/v1/instances/${encodeURIComponent(id)}`);
      this.opts.logger.info({ instance: id, status: res.status }, 'deregistered');
    } catch (err) {
      this.opts.logger.warn({ err, instance: id }, 'could not deregister; the lease will lapse');
    }
  }

  private schedule(ms: number): void {
    if (this.stateNow === 'stopped') return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.running.then(() => this.tick());
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stateNow === 'stopped') return;
    try {
      const next = this.instance === undefined ? await this.register() : await this.heartbeat();
      this.schedule(this.dirty ? 0 : next);
    } catch (err) {
      this.retry(err);
    }
  }

  private async register(): Promise<number> {
    const res = await this.call('POST', '/api/v1/instances', this.opts.registration);
    if ((res.status !== 200 && res.status !== 201) || res.body?.instance === undefined)
      throw new Refused('registration', res);
    this.instance = res.body.instance;
    this.succeeded();
    this.opts.logger.info(
      { instance: this.instance.id, lease: this.instance.lease },
      'registered with the operator',
    );
    // Report the current check result at once rather than a third of a TTL later.
    this.dirty = false;
    return this.opts.health?.() === undefined ? this.period() : 0;
  }

  private async heartbeat(): Promise<number> {
    const id = this.instance?.id ?? '';
    this.dirty = false;
    const res = await this.call(
      'PUT',
      `/api/v1/instances/${encodeURIComponent(id)}/heartbeat`,
      this.opts.health?.() ?? {},
    );
    if (res.status === 404) {
      this.opts.logger.warn(
        { instance: id },
        'the operator does not know us (any more); registering again',
      );
      this.instance = undefined;
      return 0;
    }
    if (res.status !== 200 || res.body?.instance === undefined) throw new Refused('heartbeat', res);
    this.instance = res.body.instance;
    this.succeeded();
    return this.period();
  }

  /** A third of the lease's TTL, so two heartbeats may be lost before it lapses. */
  private period(): number {
    const ttl = this.instance?.lease?.ttlSeconds ?? this.opts.registration.ttlSeconds ?? 30;
    return Math.max(200, (ttl * 1000) / 3);
  }

  private succeeded(): void {
    if (this.stateNow === 'retrying')
      this.opts.logger.info({ after: this.failures }, 'the operator answers again');
    this.stateNow = 'registered';
    this.failures = 0;
    this.lastError = undefined;
  }

  private retry(err: unknown): void {
    if (this.stateNow === 'stopped') return;
    const message = err instanceof Error ? err.message : String(err);
    const maxMs = this.opts.retryMaxMs ?? 30_000;
    // A replica that forwards writes says when a leader is expected (NO_LEADER, Retry-After):
    // retrying then, rather than after a back-off grown through a failover, renews the lease
    // soon after the new leader takes over.
    const leaderDue = err instanceof Refused ? err.retryAfterMs : undefined;
    const delay =
      leaderDue !== undefined
        ? Math.round(Math.min(maxMs, leaderDue) * (0.5 + Math.random() * 0.5))
        : backoffDelay(this.failures, { baseMs: this.opts.retryBaseMs ?? 500, maxMs });
    this.failures += 1;
    this.stateNow = 'retrying';
    this.lastError = message;
    // Log the first failure and then every tenth, not each retry.
    if (this.failures === 1 || this.failures % 10 === 0) {
      const fields = { failures: this.failures, retryInMs: delay, error: message };
      if (!(err instanceof Refused)) {
        this.opts.logger.warn(fields, 'cannot reach the operator; retrying');
      } else if (err.status === 401) {
        this.opts.logger.warn(
          { ...fields, status: err.status, code: err.code, hint: TOKEN_HINT },
          'the operator refused our credentials (401); retrying',
        );
      } else {
        this.opts.logger.warn(
          { ...fields, status: err.status, code: err.code },
          `the operator refused the ${err.what} (${err.status}); retrying`,
        );
      }
    }
    this.schedule(delay);
  }

  private async call(method: string, path: string, body?: unknown): Promise<Answer> {
    const token = await this.opts.token?.();
    const res = await requestJson(new URL(path, this.opts.operatorUrl), {
      method,
      body,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      timeoutMs: this.opts.requestTimeoutMs ?? 5_000,
    });
    return { status: res.status, body: res.body as Answer['body'] };
  }
}

export const TOKEN_HINT =
  "the sidecar sends the token in MAXINE_TOKEN_FILE (the projected ServiceAccount token, audience maxine.io by default): check that the file exists and is fresh, that its audience is the operator's --token-audience, and that the operator accepts that kind of token";

/** The operator answered, and not with what was asked (the operator was reached). */
class Refused extends Error {
  readonly status: number;
  readonly code: string | undefined;
  /** When to try again, as a `503 NO_LEADER` says (`details.retryAfterSeconds`). */
  readonly retryAfterMs: number | undefined;

  constructor(
    readonly what: string,
    res: Answer,
  ) {
    const e = res.body?.error;
    super(
      e === undefined
        ? `${what}: HTTP ${res.status}`
        : `${what}: ${res.status} ${e.code}: ${e.message}`,
    );
    this.status = res.status;
    this.code = e?.code;
    const after = (e?.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
    this.retryAfterMs =
      e?.code === 'NO_LEADER' && typeof after === 'number' && after >= 0 ? after * 1000 : undefined;
  }
}
