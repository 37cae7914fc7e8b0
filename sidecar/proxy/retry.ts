/**
 * Retries of the outbound proxy (issue 14): which failed tries `spec.retries` allows to try
 * again, and a budget that keeps retries to a share of the calls so they cannot amplify an
 * outage. Pure: the budget takes the clock (`now`, ms) as an argument.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { RetryCondition, ServiceSpec } from '../../common/resources.js';
import type { ServiceRef } from '../../common/wire.js';
import type { AttemptOutcome, RetryBudget, RetryPolicy } from './hooks.js';

/** Methods retried without asking: the idempotent ones of RFC 9110 §9.2.2. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'PUT',
  'DELETE',
  'TRACE',
]);

/**
 * Whether `outcome` is one of the failures `condition` names, as Envoy's `retry_on` defines
 * them: `5xx` is any 5xx response or no response at all (connect-failure, reset, per-try
 * timeout); `gateway-error` is 502, 503, 504 or no response at all (the proxy answers those
 * itself with 502/503/504); `reset` is no response at all (disconnect, reset, read timeout —
 * a failed connect included); `connect-failure` is a failed connect only; `retriable-4xx` is
 * 409; `refused-stream` is HTTP/2's REFUSED_STREAM, which the sidecar's HTTP/1.1 upstreams
 * never send, so it matches nothing.
 */
export function matchesCondition(condition: RetryCondition, outcome: AttemptOutcome): boolean {
  const status = outcome.kind === 'response' ? outcome.status : undefined;
  switch (condition) {
    case '5xx':
      return status === undefined || status >= 500;
    case 'gateway-error':
      return status === undefined || status === 502 || status === 503 || status === 504;
    case 'reset':
      return status === undefined;
    case 'connect-failure':
      return outcome.kind === 'connect-failure';
    case 'retriable-4xx':
      return status === 409;
    case 'refused-stream':
      return false;
  }
}

export interface RetryPolicyOptions {
  /**
   * Also retry methods that are not idempotent (POST, PATCH, …). Off by default: a retried
   * POST may do its work twice.
   */
  readonly retryNonIdempotent?: boolean;
}

/**
 * `spec.retries`: a failed try is tried again when the spec has `retries`, fewer than
 * `attempts` retries were made, the method is idempotent (or the option says otherwise) and
 * the outcome matches one of `retryOn`. No `retries` in the spec: no retries.
 */
export class SpecRetryPolicy implements RetryPolicy {
  private readonly retryNonIdempotent: boolean;

  constructor(options: RetryPolicyOptions = {}) {
    this.retryNonIdempotent = options.retryNonIdempotent ?? false;
  }

  retryable(
    spec: ServiceSpec['retries'],
    method: string,
    outcome: AttemptOutcome,
    tries: number,
  ): boolean {
    if (spec === undefined || tries > spec.attempts) return false;
    if (!this.retryNonIdempotent && !IDEMPOTENT_METHODS.has(method.toUpperCase())) return false;
    return spec.retryOn.some((condition) => matchesCondition(condition, outcome));
  }
}

export interface RetryBudgetOptions {
  /** Where the metrics go; none registered when absent. */
  readonly registry?: PromRegistry;
  /** Retries allowed as a share of the first tries in the window (default 0.2, Linkerd's). */
  readonly ratio?: number;
  /** Retries per second always allowed, whatever the traffic (default 10, Linkerd's). */
  readonly minRetriesPerSecond?: number;
  /** Length of the sliding window in seconds (default 10, Linkerd's ttl). */
  readonly windowSeconds?: number;
  /** Destinations tracked at most (default 1000); the least recently used is forgotten. */
  readonly maxDestinations?: number;
}

/** Calls and retries of one destination in one-second slots of a sliding window. */
interface Window {
  readonly calls: number[];
  readonly retries: number[];
  callSum: number;
  retrySum: number;
  /** The second (now / 1000, floored) of the newest slot. */
  second: number;
}

/**
 * Linkerd's / Finagle's retry budget, per destination: within the last `windowSeconds`, the
 * retries may number at most `ratio` × the first tries plus `minRetriesPerSecond` ×
 * `windowSeconds` (the floor that lets a quiet client retry at all). A retry the budget cannot
 * pay for is not made: the failure goes back to the caller as it is.
 */
export class SlidingRetryBudget implements RetryBudget {
  private readonly windows = new Map<string, Window>();
  private readonly ratio: number;
  private readonly floor: number;
  private readonly slots: number;
  private readonly maxDestinations: number;
  private readonly exhausted: Counter | undefined;

  constructor(options: RetryBudgetOptions = {}) {
    this.ratio = options.ratio ?? 0.2;
    this.slots = Math.max(1, Math.round(options.windowSeconds ?? 10));
    this.floor = (options.minRetriesPerSecond ?? 10) * this.slots;
    this.maxDestinations = options.maxDestinations ?? 1000;
    const registry = options.registry;
    if (registry === undefined) return;
    this.exhausted = new Counter({
      name: 'maxine_sidecar_retry_budget_exhausted_total',
      help: 'Retries not made because the retry budget of the destination was spent',
      registers: [registry],
    });
    const windows = this.windows;
    new Gauge({
      name: 'maxine_sidecar_retry_budget_destinations',
      help: 'Destinations whose retry budget is tracked (bounded; least recently used forgotten)',
      registers: [registry],
      collect() {
        this.set(windows.size);
      },
    });
  }

  onCall(destination: ServiceRef, now: number): void {
    const w = this.window(destination, now);
    w.calls[w.second % this.slots]! += 1;
    w.callSum++;
  }

  tryRetry(destination: ServiceRef, now: number): boolean {
    const w = this.window(destination, now);
    if (w.retrySum + 1 > this.floor + this.ratio * w.callSum) {
      this.exhausted?.inc();
      return false;
    }
    w.retries[w.second % this.slots]! += 1;
    w.retrySum++;
    return true;
  }

  /** The destination's window, slid to `now`; created (the map kept bounded) when missing. */
  private window(ref: ServiceRef, now: number): Window {
    const key = `${ref.namespace}/${ref.name}`;
    const second = Math.floor(now / 1000);
    let w = this.windows.get(key);
    if (w === undefined) {
      if (this.windows.size >= this.maxDestinations) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
      w = {
        calls: new Array<number>(this.slots).fill(0),
        retries: new Array<number>(this.slots).fill(0),
        callSum: 0,
        retrySum: 0,
        second,
      };
    } else {
      this.windows.delete(key); // re-inserted below: the Map's order is the use order
      this.slide(w, second);
    }
    this.windows.set(key, w);
    return w;
  }

  /** Empties the slots that fell out of the window; a clock going back slides nothing. */
  private slide(w: Window, second: number): void {
    if (second <= w.second) return;
    const gone = Math.min(second - w.second, this.slots);
    for (let s = w.second + 1; s <= w.second + gone; s++) {
      const i = s % this.slots;
      w.callSum -= w.calls[i]!;
      w.retrySum -= w.retries[i]!;
      w.calls[i] = 0;
      w.retries[i] = 0;
    }
    w.second = second;
  }
}
