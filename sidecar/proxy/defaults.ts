/**
 * Allow-all, no-op implementations of every proxy hook (sidecar/proxy/hooks.ts): the engine's
 * tests start from them and override the one a case is about, and the sidecar runs with them
 * until the real authorizer, limiter, breakers, retry policy, budget, observer and tracer are
 * composed in sidecar/sidecar.ts. With them the proxy allows everything, never limits, never
 * opens a circuit, never retries and starts no span (a `traceparent` the app sent goes upstream
 * unchanged).
 */
import type {
  CallAuthorizer,
  CallObserver,
  CallRateLimiter,
  CallTracer,
  CircuitBreakers,
  ProxyHooks,
  RetryBudget,
  RetryPolicy,
  TracedCall,
  TracedTry,
} from './hooks.js';

export const allowAllAuthorizer: CallAuthorizer = { authorize: () => ({ allowed: true }) };

export const unlimitedRateLimiter: CallRateLimiter = { take: () => ({ ok: true }) };

export const closedBreakers: CircuitBreakers = {
  admit: () => true,
  record: () => undefined,
  state: () => 'closed',
};

export const noRetries: RetryPolicy = { retryable: () => false };

export const unlimitedRetryBudget: RetryBudget = {
  onCall: () => undefined,
  tryRetry: () => true,
};

export const ignoreCalls: CallObserver = { callEnded: () => undefined };

const NO_TRY: TracedTry = { headers: {}, end: () => undefined };
const NO_CALL: TracedCall = { startTry: () => NO_TRY, end: () => undefined };
export const noTracing: CallTracer = { startCall: () => NO_CALL };

export const DEFAULT_PROXY_HOOKS: ProxyHooks = {
  authorizer: allowAllAuthorizer,
  rateLimiter: unlimitedRateLimiter,
  breakers: closedBreakers,
  retryPolicy: noRetries,
  retryBudget: unlimitedRetryBudget,
  observer: ignoreCalls,
  tracer: noTracing,
};

/** The defaults with some hooks replaced (tests, and the composition in sidecar.ts). */
export function proxyHooks(overrides: Partial<ProxyHooks> = {}): ProxyHooks {
  return { ...DEFAULT_PROXY_HOOKS, ...overrides };
}
