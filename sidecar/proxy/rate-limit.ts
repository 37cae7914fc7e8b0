/**
 * `spec.rateLimit` of the destination on the call path (issue 14): one token bucket per
 * destination service, shared by all the app's calls to it through this sidecar. `burst`
 * tokens at most, refilled at `requestsPerSecond`; a call takes one or is refused with the
 * whole seconds until one is there (at least 1, for `Retry-After`). The bucket is the same
 * one the operator uses (`common/policy/rate-limit.ts`), so a spec change resizes it on the
 * next call: a smaller `burst` caps the tokens held, a larger one lets them refill to it, a
 * new rate applies from then on. No `rateLimit` in the spec: no limit.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { RateLimiter } from '../../common/policy/rate-limit.js';
import type { ServiceSpec } from '../../common/resources.js';
import type { ServiceRef } from '../../common/wire.js';
import type { CallRateLimiter, RateDecision } from './hooks.js';

export interface CallRateLimiterOptions {
  /** Where the metrics go; none registered when absent. */
  readonly registry?: PromRegistry;
  /**
   * Destinations whose bucket is held at most (default 1000). Past that, buckets that have
   * refilled completely (they hold no state) are dropped first, then the oldest.
   */
  readonly maxDestinations?: number;
}

const OK: RateDecision = { ok: true };

export class DestinationRateLimiter implements CallRateLimiter {
  private readonly buckets: RateLimiter;
  private readonly limited: Counter | undefined;

  constructor(options: CallRateLimiterOptions = {}) {
    const buckets = new RateLimiter(options.maxDestinations ?? 1000);
    this.buckets = buckets;
    const registry = options.registry;
    if (registry === undefined) return;
    this.limited = new Counter({
      name: 'maxine_sidecar_rate_limited_total',
      help: "Outbound calls refused with 429 by the destination's spec.rateLimit",
      registers: [registry],
    });
    new Gauge({
      name: 'maxine_sidecar_rate_limit_buckets',
      help: 'Destinations whose rate-limit bucket is held (bounded; idle ones forgotten first)',
      registers: [registry],
      collect() {
        this.set(buckets.size);
      },
    });
  }

  take(destination: ServiceRef, spec: ServiceSpec['rateLimit'], now: number): RateDecision {
    if (spec === undefined) return OK;
    const taken = this.buckets.take(`${destination.namespace}/${destination.name}`, spec, now);
    if (taken.allowed) return OK;
    this.limited?.inc();
    return { ok: false, retryAfterSeconds: taken.retryAfterSeconds };
  }
}
