import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { Breakers, openTimeMs } from './breaker.js';
import type { BreakerSpec } from './breaker.js';
import type { AttemptOutcome, BreakerTransition } from './hooks.js';

const orders = { namespace: 'shop', name: 'orders' };

function spec(over: Partial<BreakerSpec> = {}): BreakerSpec {
  return { failureThreshold: 3, openSeconds: 10, backoffMultiplier: 2, halfOpenProbes: 1, ...over };
}

/** `503`, `404`, `reset`, `timeout`, `connect-failure` as attempt outcomes. */
type Short = number | 'reset' | 'timeout' | 'connect-failure';
function outcome(o: Short): AttemptOutcome {
  return typeof o === 'number'
    ? { kind: 'response', status: o }
    : { kind: o, message: `${o} happened` };
}

interface Harness {
  breakers: Breakers;
  transitions: BreakerTransition[];
  lines: Record<string, unknown>[];
  registry: Registry;
}

function harness(opts: { maxDestinations?: number; maxInstances?: number } = {}): Harness {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l));
      done();
    },
  });
  const transitions: BreakerTransition[] = [];
  const registry = new Registry();
  const breakers = new Breakers({
    log: createLogger('info', sink, 'sidecar'),
    registry,
    onTransition: (t) => transitions.push(t),
    ...opts,
  });
  return { breakers, transitions, lines, registry };
}

/** Steps of a script: admit an instance at a time (expecting the answer), or record an outcome. */
type Step =
  { admit: string; at: number; expect: boolean } | { record: string; outcome: Short; at: number };

function play(h: Harness, s: BreakerSpec | undefined, steps: Step[]): void {
  for (const step of steps) {
    if ('admit' in step) {
      const got = h.breakers.admit(orders, step.admit, s, step.at);
      expect({ step, got }).toEqual({ step, got: step.expect });
    } else h.breakers.record(orders, step.record, outcome(step.outcome), s, step.at);
  }
}

const fail = (at: number, times: number, id = 'a', o: Short = 503): Step[] =>
  Array.from({ length: times }, () => ({ record: id, outcome: o, at }));

const instanceMoves = (h: Harness) =>
  h.transitions
    .filter((t) => t.instanceId !== undefined)
    .map(
      (t) =>
        `${t.instanceId} ${t.from}→${t.to}${t.openMs === undefined ? '' : ` ${t.openMs}`} @${t.at}`,
    );

const serviceMoves = (h: Harness) =>
  h.transitions
    .filter((t) => t.instanceId === undefined)
    .map((t) => `${t.from}→${t.to}${t.openMs === undefined ? '' : ` ${t.openMs}`} @${t.at}`);

async function metric(registry: Registry, name: string): Promise<Record<string, number>> {
  const m = registry.getSingleMetric(name);
  if (m === undefined) throw new Error(`no metric ${name}`);
  const values: Record<string, number> = {};
  for (const v of (await m.get()).values)
    values[
      Object.entries(v.labels)
        .map(([k, l]) => `${k}=${String(l)}`)
        .join(',')
    ] = v.value;
  return values;
}

describe('Breakers: one instance', () => {
  it('runs the full cycle closed → open → half-open → closed', () => {
    const h = harness();
    play(h, spec(), [
      { admit: 'a', at: 0, expect: true },
      ...fail(0, 2),
      { admit: 'a', at: 0, expect: true },
      ...fail(1, 1),
      { admit: 'a', at: 1, expect: false },
      { admit: 'a', at: 10_000, expect: false },
      { admit: 'a', at: 10_001, expect: true },
      { admit: 'a', at: 10_001, expect: false },
      { record: 'a', outcome: 200, at: 10_050 },
      { admit: 'a', at: 10_051, expect: true },
      { admit: 'a', at: 10_051, expect: true },
    ]);
    expect(instanceMoves(h)).toEqual([
      'a closed→open 10000 @1',
      'a open→half-open @10001',
      'a half-open→closed @10050',
    ]);
    expect(h.breakers.state(orders, 'a')).toBe('closed');
  });

  it.each<[string, Short[], string]>([
    ['three 5xx open it', [500, 502, 503], 'open'],
    ['connect-failure, reset and timeout count', ['connect-failure', 'reset', 'timeout'], 'open'],
    ['4xx are successes and reset the count', [503, 503, 404, 503, 503], 'closed'],
    ['a 429 is a success too', [503, 503, 429, 503], 'closed'],
    ['2xx and 3xx reset the count', [503, 503, 200, 503, 301, 503, 503], 'closed'],
    ['failures must be consecutive', [503, 503, 200, 503, 503, 503], 'open'],
  ])('%s', (_what, outcomes, state) => {
    const h = harness();
    play(
      h,
      spec(),
      outcomes.map((o, i) => ({ record: 'a', outcome: o, at: i })),
    );
    expect(h.breakers.state(orders, 'a')).toBe(state);
  });

  it.each<[string, Partial<BreakerSpec>, number[]]>([
    [
      'grows by the multiplier',
      { openSeconds: 10, backoffMultiplier: 2 },
      [10, 20, 40, 80, 160, 300, 300],
    ],
    ['stops at maxOpenSeconds', { openSeconds: 10, maxOpenSeconds: 25 }, [10, 20, 25, 25]],
    ['multiplier 1 keeps it constant', { openSeconds: 7, backoffMultiplier: 1 }, [7, 7, 7]],
    ['default cap is openSeconds when longer than 300', { openSeconds: 400 }, [400, 400]],
    ['fractional multipliers', { openSeconds: 10, backoffMultiplier: 1.5 }, [10, 15, 22.5]],
  ])('open time %s', (_what, over, seconds) => {
    expect(seconds.map((_s, i) => openTimeMs(spec(over), i + 1))).toEqual(
      seconds.map((s) => s * 1000),
    );
  });

  it('a failed probe opens it again for longer, up to the cap; closing resets the open time', () => {
    const h = harness();
    const s = spec({ maxOpenSeconds: 30 });
    play(h, s, [
      ...fail(0, 3),
      { admit: 'a', at: 10_000, expect: true },
      { record: 'a', outcome: 'reset', at: 10_000 },
      { admit: 'a', at: 29_999, expect: false },
      { admit: 'a', at: 30_000, expect: true },
      { record: 'a', outcome: 503, at: 30_000 },
      { admit: 'a', at: 60_000, expect: true },
      { record: 'a', outcome: 'timeout', at: 60_000 },
      { admit: 'a', at: 89_999, expect: false },
      { admit: 'a', at: 90_000, expect: true },
      { record: 'a', outcome: 204, at: 90_000 },
      ...fail(91_000, 3),
      { admit: 'a', at: 100_999, expect: false },
      { admit: 'a', at: 101_000, expect: true },
    ]);
    expect(instanceMoves(h)).toEqual([
      'a closed→open 10000 @0',
      'a open→half-open @10000',
      'a half-open→open 20000 @10000',
      'a open→half-open @30000',
      'a half-open→open 30000 @30000',
      'a open→half-open @60000',
      'a half-open→open 30000 @60000',
      'a open→half-open @90000',
      'a half-open→closed @90000',
      'a closed→open 10000 @91000',
      'a open→half-open @101000',
    ]);
  });

  it('half-open admits exactly halfOpenProbes concurrent tries and closes when all succeed', () => {
    const h = harness();
    play(h, spec({ halfOpenProbes: 3 }), [
      ...fail(0, 3),
      { admit: 'a', at: 10_000, expect: true },
      { admit: 'a', at: 10_000, expect: true },
      { admit: 'a', at: 10_000, expect: true },
      { admit: 'a', at: 10_000, expect: false },
      { record: 'a', outcome: 200, at: 10_010 },
      { record: 'a', outcome: 200, at: 10_020 },
      // Both successes leave the slots taken: the third probe is still out.
      { admit: 'a', at: 10_030, expect: false },
      { record: 'a', outcome: 200, at: 10_040 },
      { admit: 'a', at: 10_050, expect: true },
    ]);
    expect(instanceMoves(h).slice(-1)).toEqual(['a half-open→closed @10040']);
  });

  it('one failed probe among concurrent ones reopens it; late outcomes leave the open circuit alone', () => {
    const h = harness();
    play(h, spec({ halfOpenProbes: 2 }), [
      ...fail(0, 3),
      { admit: 'a', at: 10_000, expect: true },
      { admit: 'a', at: 10_000, expect: true },
      { record: 'a', outcome: 502, at: 10_010 },
      { record: 'a', outcome: 200, at: 10_020 },
      { record: 'a', outcome: 503, at: 10_030 },
      { admit: 'a', at: 29_999, expect: false },
      { admit: 'a', at: 30_010, expect: true },
    ]);
    expect(instanceMoves(h)).toEqual([
      'a closed→open 10000 @0',
      'a open→half-open @10000',
      'a half-open→open 20000 @10010',
      'a open→half-open @30010',
    ]);
  });

  it('a probe whose outcome never comes frees its slot after the open time', () => {
    const h = harness();
    play(h, spec(), [
      ...fail(0, 3),
      { admit: 'a', at: 10_000, expect: true },
      { admit: 'a', at: 19_999, expect: false },
      { admit: 'a', at: 20_000, expect: true },
      { admit: 'a', at: 20_001, expect: false },
      { record: 'a', outcome: 200, at: 20_002 },
    ]);
    expect(h.breakers.state(orders, 'a')).toBe('closed');
  });

  it('logs one line per transition naming the destination, the instance and why', () => {
    const h = harness();
    play(h, spec(), [...fail(0, 2), { record: 'a', outcome: 'reset', at: 0 }]);
    const line = h.lines.find((l) => l.to === 'open' && l.instance === 'a');
    expect(line).toMatchObject({
      level: 'warn',
      kind: 'MaxineService',
      namespace: 'shop',
      name: 'orders',
      instance: 'a',
      from: 'closed',
      openMs: 10_000,
      reason: '3 consecutive failures (last: reset: reset happened)',
      msg: 'circuit of shop/orders instance a: closed → open because 3 consecutive failures (last: reset: reset happened)',
    });
    expect(h.lines.filter((l) => l.instance === 'a')).toHaveLength(1);
  });

  it('a throwing transition listener neither escapes nor stops the transition', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, done) {
        lines.push(c.toString());
        done();
      },
    });
    const breakers = new Breakers({
      log: createLogger('info', sink),
      onTransition: () => {
        throw new Error('listener broke');
      },
    });
    for (let i = 0; i < 3; i++) breakers.record(orders, 'a', outcome(503), spec(), 0);
    expect(breakers.state(orders, 'a')).toBe('open');
    expect(lines.join('')).toContain('the circuit transition listener failed');
  });
});

describe('Breakers: the service level', () => {
  it('opens when every instance of the service is open, half-opens and closes with them', () => {
    const h = harness();
    h.breakers.retain(orders, ['a', 'b'], 0);
    play(h, spec(), [...fail(0, 3, 'a'), ...fail(4000, 3, 'b')]);
    expect(h.breakers.state(orders)).toBe('open');
    play(h, spec(), [
      { admit: 'a', at: 10_000, expect: true },
      { admit: 'b', at: 10_001, expect: false },
      { record: 'a', outcome: 200, at: 10_500 },
    ]);
    // The service's open time is the wait until its first instance may be probed.
    expect(serviceMoves(h)).toEqual([
      'closed→open 6000 @4000',
      'open→half-open @10000',
      'half-open→closed @10500',
    ]);
    expect(h.breakers.state(orders)).toBe('closed');
  });

  it('an instance never tried keeps the service closed', () => {
    const h = harness();
    h.breakers.retain(orders, ['a', 'b', 'c'], 0);
    play(h, spec(), [...fail(0, 3, 'a'), ...fail(0, 3, 'b')]);
    expect(h.breakers.state(orders)).toBe('closed');
    expect(serviceMoves(h)).toEqual([]);
  });

  it('before any retain, the instances tried are the service', () => {
    const h = harness();
    play(h, spec(), fail(0, 3, 'a'));
    expect(h.breakers.state(orders)).toBe('open');
  });

  it('before any retain, an instance that only succeeded keeps the service closed', () => {
    const h = harness();
    play(h, spec(), [{ record: 'b', outcome: 200, at: 0 }, ...fail(0, 3, 'a')]);
    expect(h.breakers.state(orders, 'a')).toBe('open');
    expect(h.breakers.state(orders)).toBe('closed');
    expect(serviceMoves(h)).toEqual([]);
  });

  it('retain forgets instances that left and re-judges the service', async () => {
    const h = harness();
    h.breakers.retain(orders, ['a', 'b'], 0);
    play(h, spec(), [...fail(0, 3, 'a'), ...fail(0, 2, 'b')]);
    expect(h.breakers.state(orders)).toBe('closed');
    h.breakers.retain(orders, ['a'], 5);
    expect(serviceMoves(h)).toEqual(['closed→open 9995 @5']);
    h.breakers.retain(orders, ['c'], 6);
    expect(h.breakers.state(orders, 'a')).toBe('closed');
    expect(h.breakers.state(orders)).toBe('closed');
    expect(serviceMoves(h)).toEqual(['closed→open 9995 @5', 'open→closed @6']);
    expect(await metric(h.registry, 'maxine_sidecar_circuit_evictions_total')).toMatchObject({
      'reason=left': 2,
    });
    h.breakers.forget(orders, 7);
    expect(await metric(h.registry, 'maxine_sidecar_circuits_tracked')).toEqual({
      'kind=destinations': 0,
      'kind=instances': 0,
    });
  });
});

describe('Breakers: spec and bounds', () => {
  it('without circuitBreaker nothing is broken, and open circuits close when it is removed', () => {
    const h = harness();
    play(h, undefined, [...fail(0, 50), { admit: 'a', at: 0, expect: true }]);
    expect(h.transitions).toEqual([]);
    play(h, spec(), fail(1, 3));
    expect(h.breakers.state(orders, 'a')).toBe('open');
    play(h, undefined, [{ admit: 'a', at: 2, expect: true }]);
    expect(instanceMoves(h)).toEqual(['a closed→open 10000 @1', 'a open→closed @2']);
    expect(serviceMoves(h)).toEqual(['closed→open 10000 @1', 'open→closed @2']);
    play(h, spec(), [
      { admit: 'a', at: 3, expect: true },
      ...fail(3, 2),
      { admit: 'a', at: 3, expect: true },
    ]);
  });

  it('a spec change applies to the next outcome', () => {
    const h = harness();
    play(h, spec({ failureThreshold: 5 }), fail(0, 2));
    play(h, spec({ failureThreshold: 3 }), fail(0, 1));
    expect(h.breakers.state(orders, 'a')).toBe('open');
  });

  it('keeps at most maxInstances per destination, forgetting the least recently used closed one', async () => {
    const h = harness({ maxInstances: 2 });
    const s = spec({ failureThreshold: 2 });
    play(h, s, [...fail(0, 1, 'a'), ...fail(1, 1, 'b')]);
    play(h, s, [...fail(2, 1, 'a'), ...fail(3, 1, 'c')]);
    // 'a' opened (2 failures); 'b' was the only closed entry and is gone: its count restarts.
    play(h, s, fail(4, 1, 'b'));
    expect(['a', 'b', 'c'].map((id) => h.breakers.state(orders, id))).toEqual([
      'open',
      'closed',
      'closed',
    ]);
    expect(await metric(h.registry, 'maxine_sidecar_circuit_evictions_total')).toMatchObject({
      'reason=lru-closed': 2,
    });
  });

  it('with every tracked circuit open it forgets the least recently used one and says so', async () => {
    const h = harness({ maxInstances: 2 });
    const s = spec({ failureThreshold: 1 });
    play(h, s, [...fail(0, 1, 'a'), ...fail(1, 1, 'b'), ...fail(2, 1, 'c')]);
    expect(['a', 'b', 'c'].map((id) => h.breakers.state(orders, id))).toEqual([
      'closed',
      'open',
      'open',
    ]);
    expect(await metric(h.registry, 'maxine_sidecar_circuit_evictions_total')).toMatchObject({
      'reason=lru-open': 1,
    });
    expect(
      h.lines.some((l) => l.level === 'warn' && l.instance === 'a' && l.maxInstances === 2),
    ).toBe(true);
    expect(instanceMoves(h)).toContain('a open→closed @2');
  });

  it('with every tracked destination open it forgets the least recently used one, closing it', () => {
    const h = harness({ maxDestinations: 1 });
    const s = spec({ failureThreshold: 1 });
    h.breakers.record(orders, 'a', outcome(503), s, 0);
    h.breakers.record({ namespace: 'shop', name: 'cart' }, 'a', outcome(503), s, 1);
    expect(h.breakers.state(orders, 'a')).toBe('closed');
    expect(h.breakers.state({ namespace: 'shop', name: 'cart' }, 'a')).toBe('open');
    expect(
      h.transitions.map((t) => `${t.destination.name} ${t.instanceId ?? '-'} ${t.from}→${t.to}`),
    ).toEqual([
      'orders a closed→open',
      'orders - closed→open',
      'orders a open→closed',
      'orders - open→closed',
      'cart a closed→open',
      'cart - closed→open',
    ]);
  });

  it('keeps at most maxDestinations, forgetting idle ones first', async () => {
    const h = harness({ maxDestinations: 2 });
    const s = spec({ failureThreshold: 1 });
    const ref = (name: string) => ({ namespace: 'shop', name });
    h.breakers.record(ref('x'), 'a', outcome(503), s, 0);
    h.breakers.retain(ref('y'), ['a'], 0);
    h.breakers.record(ref('z'), 'a', outcome(503), s, 0);
    expect(h.breakers.state(ref('x'), 'a')).toBe('open');
    expect(h.breakers.state(ref('z'), 'a')).toBe('open');
    expect(await metric(h.registry, 'maxine_sidecar_circuits_tracked')).toEqual({
      'kind=destinations': 2,
      'kind=instances': 2,
    });
    expect(await metric(h.registry, 'maxine_sidecar_circuit_evictions_total')).toMatchObject({
      'reason=lru-closed': 1,
    });
  });

  it('counts transitions and gauges open circuits', async () => {
    const h = harness();
    h.breakers.retain(orders, ['a', 'b'], 0);
    play(h, spec(), [
      ...fail(0, 3, 'a'),
      ...fail(0, 3, 'b'),
      { admit: 'a', at: 10_000, expect: true },
    ]);
    expect(await metric(h.registry, 'maxine_sidecar_circuit_transitions_total')).toEqual({
      'level=instance,to=open': 2,
      'level=instance,to=half-open': 1,
      'level=service,to=open': 1,
      'level=service,to=half-open': 1,
    });
    expect(await metric(h.registry, 'maxine_sidecar_open_circuits')).toEqual({
      'level=instance,state=open': 1,
      'level=instance,state=half-open': 1,
      'level=service,state=open': 0,
      'level=service,state=half-open': 1,
    });
  });
});

describe('Breakers tracking', () => {
  it('tracks a destination once a try was recorded or it was retained, and lists it until forgotten', () => {
    const breakers = new Breakers({ log: createLogger('silent') });
    const orders = { namespace: 'shop', name: 'orders' };
    const cart = { namespace: 'shop', name: 'cart' };
    const spec = { failureThreshold: 1, openSeconds: 1, backoffMultiplier: 2, halfOpenProbes: 1 };
    expect(breakers.isTracked(orders)).toBe(false);
    expect(breakers.admit(orders, 'a', spec, 0)).toBe(true);
    expect(breakers.isTracked(orders)).toBe(false);
    // Membership unknown: the first recorded try starts tracking (that is how the service-level
    // breaker learns the instance exists), so the sidecar then keeps its members up to date.
    breakers.record(orders, 'a', { kind: 'response', status: 200 }, spec, 0);
    breakers.retain(cart, ['x'], 0);
    expect(breakers.isTracked(orders)).toBe(true);
    expect(breakers.tracked()).toEqual(expect.arrayContaining([orders, cart]));
    breakers.forget(cart, 1);
    expect(breakers.isTracked(cart)).toBe(false);
  });
});
