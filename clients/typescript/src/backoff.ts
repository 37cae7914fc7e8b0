/**
 * Timing of the client's loops, as pure functions: how often to heartbeat a lease, and how long
 * to wait before retrying after an error (exponential, with jitter, so that many clients of a
 * restarted operator do not all come back in the same millisecond).
 */

export interface BackoffOptions {
  /** The first retry's delay (before jitter). Default 250 ms. */
  baseMs?: number;
  /** The longest delay. Default 30 s. */
  maxMs?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first): `base * 2^attempt` capped at `max`,
 * then "equal jitter" (half of it fixed, half random), so no delay is under half its step and
 * the retries of many clients spread out. A server's `Retry-After` is a floor.
 */
export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
  retryAfterMs?: number,
): number {
  const base = options.baseMs ?? 250;
  const max = options.maxMs ?? 30_000;
  const step = Math.min(max, base * 2 ** Math.min(Math.max(0, attempt), 30));
  const jittered = step / 2 + random() * (step / 2);
  return Math.round(Math.max(jittered, Math.min(retryAfterMs ?? 0, max * 4)));
}

/**
 * How often to heartbeat a lease of `ttlSeconds` (the operator's answer, so its TTL wins over
 * the one asked for): a third of it, as the sidecar does, so two heartbeats may be lost before
 * the lease lapses. Never under 100 ms.
 */
export function heartbeatIntervalMs(ttlSeconds: number): number {
  return Math.max(100, Math.floor((ttlSeconds * 1000) / 3));
}
