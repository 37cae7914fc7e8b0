/**
 * The outbound proxy's seams (issue 14). The engine (`sidecar/proxy/engine.ts`) forwards a call
 * and owns sockets, pools and load balancing; everything it *asks* before and during a call is
 * one of the interfaces below, each implemented by its own module and composed in
 * `sidecar/sidecar.ts`. Every interface is synchronous and pure apart from the injected clock
 * (`now`, milliseconds), so each implementation has table-driven unit tests of its own and the
 * engine's integration tests can pass fakes where a case needs one.
 *
 * Order of one call: parse the destination → `authorize` (403) → `rateLimit.take` (429) →
 * attempts: pick an instance the breakers `admit` (503 when none) → send → `breakers.record`
 * → maybe retry (`retryPolicy` and `retryBudget`) → `observer.callEnded` once.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ServiceSpec } from '../../common/resources.js';
import type { ServiceRef } from '../../common/wire.js';

/** One outbound call as the engine sees it before choosing an instance. */
export interface OutboundRequest {
  /** The service called, namespace resolved (it defaults to the pod's). */
  readonly destination: ServiceRef;
  /** Upper-case method as received. */
  readonly method: string;
  /** The path (with query) sent upstream, e.g. `/orders/42?x=1`. */
  readonly path: string;
  /** The caller's headers, hop-by-hop ones already removed. */
  readonly headers: IncomingHttpHeaders;
}

export type AuthorizeDecision =
  | { readonly allowed: true; readonly intention?: ServiceRef }
  | {
      readonly allowed: false;
      /** Human sentence for the 403 body, naming the intention or the default. */
      readonly reason: string;
      /** The MaxineIntention that decided; absent when the cluster default did. */
      readonly intention?: ServiceRef;
    };

/** Intentions enforced at the caller, with the caller's own identity (its pod's service). */
export interface CallAuthorizer {
  authorize(request: OutboundRequest): AuthorizeDecision;
}

export type RateDecision =
  { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

/** `spec.rateLimit` of the destination, a token bucket per destination service. */
export interface CallRateLimiter {
  take(destination: ServiceRef, spec: ServiceSpec['rateLimit'], now: number): RateDecision;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What one try came to, for breakers, retries and observation. */
export type AttemptOutcome =
  | { readonly kind: 'response'; readonly status: number }
  | { readonly kind: 'connect-failure' | 'reset' | 'timeout'; readonly message: string };

export interface BreakerTransition {
  readonly destination: ServiceRef;
  /** Absent for the service-level breaker. */
  readonly instanceId?: string;
  readonly from: BreakerState;
  readonly to: BreakerState;
  /** Milliseconds the circuit stays open (when `to` is `open`). */
  readonly openMs?: number;
  readonly at: number;
}

/** `spec.circuitBreaker` of the destination, per instance and per service. */
export interface CircuitBreakers {
  /**
   * Whether a try may go to this instance now: closed, or open with its time elapsed (it turns
   * half-open) and a probe slot free. Admitting a half-open probe takes the slot.
   */
  admit(
    destination: ServiceRef,
    instanceId: string,
    spec: ServiceSpec['circuitBreaker'],
    now: number,
  ): boolean;
  /** Records a try's outcome (the engine calls it once per admitted try). */
  record(
    destination: ServiceRef,
    instanceId: string,
    outcome: AttemptOutcome,
    spec: ServiceSpec['circuitBreaker'],
    now: number,
  ): void;
  /** The state for /healthz, metrics and spans. */
  state(destination: ServiceRef, instanceId?: string): BreakerState;
}

/** Whether a failed try may be tried again (`spec.retries`), budget aside. */
export interface RetryPolicy {
  retryable(
    spec: ServiceSpec['retries'],
    method: string,
    outcome: AttemptOutcome,
    /** Tries made so far, the first included. */
    tries: number,
  ): boolean;
}

/** Bounds retries to a share of the calls (Linkerd's / Envoy's retry budget). */
export interface RetryBudget {
  /** Counts a first try to `destination`. */
  onCall(destination: ServiceRef, now: number): void;
  /** Withdraws one retry; false when the budget is spent (the failure is returned as is). */
  tryRetry(destination: ServiceRef, now: number): boolean;
}

/** One ended call, for the dependency graph's observed edges and for metrics. */
export interface CallRecord {
  readonly destination: ServiceRef;
  /** The status returned to the app (the proxy's own 4xx/5xx included). */
  readonly status: number;
  readonly durationMs: number;
  readonly tries: number;
  /** Set when the proxy answered itself (e.g. `INTENTION_DENIED`, `CIRCUIT_OPEN`). */
  readonly refusedBy?: string;
}

export interface CallObserver {
  callEnded(record: CallRecord): void;
}

/** W3C trace context and spans (OpenTelemetry); a no-op when no exporter is configured. */
export interface CallTracer {
  /** Starts the call's span from the caller's `traceparent`/`tracestate`, or a new trace. */
  startCall(request: OutboundRequest): TracedCall;
}

export interface TracedCall {
  /** Starts a client span for one try; its headers carry the span as `traceparent`. */
  startTry(info: {
    readonly instanceId: string;
    readonly host: string;
    readonly port: number;
    readonly attempt: number;
    readonly breaker: BreakerState;
  }): TracedTry;
  end(status: number): void;
}

export interface TracedTry {
  /** `traceparent` (and `tracestate`) to send upstream for this try. */
  readonly headers: Readonly<Record<string, string>>;
  end(outcome: AttemptOutcome): void;
}

/** Everything the engine asks; `sidecar.ts` composes the real ones. */
export interface ProxyHooks {
  readonly authorizer: CallAuthorizer;
  readonly rateLimiter: CallRateLimiter;
  readonly breakers: CircuitBreakers;
  readonly retryPolicy: RetryPolicy;
  readonly retryBudget: RetryBudget;
  readonly observer: CallObserver;
  readonly tracer: CallTracer;
}
