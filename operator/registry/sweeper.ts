/**
 * Runs the registry's lease sweep on an interval and says what it did: the mass-expiry guard
 * engaging and releasing (once per transition, not once per sweep) and the instances removed.
 * The sweep itself (which leases lapsed, what the guard decides) is the registry's, pure and
 * clocked; this module only schedules it and turns its results into log lines.
 */
import type { Logger } from '../../common/logger.js';
import type { SweepResult } from './registry.js';

export interface LeaseSweeperOptions {
  registry: { sweep(): SweepResult };
  logger: Pick<Logger, 'info' | 'warn'>;
  intervalMs: number;
  /** The configured share of lapsed leases that engages the guard, for the log line. */
  massExpiryThreshold: number;
}

export class LeaseSweeper {
  private timer: NodeJS.Timeout | undefined;
  private guardWasActive = false;

  constructor(private readonly opts: LeaseSweeperOptions) {}

  /** One sweep: applies it and logs a guard transition and any removals. */
  sweepOnce(): SweepResult {
    const { registry, logger, massExpiryThreshold } = this.opts;
    const result = registry.sweep();
    if (result.guardActive !== this.guardWasActive) {
      this.guardWasActive = result.guardActive;
      if (result.guardActive) {
        logger.warn(
          { lapsed: result.lapsed, leased: result.leased, threshold: massExpiryThreshold },
          'mass-expiry guard engaged: too many leases lapsed at once, evictions are paused',
        );
      } else {
        logger.info(
          { lapsed: result.lapsed, leased: result.leased },
          'mass-expiry guard released: evictions resume',
        );
      }
    }
    if (result.removed > 0) logger.info({ removed: result.removed }, 'expired instances removed');
    return result;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sweepOnce(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
