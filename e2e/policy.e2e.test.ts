/**
 * Policy on a real control plane: callers identified by TokenReview (ServiceAccount tokens,
 * pod-bound or not), MaxineACLs and MaxineIntentions applied with kubectl, the operator's
 * default-deny. A ServiceAccount without a register right is refused until an ACL grants it;
 * a sidecar's source is its pod's service, so an intention denying that service refuses its
 * discovery; an event subscriber sees only what its ACLs let it read; the audit export holds
 * those decisions and no token.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { MaxineEvent } from '../common/wire.js';
import type { Operator } from '../operator/operator.js';
import { eventually } from '../test/helpers/operator.js';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { installCrds, startKubeOperator, kubectl as kubectlIn } from './operator-identity.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };
let work: string;
/** Every token this file sends, to prove none reaches the audit log. */
const sent = new Set<string>();

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

/** A ServiceAccount token for our audience; bound to a pod when one is named. */
async function token(serviceAccount: string, pod?: { name: string; uid: string }) {
  const args = ['create', 'token', serviceAccount, '-n', 'shop', '--audience=maxine.io'];
  if (pod !== undefined) {
    args.push(
      '--bound-object-kind=Pod',
      `--bound-object-name=${pod.name}`,
      `--bound-object-uid=${pod.uid}`,
    );
  }
  const t = (await kubectl(args)).trim();
  sent.add(t);
  return t;
}

async function call(
  method: string,
  path: string,
  bearer?: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(bearer !== undefined && { authorization: `Bearer ${bearer}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // NDJSON stays text
  }
  return { status: res.status, body: parsed };
}

const register = (bearer: string, service: string) =>
  call('POST', '/api/v1/instances', bearer, {
    service,
    namespace: 'shop',
    host: '10.20.0.1',
    port: 8080,
  });

let webPod: { name: string; uid: string };

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  work = await mkdtemp(join(tmpdir(), 'maxine-policy-e2e-'));
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: deployer, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: watcher, namespace: shop }
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, labels: { app: web } }
spec:
  serviceAccountName: web
  automountServiceAccountToken: false
  containers: [{ name: app, image: web:e2e }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  selector: { app: orders }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: payments, namespace: shop }
spec:
  selector: { app: payments }
`,
  );
  const pod = JSON.parse(await kubectl(['get', 'pod', 'web-0', '-n', 'shop', '-o', 'json']));
  webPod = { name: 'web-0', uid: pod.metadata.uid as string };
  ({ operator, base, admin } = await startKubeOperator(cp, { auditDir: join(work, 'audit') }));
}, 30 * 60_000);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('policy on a real control plane', () => {
  it('refuses requests without a token; health and readiness stay open, metrics need read on */*', async () => {
    const res = await call('GET', '/api/v1/services');
    expect(res.status).toBe(401);
    expect(res.body.error.message).toMatch(/projected ServiceAccount token/);
    for (const path of ['/healthz', '/readyz']) expect((await call('GET', path)).status).toBe(200);
    // --metrics-auth is on by default in kubernetes mode: metrics name every namespace's services.
    expect((await call('GET', '/metrics')).status).toBe(401);
    const metrics = await call('GET', '/metrics', admin.authorization.slice('Bearer '.length));
    expect(metrics.status).toBe(200);
  });

  it('refuses a ServiceAccount without a register right until an ACL grants it', async () => {
    const deployer = await token('deployer');
    const refused = await register(deployer, 'orders');
    expect(refused.status).toBe(403);
    expect(refused.body.error.details).toMatchObject({ decidedBy: 'default' });
    expect(refused.body.error.message).toMatch(/ServiceAccount shop\/deployer/);
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: deployer, namespace: shop }
spec:
  subjects: [{ kind: ServiceAccount, name: deployer, namespace: shop }]
  rules: [{ services: ['shop/orders'], verbs: [register] }]
`,
    );
    const granted = await eventually(
      async () => {
        const res = await register(deployer, 'orders');
        return res.status === 201 ? res : false;
      },
      5000,
      'register granted',
    );
    const id = granted.body.instance.id as string;
    // The grant names one service only.
    expect((await register(deployer, 'payments')).status).toBe(403);
    // A sidecar of the web pod cannot register or touch orders: not its pod's service.
    const sidecar = await token('web', webPod);
    expect((await register(sidecar, 'orders')).status).toBe(403);
    expect((await call('DELETE', `/api/v1/instances/${id}`, sidecar)).status).toBe(403);
    expect((await call('DELETE', `/api/v1/instances/${id}`, deployer)).status).toBe(204);
  });

  it("takes a sidecar's source from its pod: an intention denying it refuses its discovery", async () => {
    const sidecar = await token('web', webPod);
    // Default allow: no instance yet, but not forbidden.
    expect((await call('GET', '/api/v1/discover/shop/payments', sidecar)).status).toBe(404);
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: payments, namespace: shop }
spec:
  destination: { name: payments }
  sources:
    - { name: web, action: deny, description: web never pays }
    - { name: orders, action: allow }
`,
    );
    const denied = await eventually(
      async () => {
        const res = await call('GET', '/api/v1/discover/shop/payments', sidecar);
        return res.status === 403 ? res : false;
      },
      5000,
      'intention applied',
    );
    expect(denied.body.error.details).toMatchObject({
      decidedBy: { intention: 'shop/payments', source: 'shop/web' },
      source: 'shop/web',
    });
    // Naming another source does not help a caller whose source is known: it is refused.
    const res = await fetch(`${base}/api/v1/discover/shop/payments`, {
      headers: { authorization: `Bearer ${sidecar}`, 'x-maxine-source': 'shop/orders' },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.code).toBe('SOURCE_MISMATCH');
    const check = await call(
      'GET',
      '/api/v1/intentions/check?source=shop/orders&destination=shop/payments',
      sidecar,
    );
    expect(check.body).toMatchObject({ allowed: true, decidedBy: { source: 'shop/orders' } });
    await kubectl(['delete', 'maxineintention', 'payments', '-n', 'shop']);
    await eventually(
      async () => (await call('GET', '/api/v1/discover/shop/payments', sidecar)).status === 404,
      5000,
      'intention removed',
    );
    // With no intention in the way, a sidecar naming another service as its source is still
    // refused (the header is not taken from a caller whose identity is known).
    const posing = await fetch(`${base}/api/v1/discover/shop/payments`, {
      headers: { authorization: `Bearer ${sidecar}`, 'x-maxine-source': 'shop/orders' },
    });
    expect(posing.status).toBe(403);
    const body = (await posing.json()) as any;
    expect(body.error.code).toBe('SOURCE_MISMATCH');
    expect(body.error.message).toMatch(/shop\/web.*cannot discover as shop\/orders/);
  });

  it('shows an event subscriber only the services it may read', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: watcher, namespace: shop }
spec:
  subjects: [{ kind: ServiceAccount, name: watcher, namespace: shop }]
  rules: [{ services: ['shop/orders'], verbs: [read] }]
`,
    );
    const watcher = await token('watcher');
    await eventually(
      async () => (await call('GET', '/api/v1/services/shop/orders', watcher)).status === 200,
      5000,
      'read granted',
    );
    const ws = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events?snapshot=true`, {
      headers: { authorization: `Bearer ${watcher}` },
    });
    const events: MaxineEvent[] = [];
    ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString()) as MaxineEvent));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await eventually(
      () => Promise.resolve(events.some((e) => e.type === 'resync_end')),
      5000,
      'snapshot',
    );
    const snapshot = events
      .filter((e) => e.type === 'resync_chunk')
      .flatMap((e) => (e.data as { services: { name: string }[] }).services);
    expect(snapshot.map((s) => s.name)).toEqual(['orders']);
    // A change to web is not shown; one to orders is.
    await kubectl([
      'patch',
      'msvc',
      'web',
      '-n',
      'shop',
      '--type=merge',
      '-p',
      '{"spec":{"config":{"note":"1"}}}',
    ]);
    await kubectl([
      'patch',
      'msvc',
      'orders',
      '-n',
      'shop',
      '--type=merge',
      '-p',
      '{"spec":{"config":{"note":"1"}}}',
    ]);
    await eventually(
      () =>
        Promise.resolve(
          events.some((e) => e.type === 'service_updated' && e.service?.name === 'orders'),
        ),
      5000,
      'orders update seen',
    );
    expect(events.some((e) => e.service?.name === 'web')).toBe(false);
    ws.close();
    // Without a token the handshake is refused.
    const anonymous = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events`);
    const status = await new Promise<number>((resolve) => {
      anonymous.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.destroy();
      });
      anonymous.once('error', () => resolve(-1));
      anonymous.once('open', () => resolve(101));
    });
    expect(status).toBe(401);
  });

  it('exports the decisions to an administrator, without any token', async () => {
    const res = await call('GET', '/api/v1/audit', admin.authorization.slice('Bearer '.length));
    expect(res.status).toBe(200);
    const records = (res.body as string)
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, string>);
    const has = (who: string, action: string, outcome: string) =>
      records.some((r) => r.who?.startsWith(who) && r.action === action && r.outcome === outcome);
    expect(has('ServiceAccount shop/deployer', 'register', 'denied')).toBe(true);
    expect(has('ServiceAccount shop/deployer', 'register', 'allowed')).toBe(true);
    expect(has('ServiceAccount shop/web (pod web-0)', 'discover', 'denied')).toBe(true);
    expect(records.some((r) => r.outcome === 'unauthenticated')).toBe(true);
    const text = res.body as string;
    for (const t of sent) expect(text.includes(t)).toBe(false);
    // Not for others.
    expect((await call('GET', '/api/v1/audit', await token('watcher'))).status).toBe(403);
  });
});
