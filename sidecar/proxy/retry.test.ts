import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { RETRY_CONDITIONS, retriesSchema } from '../../common/resources.js';
import type { RetryCondition } from '../../common/resources.js';
import type { AttemptOutcome } from './hooks.js';
import { SlidingRetryBudget, SpecRetryPolicy, matchesCondition } from './retry.js';

const orders = { namespace: 'shop', name: 'orders' };

type Short = number | 'reset' | 'timeout' | 'connect-failure';
function outcome(o: Short): AttemptOutcome {
  return typeof o === 'number' ? { kind: 'response', status: o } : { kind: o, message: o };
}

const OUTCOMES: Short[] = [
  200,
  404,
  409,
  429,
  500,
  501,
  502,
  503,
  504,
  'connect-failure',
  'reset',
  'timeout',
];

describe('matchesCondition: Envoy retry_on classes', () => {
  const table: Record<RetryCondition, Short[]> = {
    '5xx': [500, 501, 502, 503, 504, 'connect-failure', 'reset', 'timeout'],
    'gateway-error': [502, 503, 504, 'connect-failure', 'reset', 'timeout'],
    reset: ['connect-failure', 'reset', 'timeout'],
    'connect-failure': ['connect-failure'],
    'retriable-4xx': [409],
    'refused-stream': [],
  };
  it.each(RETRY_CONDITIONS.map((c) => [c, table[c]] as const))(
    '%s matches exactly %j',
    (condition, matching) => {
      expect(OUTCOMES.filter((o) => matchesCondition(condition, outcome(o)))).toEqual(matching);
    },
  );
});

describe('SpecRetryPolicy', () => {
  const spec = (retryOn?: RetryCondition[], attempts = 2) =>
    retriesSchema.parse({ attempts, retryOn });
  const policy = new SpecRetryPolicy();

  it.each<[string, ReturnType<typeof spec> | undefined, string, Short, number, boolean]>([
    ['no retries in the spec: never', undefined, 'GET', 503, 1, false],
    ['default retryOn retries a 503', spec(), 'GET', 503, 1, true],
    ['default retryOn retries a reset', spec(), 'GET', 'reset', 1, true],
    ['default retryOn retries a connect failure', spec(), 'GET', 'connect-failure', 1, true],
    ['default retryOn retries a per-try timeout (5xx class)', spec(), 'GET', 'timeout', 1, true],
    ['default retryOn leaves a 409 alone', spec(), 'GET', 409, 1, false],
    ['a success is never retried', spec(['5xx', 'retriable-4xx']), 'GET', 200, 1, false],
    ['retriable-4xx retries a 409', spec(['retriable-4xx']), 'GET', 409, 1, true],
    ['gateway-error leaves a 500 alone', spec(['gateway-error']), 'GET', 500, 1, false],
    ['gateway-error retries a 504', spec(['gateway-error']), 'GET', 504, 1, true],
    [
      'connect-failure alone leaves a reset alone',
      spec(['connect-failure']),
      'GET',
      'reset',
      1,
      false,
    ],
    ['attempts bound the tries: the last retry', spec(undefined, 2), 'GET', 503, 2, true],
    [
      'attempts bound the tries: attempts + 1 tries at most',
      spec(undefined, 2),
      'GET',
      503,
      3,
      false,
    ],
    ['HEAD, OPTIONS, PUT, DELETE, TRACE are idempotent', spec(), 'DELETE', 503, 1, true],
    ['methods are compared upper-cased', spec(), 'put', 503, 1, true],
    ['POST is not retried', spec(), 'POST', 'connect-failure', 1, false],
    ['PATCH is not retried', spec(), 'PATCH', 503, 1, false],
  ])('%s', (_what, s, method, o, tries, expected) => {
    expect(policy.retryable(s, method, outcome(o), tries)).toBe(expected);
  });

  it('retries any method when configured to', () => {
    const all = new SpecRetryPolicy({ retryNonIdempotent: true });
    expect(all.retryable(spec(), 'POST', outcome(503), 1)).toBe(true);
    expect(all.retryable(spec(), 'POST', outcome(404), 1)).toBe(false);
  });
});

/** Calls `calls` first tries at `at`, then tries `retries` retries; returns how many passed. */
function drive(budget: SlidingRetryBudget, at: number, calls: number, retries: number): number {
  for (let i = 0; i < calls; i++) budget.onCall(orders, at);
  let ok = 0;
  for (let i = 0; i < retries; i++) if (budget.tryRetry(orders, at)) ok++;
  return ok;
}

describe('SlidingRetryBudget', () => {
  it.each<
    [string, { ratio?: number; minRetriesPerSecond?: number }, [number, number, number][], number[]]
  >([
    [
      'the floor alone: minRetriesPerSecond × window',
      { minRetriesPerSecond: 1 },
      [[0, 0, 20]],
      [10],
    ],
    ['the floor plus 20% of the calls', { minRetriesPerSecond: 1 }, [[0, 100, 50]], [30]],
    ['no floor: exactly the ratio', { minRetriesPerSecond: 0, ratio: 0.5 }, [[0, 10, 10]], [5]],
    [
      'spent within the window, nothing more',
      { minRetriesPerSecond: 0 },
      [
        [0, 50, 10],
        [9_999, 0, 5],
      ],
      [10, 0],
    ],
    [
      'refills as the window slides past the old calls and retries',
      { minRetriesPerSecond: 0 },
      [
        [0, 50, 10],
        [5_000, 0, 10],
        [10_000, 50, 10],
      ],
      [10, 0, 10],
    ],
    [
      'a long pause empties the whole window',
      { minRetriesPerSecond: 1 },
      [
        [0, 0, 10],
        [1_000_000, 0, 20],
      ],
      [10, 10],
    ],
    [
      'a clock going back slides nothing',
      { minRetriesPerSecond: 0 },
      [
        [5_000, 10, 2],
        [0, 0, 1],
      ],
      [2, 0],
    ],
  ])('%s', (_what, options, rounds, expected) => {
    const budget = new SlidingRetryBudget(options);
    expect(rounds.map(([at, calls, retries]) => drive(budget, at, calls, retries))).toEqual(
      expected,
    );
  });

  it('defaults are Linkerd’s: 20% plus 10 retries per second over 10 seconds', () => {
    const budget = new SlidingRetryBudget();
    expect(drive(budget, 0, 1000, 1000)).toBe(300);
  });

  it('destinations have budgets of their own', () => {
    const budget = new SlidingRetryBudget({ minRetriesPerSecond: 0, ratio: 1 });
    budget.onCall(orders, 0);
    expect(budget.tryRetry(orders, 0)).toBe(true);
    expect(budget.tryRetry(orders, 0)).toBe(false);
    expect(budget.tryRetry({ namespace: 'shop', name: 'cart' }, 0)).toBe(false);
    budget.onCall({ namespace: 'shop', name: 'cart' }, 0);
    expect(budget.tryRetry({ namespace: 'shop', name: 'cart' }, 0)).toBe(true);
  });

  it('counts exhaustion and stays bounded, forgetting the least recently used destination', async () => {
    const registry = new Registry();
    const budget = new SlidingRetryBudget({
      registry,
      minRetriesPerSecond: 0,
      ratio: 1,
      maxDestinations: 2,
    });
    const ref = (name: string) => ({ namespace: 'shop', name });
    budget.onCall(ref('a'), 0);
    budget.onCall(ref('b'), 0);
    budget.onCall(ref('a'), 1); // 'b' is now the least recently used
    budget.onCall(ref('c'), 2);
    expect(budget.tryRetry(ref('a'), 3)).toBe(true);
    expect(budget.tryRetry(ref('b'), 3)).toBe(false); // forgotten: its call is gone
    expect(budget.tryRetry(ref('a'), 3)).toBe(true);
    expect(budget.tryRetry(ref('a'), 3)).toBe(false);
    const exhausted = await registry
      .getSingleMetric('maxine_sidecar_retry_budget_exhausted_total')!
      .get();
    expect(exhausted.values[0]!.value).toBe(2);
    const tracked = await registry
      .getSingleMetric('maxine_sidecar_retry_budget_destinations')!
      .get();
    expect(tracked.values[0]!.value).toBe(2);
  });
});
