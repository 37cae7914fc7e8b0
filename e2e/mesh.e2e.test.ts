/**
 * Mesh configuration on a real control plane (kube-apiserver, etcd, controller-manager for
 * garbage collection), with the operator's own least-privilege RBAC:
 * - before the Istio and Linkerd CRDs exist, a MaxineService asking for them gets a clear
 *   `CRDsMissing` condition and no status write loop;
 * - once they are installed (the real CRDs from ../shared/thirdparty-crds), the objects are
 *   applied server-side, owned by the MaxineService, updated when services and intentions
 *   change, pruned when no longer rendered, and removed with the MaxineService;
 * - every golden render (common/mesh/golden-cases.ts) is accepted by the real schemas with
 *   strict field validation, so no field we emit is unknown to the meshes.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GOLDEN_CASES } from '../common/mesh/golden-cases.js';
import { renderToYaml } from '../common/mesh/format.js';
import { MESHES, renderMesh } from '../common/mesh/index.js';
import type { Operator } from '../operator/operator.js';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { applyCrds } from './lib/crds.js';
import { installCrds, kubectl as kubectlIn, startKubeOperator } from './operator-identity.js';

/** Where the Istio and Linkerd CRDs are read from (not copied into this repository). */
const THIRDPARTY_CRDS = resolve(
  process.env.MAXINE_THIRDPARTY_CRDS ?? join(process.cwd(), '..', 'shared', 'thirdparty-crds'),
);

let cp: ControlPlane;
let operator: Operator | undefined;

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

/** Retries `fn` until it stops throwing (assertions included); its last error after `ms`. */
async function eventually<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function getJson(args: string[]): Promise<any> {
  return JSON.parse(await kubectl([...args, '-o', 'json']));
}

/** Names of our objects of one kind in shop (by our labels). */
async function names(resource: string): Promise<string[]> {
  const list = await getJson([
    'get',
    resource,
    '-n',
    'shop',
    '-l',
    'app.kubernetes.io/managed-by=maxine',
  ]);
  return (list.items as { metadata: { name: string } }[]).map((i) => i.metadata.name).sort();
}

async function orders(): Promise<any> {
  return getJson(['get', 'maxineservice', 'orders', '-n', 'shop']);
}

function condition(svc: any, type: string): any {
  return (svc.status?.conditions ?? []).find((c: { type: string }) => c.type === type);
}

const ORDERS = (extra = '') => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  selector: { app: orders }
  serviceAccount: orders
  ports: [{ name: http, port: 8080 }]
  mesh: { istio: true, linkerd: true }
${extra}`;

const WEB = `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  serviceAccount: web
`;

const INTENTION = `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders-callers, namespace: shop }
spec:
  destination: { name: orders }
  sources:
    - name: web
      permissions:
        - { action: allow, http: { pathPrefix: /api/, methods: [GET] } }
`;

beforeAll(async () => {
  if (!existsSync(join(THIRDPARTY_CRDS, 'istio.yaml'))) {
    throw new Error(
      `The Istio and Linkerd CRDs are not at ${THIRDPARTY_CRDS}: set MAXINE_THIRDPARTY_CRDS to a directory holding istio.yaml and linkerd.yaml (for example the CRDs of an installed Istio or Linkerd release)`,
    );
  }
  await ensureBinaries();
  // The controller-manager runs the garbage collector that deletes owned objects.
  cp = await startControlPlane({ workloads: true });
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  ({ operator } = await startKubeOperator(cp, {
    intentionDefault: 'deny',
    meshResyncMs: 1000,
  }));
}, 30 * 60_000);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

describe('mesh configuration on a real control plane', () => {
  it('reports missing mesh CRDs as a condition, without a status write loop', async () => {
    await kubectl(['apply', '-f', '-'], ORDERS() + '---\n' + WEB);
    const svc = await eventually(async () => {
      const s = await orders();
      expect(condition(s, 'IstioSynced')).toMatchObject({ status: 'False', reason: 'CRDsMissing' });
      expect(condition(s, 'LinkerdSynced')).toMatchObject({
        status: 'False',
        reason: 'CRDsMissing',
      });
      return s;
    }, 30_000);
    expect(condition(svc, 'IstioSynced').message).toContain(
      'DestinationRule (networking.istio.io/v1)',
    );
    expect(condition(svc, 'LinkerdSynced').message).toContain('Server (policy.linkerd.io/v1beta3)');
    expect(condition(svc, 'Ready')).toMatchObject({ status: 'True' });
    // Once the start-up writes (instance counts) are done, several resyncs (one per second)
    // pass without writing the object again.
    await new Promise((r) => setTimeout(r, 2000));
    const settled = await orders();
    await new Promise((r) => setTimeout(r, 4000));
    const later = await orders();
    expect(later.status).toEqual(settled.status);
    expect(later.metadata.resourceVersion).toBe(settled.metadata.resourceVersion);
    expect(condition(later, 'IstioSynced').lastTransitionTime).toBe(
      condition(svc, 'IstioSynced').lastTransitionTime,
    );
  }, 60_000);

  it(
    'accepts every golden render under the real Istio and Linkerd schemas (strict fields)',
    async () => {
      for (const mesh of ['istio.yaml', 'linkerd.yaml'])
        await applyCrds((args) => cp.kubectl(args), join(THIRDPARTY_CRDS, mesh), {
          serverSide: true,
        });
      await kubectl(['create', 'namespace', 'golden']);
      let objects = 0;
      for (const c of GOLDEN_CASES) {
        for (const mesh of MESHES) {
          const render = renderMesh(mesh, c.input);
          if (render.objects.length === 0) continue;
          objects += render.objects.length;
          // Created (not applied) in a namespace of their own: each object is judged alone, not
          // merged with what the operator applied in shop.
          for (const o of render.objects) o.metadata.namespace = 'golden';
          const out = await kubectl(
            ['create', '--dry-run=server', '--validate=strict', '-f', '-'],
            renderToYaml(render),
          );
          expect(out).toContain('(server dry run)');
        }
      }
      expect(objects).toBeGreaterThan(50);
      // The schemas do check: an enum value they do not know is refused.
      await expect(
        kubectl(
          ['create', '--dry-run=server', '--validate=strict', '-f', '-'],
          `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: broken, namespace: golden }
spec:
  host: orders
  trafficPolicy: { loadBalancer: { simple: FASTEST } }
`,
        ),
      ).rejects.toThrow(/FASTEST|Unsupported value/);
    },
    5 * 60_000,
  );

  it('applies the objects server-side, owned by the MaxineService, once the CRDs exist', async () => {
    const svc = await eventually(async () => {
      const s = await orders();
      expect(condition(s, 'IstioSynced')).toMatchObject({ status: 'True', reason: 'Applied' });
      expect(condition(s, 'LinkerdSynced')).toMatchObject({ status: 'True', reason: 'Applied' });
      return s;
    }, 60_000);
    expect(await names('destinationrules.networking.istio.io')).toEqual(['orders']);
    // Default deny and no intention yet: an ALLOW policy without rules, which denies everything.
    const allow = await getJson([
      'get',
      'authorizationpolicies.security.istio.io',
      'orders-allow',
      '-n',
      'shop',
      '--show-managed-fields',
    ]);
    expect(allow.spec).toEqual({ selector: { matchLabels: { app: 'orders' } }, action: 'ALLOW' });
    expect(allow.metadata.ownerReferences).toEqual([
      expect.objectContaining({
        apiVersion: 'maxine.io/v1alpha1',
        kind: 'MaxineService',
        name: 'orders',
        uid: svc.metadata.uid,
        controller: true,
      }),
    ]);
    expect(allow.metadata.managedFields).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ manager: 'maxine-operator', operation: 'Apply' }),
      ]),
    );
    expect(await names('servers.policy.linkerd.io')).toEqual(['orders-http']);
    expect(svc.status.mesh.istio.objects).toEqual([
      'DestinationRule/orders',
      'AuthorizationPolicy/orders-allow',
    ]);
  }, 90_000);

  it('follows intentions: an L7 allow becomes rules, and objects no longer rendered are pruned', async () => {
    await kubectl(['apply', '-f', '-'], INTENTION);
    await eventually(async () => {
      const allow = await getJson([
        'get',
        'authorizationpolicies.security.istio.io',
        'orders-allow',
        '-n',
        'shop',
      ]);
      expect(allow.spec.rules).toEqual([
        {
          from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }],
          to: [{ operation: { paths: ['/api/*'], methods: ['GET'] } }],
        },
      ]);
    }, 30_000);
    const routes = await eventually(async () => {
      const r = await names('httproutes.policy.linkerd.io');
      expect(r.length).toBeGreaterThan(0);
      return r;
    }, 30_000);
    const authn = await getJson([
      'get',
      'meshtlsauthentications.policy.linkerd.io',
      '-n',
      'shop',
      '-l',
      'maxine.io/service=orders',
    ]);
    expect(authn.items.map((i: any) => i.spec.identities)).toEqual([
      ['web.shop.serviceaccount.identity.linkerd.cluster.local'],
    ]);
    // Versions add a VirtualService; taking them away prunes it.
    await kubectl(
      ['apply', '-f', '-'],
      ORDERS(`  versions:
    - { name: v1, weight: 80 }
    - { name: v2, weight: 20 }
`),
    );
    await eventually(async () => {
      const vs = await getJson([
        'get',
        'virtualservices.networking.istio.io',
        'orders',
        '-n',
        'shop',
      ]);
      expect(vs.spec.http[0].route.map((r: any) => [r.destination.subset, r.weight])).toEqual([
        ['v1', 80],
        ['v2', 20],
      ]);
    }, 30_000);
    await kubectl(['apply', '-f', '-'], ORDERS());
    await kubectl(['delete', 'maxineintention', 'orders-callers', '-n', 'shop']);
    await eventually(async () => {
      expect(await names('virtualservices.networking.istio.io')).toEqual([]);
      expect(await names('httproutes.policy.linkerd.io')).toEqual([]);
      expect(await names('meshtlsauthentications.policy.linkerd.io')).toEqual([]);
    }, 30_000);
    expect(routes.length).toBeGreaterThan(0);
  }, 120_000);

  it('neither takes over nor prunes an object it did not create, and says so', async () => {
    // A preview applied by hand: our labels, no owner.
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: web
  namespace: shop
  labels: { app.kubernetes.io/managed-by: maxine, maxine.io/mesh: istio, maxine.io/service: web }
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
`,
    );
    await kubectl(['apply', '-f', '-'], WEB + '  mesh: { istio: true }\n');
    await eventually(async () => {
      const web = await getJson(['get', 'maxineservice', 'web', '-n', 'shop']);
      expect(condition(web, 'IstioSynced')).toMatchObject({
        status: 'False',
        reason: 'ApplyFailed',
      });
      expect(condition(web, 'IstioSynced').message).toContain(
        'DestinationRule/web: exists and is not controlled',
      );
    }, 30_000);
    // Several resyncs later it is still the user's object, untouched.
    await new Promise((r) => setTimeout(r, 2500));
    const dr = await getJson(['get', 'destinationrules.networking.istio.io', 'web', '-n', 'shop']);
    expect(dr.spec.trafficPolicy.loadBalancer.simple).toBe('RANDOM');
    expect(dr.metadata.ownerReferences).toBeUndefined();
    await kubectl(['apply', '-f', '-'], WEB);
    await kubectl(['delete', 'destinationrules.networking.istio.io', 'web', '-n', 'shop']);
  }, 60_000);

  it('drops a mesh that is turned off; the garbage collector removes the rest with the MaxineService', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      ORDERS().replace('mesh: { istio: true, linkerd: true }', 'mesh: { linkerd: true }'),
    );
    await eventually(async () => {
      expect(await names('destinationrules.networking.istio.io')).toEqual([]);
      expect(await names('authorizationpolicies.security.istio.io')).toEqual([]);
      const s = await orders();
      expect(condition(s, 'IstioSynced')).toBeUndefined();
      expect(s.status.mesh.istio).toBeUndefined();
    }, 30_000);
    expect(await names('servers.policy.linkerd.io')).toEqual(['orders-http']);
    // The operator stops first: what removes the objects now is the garbage collector,
    // following their owner references.
    await operator?.stop();
    operator = undefined;
    await kubectl(['delete', 'maxineservice', 'orders', '-n', 'shop']);
    await eventually(async () => {
      expect(await names('servers.policy.linkerd.io')).toEqual([]);
      expect(await names('authorizationpolicies.policy.linkerd.io')).toEqual([]);
    }, 60_000);
  }, 120_000);
});
