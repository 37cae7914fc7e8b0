/**
 * The sidecar's call reporter against a real operator (authentication on): observed calls
 * reach the dependency graph, a circuit transition goes out soon after it happens and reaches
 * event-stream subscribers, a report refused for a while is kept and delivered once accepted,
 * and what cannot be delivered in time (or is refused as invalid) is dropped and counted.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { MaxineEvent } from '../../common/wire.js';
import { createLogger } from '../../common/logger.js';
import { CallReporter } from '../../sidecar/proxy/reporter.js';
import type { ReporterOptions } from '../../sidecar/proxy/reporter.js';
import { call, lockedDown, writeTokens } from '../helpers/auth.js';
import { eventually, logSink, startOperator } from '../helpers/operator.js';
import type { LogLine, TestOperator } from '../helpers/operator.js';

const TOKENS = { root: 'root-token-0123456789abcdef', web: 'web-sidecar-token-0123456789' };

const RESOURCES = {
  'services.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  dependencies: [{ name: orders }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec: {}
`,
  'acls.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: web-workload, namespace: shop }
spec:
  subjects: [{ kind: User, name: web }]
  rules:
    - services: ['shop/web']
      verbs: [register]
    # The services it calls: a report may name only destinations its caller may know.
    - services: ['shop/*']
      verbs: [discover]
`,
};

let op: TestOperator;
let work: string;
const running: CallReporter[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-reporter-'));
  const staticTokensFile = await writeTokens(work, { root: TOKENS.root, web: TOKENS.web });
  op = await startOperator({ files: RESOURCES, config: lockedDown(staticTokensFile) });
});
afterAll(async () => {
  for (const r of running) await r.stop();
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

function reporter(over: Partial<ReporterOptions> = {}): { r: CallReporter; logs: LogLine[] } {
  const { sink, logs } = logSink();
  const r = new CallReporter({
    operatorUrl: op.url,
    source: { namespace: 'shop', name: 'web' },
    pod: 'web-1',
    logger: createLogger('debug', sink, 'sidecar'),
    token: () => Promise.resolve(TOKENS.web),
    intervalMs: 60_000,
    ...over,
  });
  running.push(r);
  return { r, logs };
}

type Edge = { source: string; destination: string; calls: number; errors: number };
async function edge(destination: string): Promise<Edge | undefined> {
  const graph = await call(op.url, 'GET', '/api/v1/graph', { token: TOKENS.root });
  return (graph.body.edges as Edge[]).find(
    (e) => e.source === 'shop/web' && e.destination === destination,
  );
}

const orders = { namespace: 'shop', name: 'orders' };

describe('CallReporter → operator', () => {
  it('reports observed calls on its interval; the graph shows the edge', async () => {
    const { r } = reporter({ intervalMs: 100 });
    for (const status of [200, 200, 500, 200])
      r.callEnded({ destination: orders, status, durationMs: 4, tries: 1 });
    r.start();
    const seen = await eventually(
      async () => {
        const e = await edge('shop/orders');
        return e !== undefined && e.calls >= 4 ? e : undefined;
      },
      5000,
      'the observed edge',
    );
    expect(seen).toMatchObject({ declared: true, observed: true, calls: 4, errors: 1 });
    expect(r.status()).toMatchObject({ reports: 1, failures: 0 });
    await r.stop();
  });

  it('sends a circuit transition soon, and subscribers see circuit_state_changed', async () => {
    const ws = new WebSocket(`${op.wsUrl}/api/v1/events?types=circuit_state_changed`, {
      headers: { authorization: `Bearer ${TOKENS.root}` },
    });
    const events: MaxineEvent[] = [];
    ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as MaxineEvent));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    try {
      // A transition is taken only for an instance its destination has.
      const registered = await call(op.url, 'POST', '/api/v1/instances', {
        token: TOKENS.root,
        body: { id: 'orders-2', service: 'orders', namespace: 'shop', host: '10.0.0.2', port: 80 },
      });
      expect(registered.status).toBe(201);
      const { r } = reporter({ intervalMs: 60_000, transitionDelayMs: 50 });
      r.start();
      r.circuitChanged({
        destination: orders,
        instanceId: 'orders-2',
        from: 'closed',
        to: 'open',
        openMs: 2000,
        at: Date.now(),
      });
      const event = await eventually(
        () => Promise.resolve(events.find((e) => e.type === 'circuit_state_changed')),
        3000,
        'circuit_state_changed well before the 60 s interval',
      );
      expect(event).toMatchObject({
        service: orders,
        data: {
          from: 'closed',
          to: 'open',
          openMs: 2000,
          instanceId: 'orders-2',
          reporter: { service: { namespace: 'shop', name: 'web' }, pod: 'web-1' },
        },
      });
      await r.stop();
    } finally {
      ws.close();
    }
  });

  it('keeps a refused report and delivers it, merged, once the operator accepts it', async () => {
    let token = 'wrong-token-0123456789abcdef';
    const { r, logs } = reporter({ token: () => Promise.resolve(token) });
    r.start();
    const cart = { namespace: 'shop', name: 'cart' };
    r.callEnded({ destination: cart, status: 200, durationMs: 1, tries: 1 });
    await r.flush();
    expect(r.status()).toMatchObject({ failures: 1, pending: { destinations: 1 } });
    expect(r.status().lastError).toMatch(/401 UNAUTHENTICATED/);
    expect(logs.some((l) => l.msg.includes('refused a call report') && l.status === 401)).toBe(
      true,
    );
    r.callEnded({ destination: cart, status: 503, durationMs: 1, tries: 1 });
    token = TOKENS.web;
    await r.flush();
    expect(r.status()).toMatchObject({ reports: 1, pending: { destinations: 0 } });
    expect(await edge('shop/cart')).toMatchObject({ calls: 2, errors: 1, declared: false });
    await r.stop();
  });

  it('drops (and counts) what the operator could not take in time', async () => {
    let now = 1_000_000;
    const { r, logs } = reporter({
      operatorUrl: 'http://127.0.0.1:1',
      dropAfterMs: 30_000,
      now: () => now,
    });
    r.start();
    for (let i = 0; i < 3; i++)
      r.callEnded({ destination: orders, status: 200, durationMs: 1, tries: 1 });
    r.circuitChanged({ destination: orders, from: 'closed', to: 'open', at: now });
    await r.flush();
    expect(r.status()).toMatchObject({ failures: 1, pending: { destinations: 1, circuits: 1 } });
    now += 31_000;
    await r.flush();
    expect(r.status()).toMatchObject({
      failures: 2,
      pending: { destinations: 0, circuits: 0 },
      dropped: { staleCalls: 3, staleCircuits: 1 },
    });
    expect(logs.some((l) => l.msg.includes('dropped call reports') && l.calls === 3)).toBe(true);
    await r.stop();
  });

  it('keeps its bounds when calls made during a failed report name other destinations', async () => {
    let release!: () => void;
    let asked!: () => void;
    const tokenAsked = new Promise<void>((resolve) => (asked = resolve));
    const gate = new Promise<string>((resolve) => (release = () => resolve(TOKENS.web)));
    const { r } = reporter({
      operatorUrl: 'http://127.0.0.1:1',
      maxDestinations: 2,
      maxCircuits: 2,
      token: () => {
        asked();
        return gate;
      },
    });
    r.start();
    const hit = (name: string) =>
      r.callEnded({
        destination: { namespace: 'shop', name },
        status: 200,
        durationMs: 1,
        tries: 1,
      });
    const flip = (at: number) =>
      r.circuitChanged({ destination: orders, from: 'closed', to: 'open', at });
    hit('d1');
    hit('d2');
    flip(1);
    const sent = r.flush();
    await tokenAsked; // the batch is on its way: what follows lands in a new one
    hit('d1');
    hit('d3');
    hit('d4');
    flip(2);
    flip(3);
    release();
    await sent;
    expect(r.status()).toMatchObject({
      failures: 1,
      pending: { destinations: 2, circuits: 2 },
      dropped: { overflowCalls: 2, overflowCircuits: 1 },
    });
    await r.stop();
  });

  it('clamps what a breaker reports into what the operator accepts', async () => {
    const { r } = reporter();
    r.start();
    r.circuitChanged({ destination: orders, from: 'closed', to: 'open', openMs: 1e12, at: -5.5 });
    await r.flush();
    expect(r.status()).toMatchObject({ reports: 1, dropped: { refusedCircuits: 0 } });
    await r.stop();
  });

  it('drops (and counts) a report the operator refuses as invalid (400)', async () => {
    const { r, logs } = reporter({ pod: 'not a pod name!' });
    r.start();
    r.callEnded({ destination: orders, status: 200, durationMs: 1, tries: 1 });
    await r.flush();
    expect(r.status()).toMatchObject({
      pending: { destinations: 0 },
      dropped: { refusedCalls: 1 },
    });
    expect(logs).toContainEqual(
      expect.objectContaining({ level: 'error', status: 400, code: 'VALIDATION_FAILED' }),
    );
    await r.stop();
  });
});
