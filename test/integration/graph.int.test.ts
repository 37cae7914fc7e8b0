/**
 * The dependency graph end to end on a real operator with authentication on (no anonymous
 * callers, ACL default deny): a caller reports its observed calls as its own service, and
 * `GET /api/v1/graph` shows them merged with declared dependencies and intentions; a report
 * for another service is refused, a malformed one answers 400 with the issues, and a circuit
 * transition reaches event-stream subscribers as `circuit_state_changed`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { CALL_LATENCY_BUCKETS_MS } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import { call, lockedDown, writeTokens } from '../helpers/auth.js';
import { eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const TOKENS = {
  root: 'root-token-0123456789abcdef',
  web: 'web-sidecar-token-0123456789',
  viewer: 'viewer-token-0123456789abcd',
  banker: 'banker-token-0123456789abcd',
};

const RESOURCES = {
  'services.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  dependencies: [{ name: orders }, { name: cart }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  dependencies: [{ name: web }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ledger, namespace: bank }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: payroll, namespace: hr }
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
    - services: ['shop/*']
      verbs: [read, discover]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: web-calls-ledger, namespace: bank }
spec:
  subjects: [{ kind: User, name: web }]
  rules:
    - services: ['bank/ledger']
      verbs: [discover]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: banker, namespace: bank }
spec:
  subjects: [{ kind: User, name: banker }]
  rules:
    - services: ['bank/*']
      verbs: [read]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: viewer, namespace: shop }
spec:
  subjects: [{ kind: User, name: viewer }]
  rules:
    - services: ['shop/web', 'shop/orders']
      verbs: [read]
`,
  'intentions.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: cart, namespace: shop }
spec:
  destination: { name: cart }
  sources:
    - { name: web, action: deny }
`,
};

let op: TestOperator;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-graph-'));
  const staticTokensFile = await writeTokens(work, {
    root: TOKENS.root,
    web: TOKENS.web,
    viewer: TOKENS.viewer,
    banker: TOKENS.banker,
  });
  op = await startOperator({ files: RESOURCES, config: lockedDown(staticTokensFile) });
});
afterAll(async () => {
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

function latency(calls: number): number[] {
  const h = new Array<number>(CALL_LATENCY_BUCKETS_MS.length + 1).fill(0);
  h[3] = calls; // 5–10 ms
  return h;
}

const report = (over: Record<string, unknown> = {}) => ({
  source: { namespace: 'shop', name: 'web' },
  edges: [
    {
      destination: { namespace: 'shop', name: 'orders' },
      calls: 30,
      errors: 3,
      latencyMs: latency(30),
    },
    {
      destination: { namespace: 'bank', name: 'ledger' },
      calls: 6,
      errors: 0,
      latencyMs: latency(6),
    },
  ],
  ...over,
});

async function registerOrders(ids: string[]): Promise<void> {
  for (const id of ids) {
    const res = await call(op.url, 'POST', '/api/v1/instances', {
      token: TOKENS.root,
      body: {
        id,
        service: 'orders',
        namespace: 'shop',
        host: '10.0.0.1',
        port: 80,
        ttlSeconds: 3600,
      },
    });
    expect([200, 201]).toContain(res.status);
  }
}

describe('POST /api/v1/reports', () => {
  it("accepts a report from the source service's own identity; the graph shows the edges", async () => {
    const res = await call(op.url, 'POST', '/api/v1/reports', {
      token: TOKENS.web,
      body: report(),
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      accepted: { edges: 2, circuits: 0 },
      ignored: 0,
      refused: 0,
      throttled: 0,
    });

    const graph = await call(op.url, 'GET', '/api/v1/graph', { token: TOKENS.root });
    expect(graph.status).toBe(200);
    const edge = (graph.body.edges as { source: string; destination: string }[]).find(
      (e) => e.source === 'shop/web' && e.destination === 'shop/orders',
    );
    expect(edge).toMatchObject({
      declared: true,
      observed: true,
      allowed: true,
      calls: 30,
      errors: 3,
      rps: 0.1,
      errorRate: 0.1,
      p50Ms: 7.5,
    });
    expect(graph.body.undeclared).toContainEqual({
      source: 'shop/web',
      destination: 'bank/ledger',
    });
    expect(graph.body.denied).toContainEqual({ source: 'shop/web', destination: 'shop/cart' });
    expect(graph.body.cycles).toContainEqual(['shop/orders', 'shop/web']);
  });

  it.each([
    ['for another service', { source: { namespace: 'shop', name: 'orders' } }, 403, 'FORBIDDEN'],
    [
      'for a service of another namespace',
      { source: { namespace: 'bank', name: 'ledger' } },
      403,
      'FORBIDDEN',
    ],
  ])('refuses a report %s (403) and records nothing', async (_name, over, status, code) => {
    const res = await call(op.url, 'POST', '/api/v1/reports', {
      token: TOKENS.web,
      body: report({
        ...over,
        edges: [
          {
            destination: { namespace: 'shop', name: 'cart' },
            calls: 1,
            errors: 0,
            latencyMs: latency(1),
          },
        ],
      }),
    });
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    const graph = await call(op.url, 'GET', '/api/v1/graph', { token: TOKENS.root });
    const forged = (graph.body.edges as { destination: string; observed: boolean }[]).filter(
      (e) => e.destination === 'shop/cart' && e.observed,
    );
    expect(forged).toEqual([]);
  });

  it('takes a report at its bounds: 256 edges with the longest names and largest counts', async () => {
    const big = 999_999_986; // 14 buckets: 13 of 71_428_570 and one of 71_428_576 add up
    const buckets = [...new Array<number>(13).fill(71_428_570), 71_428_576];
    expect(buckets.reduce((a, b) => a + b, 0)).toBe(big);
    const long = (i: number) => `x${String(i).padStart(3, '0')}${'a'.repeat(59)}`;
    const body = report({
      edges: Array.from({ length: 256 }, (_, i) => ({
        destination: { namespace: long(i), name: long(i) },
        calls: big,
        errors: big,
        latencyMs: buckets,
      })),
    });
    expect(JSON.stringify(body).length).toBeGreaterThan(64 * 1024);
    const res = await call(op.url, 'POST', '/api/v1/reports', { token: TOKENS.web, body });
    expect(res.status).toBe(202);
    // Destinations the registry does not know are ignored, not planted in the graph.
    expect(res.body).toMatchObject({ accepted: { edges: 0 }, ignored: 256 });
  });

  it('answers 401 without a token', async () => {
    const res = await call(op.url, 'POST', '/api/v1/reports', { body: report() });
    expect(res.status).toBe(401);
  });

  it.each([
    ['an unknown field', report({ extra: true }), ''],
    [
      'errors above calls',
      report({
        edges: [
          {
            destination: { namespace: 'shop', name: 'orders' },
            calls: 1,
            errors: 2,
            latencyMs: latency(1),
          },
        ],
      }),
      'edges[0].errors',
    ],
    [
      'a histogram of the wrong length',
      report({
        edges: [
          {
            destination: { namespace: 'shop', name: 'orders' },
            calls: 1,
            errors: 0,
            latencyMs: [1],
          },
        ],
      }),
      'edges[0].latencyMs',
    ],
    [
      'a bad circuit state',
      report({
        circuits: [
          { destination: { namespace: 'shop', name: 'orders' }, from: 'closed', to: 'ajar', at: 1 },
        ],
      }),
      'circuits[0].to',
    ],
    ['not an object', [1, 2], ''],
  ])('answers 400 with the issues for %s', async (_name, body, path) => {
    const res = await call(op.url, 'POST', '/api/v1/reports', { token: TOKENS.web, body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    const issues = res.body.error.details.issues as { path: string }[];
    expect(issues.map((i) => i.path)).toContain(path);
  });

  it('refuses a body over 256 KiB (413) and text that is not JSON (400)', async () => {
    const huge = await fetch(`${op.url}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.web}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(300 * 1024) }),
    });
    expect(huge.status).toBe(413);
    const bad = await fetch(`${op.url}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.web}`, 'content-type': 'application/json' },
      body: '{"source":',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('MALFORMED_JSON');
  });

  it('turns a circuit transition into circuit_state_changed on the event stream', async () => {
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
      await registerOrders(['orders-1']);
      const res = await call(op.url, 'POST', '/api/v1/reports', {
        token: TOKENS.web,
        body: report({
          edges: [],
          pod: 'web-1',
          circuits: [
            {
              destination: { namespace: 'shop', name: 'orders' },
              instanceId: 'orders-1',
              from: 'closed',
              to: 'open',
              openMs: 5000,
              at: Date.now(),
            },
          ],
        }),
      });
      expect(res.status).toBe(202);
      const event = await eventually(
        () => Promise.resolve(events.find((e) => e.type === 'circuit_state_changed')),
        3000,
        'circuit_state_changed',
      );
      expect(event).toMatchObject({
        service: { namespace: 'shop', name: 'orders' },
        data: {
          from: 'closed',
          to: 'open',
          openMs: 5000,
          instanceId: 'orders-1',
          reporter: { service: { namespace: 'shop', name: 'web' }, pod: 'web-1' },
        },
      });
      expect(op.logs).toContainEqual(
        expect.objectContaining({
          msg: 'circuit state changed',
          namespace: 'shop',
          name: 'orders',
          from: 'closed',
          to: 'open',
          reporter: 'shop/web',
        }),
      );
      const metrics = await call(op.url, 'GET', '/metrics', { token: TOKENS.root });
      expect(metrics.body).toMatch(/maxine_circuit_transitions_total\{to="open"\} 1/);
      expect(metrics.body).toMatch(/maxine_graph_observed_edges 2\n/);
      expect(metrics.body).toMatch(/maxine_graph_reports_total\{outcome="refused"\} 2\n/);
      expect(metrics.body).toMatch(/maxine_graph_reports_total\{outcome="invalid"\} [1-9]/);
      expect(metrics.body).toMatch(/maxine_graph_ignored_total 256\n/);
    } finally {
      ws.close();
    }
  });
});

describe('circuit transitions past the rate of a caller', () => {
  it('are held and coalesced, and the last state of every circuit still reaches subscribers', async () => {
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
      // 40 instances flap through 5 or 6 transitions each (220, past the burst of 200): the
      // even ones end open, the odd ones closed.
      const ids = Array.from({ length: 40 }, (_, i) => `orders-${i}`);
      await registerOrders(ids);
      const seq = ['closed', 'open', 'half-open', 'open', 'half-open', 'closed', 'open'] as const;
      const last = (i: number) => (i % 2 === 0 ? 6 : 5);
      let accepted = 0;
      let throttled = 0;
      let ignored = 0;
      for (let k = 0; k < 6; k++) {
        const circuits = ids
          .map((instanceId, i) => ({ instanceId, i }))
          .filter(({ i }) => k < last(i))
          .map(({ instanceId }) => ({
            destination: { namespace: 'shop', name: 'orders' },
            instanceId,
            from: seq[k],
            to: seq[k + 1],
            at: k,
          }));
        // One transition names an instance orders does not have: no event, counted.
        if (k === 0) {
          circuits.push({ ...circuits[0]!, instanceId: 'not-an-orders-instance' });
        }
        const res = await call(op.url, 'POST', '/api/v1/reports', {
          token: TOKENS.web,
          body: report({ edges: [], pod: 'web-2', circuits }),
        });
        expect(res.status).toBe(202);
        accepted += res.body.accepted.circuits as number;
        throttled += res.body.throttled as number;
        ignored += res.body.ignored as number;
      }
      expect(ignored).toBe(1);
      expect(accepted + throttled).toBe(220);
      expect(throttled).toBeGreaterThan(5);
      expect(op.logs).toContainEqual(
        expect.objectContaining({
          msg: 'circuit transitions reported too fast; the latest state of each circuit is emitted later',
          name: 'web',
        }),
      );
      const lastSeen = () => {
        const state = new Map<string, string>();
        for (const e of events) {
          if (e.type !== 'circuit_state_changed' || e.data.reporter.pod !== 'web-2') continue;
          state.set(e.data.instanceId ?? '', e.data.to);
        }
        return ids.map((id) => `${id}:${state.get(id) ?? 'closed'}`);
      };
      const expected = ids.map((id, i) => `${id}:${seq[last(i)]}`);
      await eventually(
        () => Promise.resolve(lastSeen().join() === expected.join() ? true : undefined),
        15_000,
        'every circuit in its last reported state',
      ).catch(() => undefined);
      expect(lastSeen()).toEqual(expected);
      expect(JSON.stringify(events)).not.toContain('not-an-orders-instance');
      const metrics = await call(op.url, 'GET', '/metrics', { token: TOKENS.root });
      expect(metrics.body).toMatch(/maxine_circuit_refused_total\{reason="unknown-instance"\} 1\n/);
      expect(metrics.body).toMatch(/maxine_circuit_held 0\n/);
    } finally {
      ws.close();
    }
  });
});

describe('GET /api/v1/graph', () => {
  it('shows a caller only the services it may read, and edges between them', async () => {
    const graph = await call(op.url, 'GET', '/api/v1/graph', { token: TOKENS.viewer });
    expect(graph.status).toBe(200);
    expect((graph.body.nodes as { id: string }[]).map((n) => n.id)).toEqual([
      'shop/orders',
      'shop/web',
    ]);
    for (const e of graph.body.edges as { source: string; destination: string }[]) {
      expect(['shop/orders', 'shop/web']).toContain(e.source);
      expect(['shop/orders', 'shop/web']).toContain(e.destination);
    }
  });

  it('filters by ?namespace=', async () => {
    const graph = await call(op.url, 'GET', '/api/v1/graph?namespace=bank', { token: TOKENS.root });
    expect(graph.status).toBe(200);
    expect((graph.body.nodes as { id: string }[]).map((n) => n.id).sort()).toEqual([
      'bank/ledger',
      'shop/web',
    ]);
    expect(graph.body.edges).toHaveLength(1);
  });

  it('answers Graphviz text for ?format=dot, undeclared and denied edges styled', async () => {
    const res = await fetch(`${op.url}/api/v1/graph?format=dot`, {
      headers: { authorization: `Bearer ${TOKENS.root}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/vnd\.graphviz/);
    const dot = await res.text();
    expect(dot).toMatch(/^digraph maxine \{/);
    expect(dot).toMatch(/"shop\/web" -> "bank\/ledger" \[color="orange".*undeclared/);
    expect(dot).toMatch(/"shop\/web" -> "shop\/cart" \[color="red".*denied/);
  });

  it.each([
    ['an unknown parameter', '?x=1'],
    ['a bad format', '?format=svg'],
    ['a namespace that is no DNS label', '?namespace=Shop'],
  ])('answers 400 for %s', async (_name, query) => {
    const res = await call(op.url, 'GET', `/api/v1/graph${query}`, { token: TOKENS.root });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  it('answers 405 for another method', async () => {
    const res = await call(op.url, 'DELETE', '/api/v1/graph', { token: TOKENS.root });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });
});

describe('a report naming destinations its caller may not know', () => {
  it('ignores them alike whether they exist or not, and emits no circuit event about them', async () => {
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
      // hr/payroll exists, hr/ghost does not; web has no right in hr.
      const answers = [];
      for (const name of ['payroll', 'ghost']) {
        const destination = { namespace: 'hr', name };
        const res = await call(op.url, 'POST', '/api/v1/reports', {
          token: TOKENS.web,
          body: report({
            edges: [{ destination, calls: 1, errors: 0, latencyMs: latency(1) }],
            circuits: [{ destination, from: 'closed', to: 'open', openMs: 1000, at: 1 }],
          }),
        });
        answers.push({ status: res.status, body: res.body as unknown });
      }
      const ignored = {
        accepted: { edges: 0, circuits: 0 },
        ignored: 2,
        refused: 0,
        throttled: 0,
      };
      expect(answers).toEqual([
        { status: 202, body: ignored },
        { status: 202, body: ignored },
      ]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(events.filter((e) => e.service?.namespace === 'hr')).toEqual([]);
      const graph = await call(op.url, 'GET', '/api/v1/graph?namespace=hr', {
        token: TOKENS.root,
      });
      expect(graph.body.edges).toEqual([]);
    } finally {
      ws.close();
    }
  });
});

describe('circuit_state_changed on the stream', () => {
  it('reaches a reader of the destination only if it may read the reporting service too', async () => {
    const subscribe = async (token: string) => {
      const ws = new WebSocket(`${op.wsUrl}/api/v1/events?types=circuit_state_changed`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const events: MaxineEvent[] = [];
      ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as MaxineEvent));
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      return { ws, events };
    };
    const root = await subscribe(TOKENS.root);
    const banker = await subscribe(TOKENS.banker);
    try {
      // web → bank/ledger: the banker reads bank/* but not shop/web, whose calls the graph
      // hides from it; the event must not tell it either.
      const res = await call(op.url, 'POST', '/api/v1/reports', {
        token: TOKENS.web,
        body: report({
          edges: [],
          circuits: [
            {
              destination: { namespace: 'bank', name: 'ledger' },
              from: 'closed',
              to: 'open',
              openMs: 1000,
              at: 2,
            },
          ],
        }),
      });
      expect(res.status).toBe(202);
      await eventually(
        () => Promise.resolve(root.events.find((e) => e.service?.name === 'ledger') ?? undefined),
        3000,
        'the root subscriber sees the transition',
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(banker.events.filter((e) => e.type === 'circuit_state_changed')).toEqual([]);
      const graph = await call(op.url, 'GET', '/api/v1/graph', { token: TOKENS.banker });
      expect((graph.body.nodes as { id: string }[]).map((n) => n.id)).toEqual(['bank/ledger']);
    } finally {
      root.ws.close();
      banker.ws.close();
    }
  });
});
