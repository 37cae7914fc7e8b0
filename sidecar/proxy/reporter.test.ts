import { describe, expect, it } from '@jest/globals';
import { createLogger } from '../../common/logger.js';
import { CALL_LATENCY_BUCKETS_MS } from '../../common/wire.js';
import { bucketOf, CallReporter } from './reporter.js';

const quiet = createLogger('silent');

function reporter(over: Partial<ConstructorParameters<typeof CallReporter>[0]> = {}) {
  return new CallReporter({
    operatorUrl: 'http://127.0.0.1:1',
    source: { namespace: 'shop', name: 'web' },
    logger: quiet,
    intervalMs: 10_000,
    ...over,
  });
}
const to = (name: string, namespace = 'shop') => ({ namespace, name });

describe('bucketOf (upper bounds inclusive, then overflow)', () => {
  it.each([
    [0, 0],
    [1, 0],
    [1.01, 1],
    [7, 3],
    [10, 3],
    [10_000, CALL_LATENCY_BUCKETS_MS.length - 1],
    [10_001, CALL_LATENCY_BUCKETS_MS.length],
  ])('%p ms → bucket %p', (ms, bucket) => {
    expect(bucketOf(ms)).toBe(bucket);
  });
});

describe('CallReporter aggregation', () => {
  it('counts calls and errors (5xx or no answer) per destination, in bounded memory', () => {
    const r = reporter({ maxDestinations: 2 });
    const calls: [string, number][] = [
      ['orders', 200],
      ['orders', 503],
      ['orders', 404],
      ['cart', 502],
      ['ledger', 200], // a third destination: over the bound
      ['ledger', 200],
      ['Bad_Name', 200], // never a service: ignored
    ];
    for (const [name, status] of calls)
      r.callEnded({ destination: to(name), status, durationMs: 3, tries: 1 });
    const s = r.status();
    expect(s.pending).toEqual({ destinations: 2, circuits: 0 });
    expect(s.dropped.overflowCalls).toBe(2);
  });

  it('keeps the newest transitions past the bound, counting the rest', () => {
    const r = reporter({ maxCircuits: 2 });
    const states = ['closed', 'open', 'half-open', 'closed'] as const;
    for (let i = 0; i < 3; i++)
      r.circuitChanged({ destination: to('orders'), from: states[i]!, to: states[i + 1]!, at: i });
    r.circuitChanged({ destination: to('orders'), from: 'open', to: 'open', at: 9 }); // no change
    expect(r.status().pending.circuits).toBe(2);
    expect(r.status().dropped.overflowCircuits).toBe(1);
  });
});
