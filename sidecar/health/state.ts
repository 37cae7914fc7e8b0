/**
 * The thresholds of a health check as a pure state machine: one flaky result does not take a
 * healthy instance out of rotation, and one lucky result does not put a failing one back. No
 * timers and no I/O, so every sequence is tested without running a check.
 */
import type { HealthStatus } from '../../common/wire.js';

export interface Thresholds {
  /** Consecutive critical results that make a healthy instance critical. */
  failureThreshold: number;
  /** Consecutive non-critical results that make a critical instance healthy again. */
  successThreshold: number;
}

export interface Observation {
  status: HealthStatus;
  output: string;
}

export interface Transition extends Observation {
  /** The status differs from the one reported before (an unknown status counts as different). */
  changed: boolean;
}

/**
 * The reported status is unknown (`current()` is undefined) until the first result, which sets
 * it directly: there is no earlier state to protect. After that, passing and warning are both
 * healthy and replace each other at once; crossing between healthy and critical takes a streak
 * of the thresholds' length, and any result on the other side resets the streak.
 *
 * The reported output is that of the latest result that agreed with the reported status: a
 * result held back by a threshold changes nothing, so the output always explains the status.
 */
export class HealthState {
  private reported: Observation | undefined;
  private failures = 0;
  private successes = 0;

  /** `initial` carries a status over (the check's spec changed), with fresh streaks. */
  constructor(
    private readonly thresholds: Thresholds,
    initial?: Observation,
  ) {
    this.reported = initial === undefined ? undefined : { ...initial };
  }

  current(): Observation | undefined {
    return this.reported === undefined ? undefined : { ...this.reported };
  }

  observe(result: Observation): Transition {
    const critical = result.status === 'critical';
    this.failures = critical ? this.failures + 1 : 0;
    this.successes = critical ? 0 : this.successes + 1;
    const before = this.reported;
    if (before !== undefined && !this.accepts(before.status, critical)) {
      return { ...before, changed: false };
    }
    this.reported = { status: result.status, output: result.output };
    return { ...this.reported, changed: before?.status !== result.status };
  }

  /** Whether a result (critical or not) may replace the reported `status` now. */
  private accepts(status: HealthStatus, critical: boolean): boolean {
    if (critical === (status === 'critical')) return true;
    return critical
      ? this.failures >= this.thresholds.failureThreshold
      : this.successes >= this.thresholds.successThreshold;
  }
}
