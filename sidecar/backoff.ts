/**
 * Capped exponential back-off with "equal jitter": half the delay is fixed, half random, so
 * a fleet of sidecars that lost the operator at the same moment does not come back in step,
 * yet none retries at once in a tight loop.
 */
export function backoffDelay(
  attempt: number,
  opts: { baseMs: number; maxMs: number; random?: () => number },
): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (opts.random ?? Math.random)() * (ceiling / 2));
}
