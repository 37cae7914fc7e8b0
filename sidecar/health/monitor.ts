/**
 * Runs a pod's health check on a schedule and keeps the thresholded status that the sidecar
 * reports with its heartbeat. Runs never overlap: each one is scheduled when the previous one
 * has finished, `intervalSeconds` after the previous one started (at once if it took longer).
 */
import type { Logger } from '../../common/logger.js';
import { runCheck } from './checks.js';
import type { CheckOptions, CheckResult, CheckTarget, HealthCheck } from './checks.js';
import { HealthState } from './state.js';
import type { Observation } from './state.js';

export interface MonitorOptions {
  spec: HealthCheck;
  target: CheckTarget;
  /** Called when the reported status changes, the first result included. */
  onChange: (s: Observation) => void;
  logger?: Logger;
  /** Monotonic milliseconds, for the start-to-start interval. */
  now?: () => number;
  /** Environment, working directory and output cap of exec checks. */
  exec?: Omit<CheckOptions, 'signal'>;
}

export class HealthMonitor {
  private spec: HealthCheck;
  private state: HealthState;
  private readonly now: () => number;
  private started = false;
  private timer: NodeJS.Timeout | undefined;
  /** Bumped by stop() and update(): timers and results of an older generation are dropped. */
  private generation = 0;
  /** The last run queued; each run waits for the one before, so two never run at once. */
  private tail: Promise<void> = Promise.resolve();
  private running: AbortController | undefined;

  constructor(private readonly opts: MonitorOptions) {
    this.spec = opts.spec;
    this.state = new HealthState(opts.spec);
    this.now = opts.now ?? (() => performance.now());
  }

  /** Runs the first check now and the next ones every `intervalSeconds`. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule(0);
  }

  /** Cancels the schedule, kills a running check and resolves once it is gone. */
  async stop(): Promise<void> {
    this.started = false;
    this.cancel();
    await this.tail;
  }

  /** The reported status; undefined until the first check has finished. */
  current(): Observation | undefined {
    return this.state.current();
  }

  /**
   * Swaps the check (the MaxineService or the pod's override changed): a running check is
   * killed and its result dropped, the new check runs at once. The reported status carries
   * over and the thresholds apply to it; the streaks start afresh, as they counted another check.
   */
  update(spec: HealthCheck): void {
    this.spec = spec;
    this.state = new HealthState(spec, this.state.current());
    this.cancel();
    if (this.started) this.schedule(0);
  }

  /** Runs one check after any running one, outside the schedule; resolves to the reported status. */
  async runNow(): Promise<Observation | undefined> {
    await this.enqueue(this.generation);
    return this.current();
  }

  private cancel(): void {
    this.generation++;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running?.abort();
  }

  private schedule(delayMs: number): void {
    const generation = this.generation;
    this.timer = setTimeout(() => this.tick(generation), delayMs);
    this.timer.unref();
  }

  private tick(generation: number): void {
    this.timer = undefined;
    const startedAt = this.now();
    // enqueue() never rejects: a failing run is logged where it fails.
    void this.enqueue(generation).then(() => {
      if (generation !== this.generation) return;
      const elapsed = this.now() - startedAt;
      this.schedule(Math.max(0, this.spec.intervalSeconds * 1000 - elapsed));
    });
  }

  private enqueue(generation: number): Promise<void> {
    const run = this.tail.then(() => this.checkOnce(generation));
    this.tail = run;
    return run;
  }

  private async checkOnce(generation: number): Promise<void> {
    if (generation !== this.generation) return;
    const controller = new AbortController();
    this.running = controller;
    try {
      const result = await runCheck(this.spec, this.opts.target, {
        ...this.opts.exec,
        signal: controller.signal,
      });
      // A check cut short by stop() or update() says nothing about the instance.
      if (generation === this.generation) this.record(result);
    } catch (err) {
      // runCheck does not throw; onChange might.
      this.opts.logger?.error({ err }, 'health check result not handled');
    } finally {
      this.running = undefined;
    }
  }

  private record(result: CheckResult): void {
    const next = this.state.observe(result);
    const log = this.opts.logger;
    log?.debug(
      { status: result.status, reported: next.status, durationMs: result.durationMs },
      'health check ran',
    );
    if (!next.changed) return;
    log?.[next.status === 'critical' ? 'warn' : 'info'](
      { status: next.status, output: next.output },
      'health status changed',
    );
    this.opts.onChange({ status: next.status, output: next.output });
  }
}
