import { describe, expect, it } from '@jest/globals';
import { ApiException } from '@kubernetes/client-node';
import type { Scheduler } from './queue.js';
import { WorkQueue } from './queue.js';

/** A scheduler whose timers fire only when the test says so. */
class ManualScheduler implements Scheduler {
  readonly pending: { ms: number; fn: () => void; cancelled: boolean }[] = [];
  after(ms: number, fn: () => void): () => void {
    const entry = { ms, fn, cancelled: false };
    this.pending.push(entry);
    return () => {
      entry.cancelled = true;
    };
  }
  fireAll(): void {
    for (const e of this.pending.splice(0)) if (!e.cancelled) e.fn();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('WorkQueue', () => {
  it('collapses a burst of adds for one key into one reconcile', async () => {
    const calls: string[] = [];
    const gate = deferred();
    const q = new WorkQueue({
      workers: 1,
      reconcile: (k) => {
        calls.push(k);
        return k === 'x' ? gate.promise : Promise.resolve();
      },
    });
    q.add('x'); // occupies the only worker
    for (let i = 0; i < 10; i++) q.add('a');
    q.add('b');
    expect(q.depth).toBe(2);
    gate.resolve();
    await q.idle();
    expect(calls).toEqual(['x', 'a', 'b']);
  });

  it('never runs one key twice at once, and re-runs it once when it changed meanwhile', async () => {
    const running = new Set<string>();
    const gates: ReturnType<typeof deferred>[] = [];
    let overlap = false;
    const q = new WorkQueue({
      workers: 4,
      reconcile: async (k) => {
        if (running.has(k)) overlap = true;
        running.add(k);
        const g = deferred();
        gates.push(g);
        await g.promise;
        running.delete(k);
      },
    });
    q.add('a');
    await tick();
    q.add('a');
    q.add('a');
    await tick();
    expect(gates).toHaveLength(1); // the second run waits for the first
    gates[0]!.resolve();
    await tick();
    await tick();
    expect(gates).toHaveLength(2); // exactly one follow-up for the burst
    gates[1]!.resolve();
    await q.idle();
    expect(overlap).toBe(false);
  });

  it('runs different keys in parallel up to the worker count', async () => {
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const q = new WorkQueue({
      workers: 2,
      reconcile: (k) => {
        const g = deferred();
        gates.set(k, g);
        return g.promise;
      },
    });
    for (const k of ['a', 'b', 'c']) q.add(k);
    await tick();
    expect([...gates.keys()]).toEqual(['a', 'b']);
    expect(q.depth).toBe(1);
    gates.get('a')!.resolve();
    await tick();
    await tick();
    expect([...gates.keys()]).toEqual(['a', 'b', 'c']);
    gates.get('b')!.resolve();
    gates.get('c')!.resolve();
    await q.idle();
  });

  it('retries a failure with exponential back-off, capped, and resets after a success', async () => {
    const scheduler = new ManualScheduler();
    let failuresLeft = 4;
    const delays: number[] = [];
    const q = new WorkQueue({
      scheduler,
      baseDelayMs: 100,
      maxDelayMs: 500,
      reconcile: () =>
        failuresLeft-- > 0 ? Promise.reject(new Error('API server said no')) : Promise.resolve(),
      onError: (_k, _e, _attempt, retryIn) => delays.push(retryIn),
    });
    q.add('a');
    for (let i = 0; i < 4; i++) {
      await tick();
      scheduler.fireAll();
    }
    await q.idle();
    expect(delays).toEqual([100, 200, 400, 500]);
    failuresLeft = 1;
    q.add('a');
    await tick();
    expect(delays.at(-1)).toBe(100); // back to the base after the success in between
    scheduler.fireAll();
    await q.idle();
  });

  it('a new change supersedes a pending retry', async () => {
    const scheduler = new ManualScheduler();
    let fail = true;
    let runs = 0;
    const q = new WorkQueue({
      scheduler,
      reconcile: () => {
        runs++;
        return fail ? Promise.reject(new Error('boom')) : Promise.resolve();
      },
    });
    q.add('a');
    await tick();
    expect(scheduler.pending).toHaveLength(1);
    fail = false;
    q.add('a'); // runs now, not after the back-off
    await q.idle();
    expect(runs).toBe(2);
    expect(scheduler.pending[0]!.cancelled).toBe(true);
  });

  it('shutdown cancels retries, drops queued keys and waits for the run in flight', async () => {
    const scheduler = new ManualScheduler();
    const gate = deferred();
    const seen: string[] = [];
    const q = new WorkQueue({
      scheduler,
      workers: 1,
      reconcile: (k) => {
        seen.push(k);
        return k === 'slow' ? gate.promise : Promise.resolve();
      },
    });
    q.add('slow');
    q.add('later');
    await tick();
    let done = false;
    const stopping = q.shutdown().then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    gate.resolve();
    await stopping;
    q.add('after');
    await tick();
    expect(seen).toEqual(['slow']);
  });

  const apiError = (code: number): ApiException<string> =>
    new ApiException(code, 'Unknown API Status Code!', '{"kind":"Status"}', {});
  const networkError = (code: string): Error =>
    Object.assign(new Error(`connect ${code} 10.96.0.1:443`), { code });

  it.each<[string, 'retried' | 'reported', Error]>([
    ['400 BadRequest', 'reported', apiError(400)],
    ['403 Forbidden', 'reported', apiError(403)],
    ['422 Invalid', 'reported', apiError(422)],
    ['404 NotFound (the reconcile decides; the queue retries)', 'retried', apiError(404)],
    ['409 Conflict', 'retried', apiError(409)],
    ['429 TooManyRequests', 'retried', apiError(429)],
    ['500 InternalError', 'retried', apiError(500)],
    ['503 ServiceUnavailable', 'retried', apiError(503)],
    ['ECONNREFUSED', 'retried', networkError('ECONNREFUSED')],
    ['ETIMEDOUT', 'retried', networkError('ETIMEDOUT')],
    ['AbortError', 'retried', new DOMException('aborted', 'AbortError')],
    ['a plain Error', 'retried', new Error('boom')],
  ])('a failure with %s is %s', async (_what, outcome, failure) => {
    const scheduler = new ManualScheduler();
    const retried: [string, number, number][] = [];
    const reported: [string, unknown, number][] = [];
    let runs = 0;
    const q = new WorkQueue({
      scheduler,
      baseDelayMs: 100,
      reconcile: () => {
        runs++;
        return Promise.reject(failure);
      },
      onError: (key, _err, attempt, retryInMs) => retried.push([key, attempt, retryInMs]),
      onPermanentError: (key, err, attempt) => reported.push([key, err, attempt]),
    });
    q.add('MaxineService/shop/web');
    await tick();
    await tick();
    if (outcome === 'reported') {
      // Reported once, no back-off pending: the queue is idle and does not run it again.
      expect(reported).toEqual([['MaxineService/shop/web', failure, 1]]);
      expect(retried).toEqual([]);
      expect(scheduler.pending).toHaveLength(0);
      await q.idle();
      expect(runs).toBe(1);
    } else {
      expect(retried).toEqual([['MaxineService/shop/web', 1, 100]]);
      expect(reported).toEqual([]);
      expect(scheduler.pending.map((p) => p.ms)).toEqual([100]);
      scheduler.fireAll();
      await tick();
      await tick();
      expect(runs).toBe(2);
      expect(retried.at(-1)).toEqual(['MaxineService/shop/web', 2, 200]);
    }
    await q.shutdown();
  });

  it('runs a permanently failed key again when it is added again, counting its failures', async () => {
    const scheduler = new ManualScheduler();
    let failure: Error | undefined = new ApiException(403, 'Forbidden', undefined, {});
    const attempts: number[] = [];
    let succeeded = 0;
    const q = new WorkQueue({
      scheduler,
      reconcile: () => {
        if (failure === undefined) {
          succeeded++;
          return Promise.resolve();
        }
        return Promise.reject(failure);
      },
      onPermanentError: (_key, _err, attempt) => attempts.push(attempt),
    });
    q.add('a');
    await q.idle();
    q.add('a'); // the object changed, or a resync: one more try, still no back-off loop
    await q.idle();
    expect(attempts).toEqual([1, 2]);
    expect(scheduler.pending).toHaveLength(0);
    failure = undefined; // RBAC fixed
    q.add('a');
    await q.idle();
    expect(succeeded).toBe(1);
    failure = new ApiException(422, 'Invalid', undefined, {});
    q.add('a');
    await q.idle();
    expect(attempts).toEqual([1, 2, 1]); // the count starts again after the success
  });

  it('takes the permanence rule from its options', async () => {
    const scheduler = new ManualScheduler();
    const reported: string[] = [];
    const q = new WorkQueue({
      scheduler,
      reconcile: (k) => Promise.reject(new Error(k)),
      isPermanent: (err) => (err as Error).message === 'hopeless',
      onPermanentError: (key) => reported.push(key),
    });
    q.add('hopeless');
    q.add('flaky');
    await tick();
    await tick();
    expect(reported).toEqual(['hopeless']);
    expect(scheduler.pending).toHaveLength(1);
    await q.shutdown();
  });
});
