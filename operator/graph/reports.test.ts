import { describe, expect, it } from '@jest/globals';
import { callReportSchema, CALL_LATENCY_BUCKETS_MS, maxineEventSchema } from '../../common/wire.js';
import type { CallReportInput, Instance } from '../../common/wire.js';
import { planReport } from './reports.js';

const zeros = () => new Array<number>(CALL_LATENCY_BUCKETS_MS.length + 1).fill(0);
const latency = (calls: number) => {
  const h = zeros();
  h[2] = calls;
  return h;
};
const instance: Instance = {
  id: 'shop.orders-1.orders',
  service: { namespace: 'shop', name: 'orders' },
  host: '10.0.0.1',
  port: 80,
  weight: 1,
  metadata: {},
  health: { status: 'passing' },
  source: 'registration',
  registeredAt: '2026-01-01T00:00:00.000Z',
};
const known = new Set(['shop/orders', 'shop/cart']);
const ctx = {
  knows: (s: { namespace: string; name: string }) => known.has(`${s.namespace}/${s.name}`),
  instance: (id: string) => (id === instance.id ? instance : undefined),
  pod: 'web-1',
};

function report(over: Partial<CallReportInput>) {
  return callReportSchema.parse({
    source: { namespace: 'shop', name: 'web' },
    edges: [],
    ...over,
  });
}

describe('callReportSchema', () => {
  const edge = {
    destination: { namespace: 'shop', name: 'orders' },
    calls: 3,
    errors: 1,
    latencyMs: latency(3),
  };
  it.each([
    ['a good report', { edges: [edge] }, true],
    ['errors above calls', { edges: [{ ...edge, errors: 4 }] }, false],
    ['buckets not adding up to calls', { edges: [{ ...edge, latencyMs: latency(2) }] }, false],
    ['a histogram of the wrong length', { edges: [{ ...edge, latencyMs: [3] }] }, false],
    ['an unknown field', { edges: [{ ...edge, extra: 1 }] }, false],
    [
      'a destination that is no DNS label',
      { edges: [{ ...edge, destination: { namespace: 'shop', name: 'Or"ders' } }] },
      false,
    ],
    ['too many edges', { edges: new Array(257).fill(edge) }, false],
    [
      'a transition to the same state',
      { circuits: [{ destination: edge.destination, from: 'open', to: 'open', at: 1 }] },
      false,
    ],
    ['a negative count', { edges: [{ ...edge, calls: -1 }] }, false],
  ])('%s', (_name, over, ok) => {
    const parsed = callReportSchema.safeParse({
      source: { namespace: 'shop', name: 'web' },
      edges: [],
      ...over,
    });
    expect(parsed.success).toBe(ok);
  });
});

describe('planReport', () => {
  it('keeps edges to known destinations and ignores the rest', () => {
    const plan = planReport(
      report({
        edges: [
          {
            destination: { namespace: 'shop', name: 'orders' },
            calls: 2,
            errors: 0,
            latencyMs: latency(2),
          },
          {
            destination: { namespace: 'shop', name: 'ghost' },
            calls: 2,
            errors: 0,
            latencyMs: latency(2),
          },
          {
            destination: { namespace: 'shop', name: 'cart' },
            calls: 0,
            errors: 0,
            latencyMs: zeros(),
          },
        ],
      }),
      ctx,
    );
    expect(plan.edges.map((e) => e.destination.name)).toEqual(['orders']);
    expect(plan.ignored).toBe(1);
  });

  it.each([
    [
      'a per-instance transition of a known instance carries the instance',
      {
        destination: { namespace: 'shop', name: 'orders' },
        instanceId: instance.id,
        from: 'closed',
        to: 'open',
        openMs: 5000,
        at: 10,
      },
      { instance, data: { from: 'closed', to: 'open', openMs: 5000, instanceId: instance.id } },
    ],
    [
      'the service-level breaker',
      {
        destination: { namespace: 'shop', name: 'orders' },
        from: 'closed',
        to: 'open',
        openMs: 1,
        at: 10,
      },
      { data: { from: 'closed', to: 'open', openMs: 1 } },
    ],
  ] as const)('%s', (_name, circuit, expected) => {
    const plan = planReport(report({ circuits: [circuit] }), ctx);
    expect(plan.events).toHaveLength(1);
    const event = plan.events[0];
    expect(event).toMatchObject({
      type: 'circuit_state_changed',
      ...expected,
      data: {
        ...expected.data,
        reporter: { service: { namespace: 'shop', name: 'web' }, pod: 'web-1' },
      },
    });
    if (!('instance' in expected)) expect(event?.instance).toBeUndefined();
    // What the log will send parses as the event-stream schema, losslessly.
    const sent = JSON.parse(JSON.stringify({ seq: 1, time: '2026-01-01T00:00:00.000Z', ...event }));
    const parsed = maxineEventSchema.safeParse(sent);
    expect(parsed.error?.issues ?? []).toEqual([]);
    expect(JSON.parse(JSON.stringify(parsed.data))).toEqual(sent);
  });

  it.each([
    ['an instance the registry does not know', 'gone-1', 'orders'],
    ["another service's instance", instance.id, 'cart'],
  ] as const)(
    'refuses a transition naming %s, counted apart from unknown destinations',
    (_name, instanceId, destination) => {
      const plan = planReport(
        report({
          circuits: [
            {
              destination: { namespace: 'shop', name: destination },
              instanceId,
              from: 'closed',
              to: 'open',
              at: 10,
            },
          ],
        }),
        ctx,
      );
      expect(plan.events).toEqual([]);
      expect(plan.foreignInstances).toBe(1);
      expect(plan.ignored).toBe(0);
    },
  );

  it('orders transitions by time and ignores those to unknown destinations', () => {
    const plan = planReport(
      report({
        circuits: [
          {
            destination: { namespace: 'shop', name: 'orders' },
            from: 'open',
            to: 'half-open',
            at: 20,
          },
          { destination: { namespace: 'shop', name: 'ghost' }, from: 'closed', to: 'open', at: 15 },
          {
            destination: { namespace: 'shop', name: 'orders' },
            from: 'closed',
            to: 'open',
            at: 10,
          },
        ],
      }),
      ctx,
    );
    expect(plan.events.map((e) => e.data.to)).toEqual(['open', 'half-open']);
    expect(plan.ignored).toBe(1);
  });
});
