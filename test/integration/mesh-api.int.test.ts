/**
 * The operator's mesh endpoint over a real socket, in standalone mode (no cluster: a preview of
 * what would be applied): JSON by default, a YAML stream for `kubectl apply -f -` by Accept,
 * the catalog errors for an unknown mesh or an undeclared service, ACLs on read, and renders
 * that follow intentions and external registrations as they change.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { DIFFERENCES_ANNOTATION } from '../../common/mesh/model.js';
import { eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const SERVICES = `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  selector: { app: orders }
  serviceAccount: orders
  ports: [{ name: http, port: 8080 }]
  mesh: { istio: true }
  versions:
    - { name: v1, weight: 90 }
    - { name: v2, weight: 10 }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  serviceAccount: web
`;

const INTENTION = (action: string) => `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders-callers, namespace: shop }
spec:
  destination: { name: orders }
  sources:
    - { name: web, action: ${action} }
`;

let op: TestOperator;
beforeAll(async () => {
  op = await startOperator({
    files: { 'services.yaml': SERVICES, 'intentions.yaml': INTENTION('deny') },
  });
});
afterAll(async () => op.stop());

async function get(path: string, accept?: string) {
  const res = await fetch(op.url + path, accept === undefined ? {} : { headers: { accept } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

interface Rendered {
  mesh: string;
  enabled: boolean;
  objects: {
    kind: string;
    metadata: { name: string; annotations?: Record<string, string> };
    spec: any;
  }[];
  differences: { subject: string; message: string }[];
}

async function render(mesh: string): Promise<Rendered> {
  const res = await get(`/api/v1/services/shop/orders/mesh/${mesh}`);
  expect(res.status).toBe(200);
  return JSON.parse(res.text) as Rendered;
}

describe('GET /api/v1/services/{namespace}/{name}/mesh/{mesh}', () => {
  it('answers JSON with the objects, whether the mesh is enabled, and the differences', async () => {
    const istio = await render('istio');
    expect(istio.mesh).toBe('istio');
    expect(istio.enabled).toBe(true);
    expect(istio.objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'DestinationRule/orders',
      'VirtualService/orders',
      'AuthorizationPolicy/orders-deny',
    ]);
    const deny = istio.objects.find((o) => o.kind === 'AuthorizationPolicy')!;
    expect(deny.spec).toEqual({
      selector: { matchLabels: { app: 'orders' } },
      action: 'DENY',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }],
    });
    const linkerd = await render('linkerd');
    expect(linkerd.enabled).toBe(false);
    // Linkerd splits traffic between one Service per version, which Maxine does not create.
    expect(linkerd.differences.some((d) => d.message.includes('orders-v1'))).toBe(true);
  });

  it('answers a YAML stream that names its differences, by Accept', async () => {
    const res = await get('/api/v1/services/shop/orders/mesh/linkerd', 'application/yaml');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^application\/yaml/);
    expect(res.text).toMatch(/^# linkerd: \d+ objects rendered by Maxine\n# difference/);
    const docs = parseAllDocuments(res.text).map((d) => d.toJS() as Rendered['objects'][number]);
    expect(docs.map((d) => d.kind)).toContain('Server');
    const annotated = docs.filter((d) => d.metadata.annotations?.[DIFFERENCES_ANNOTATION]);
    expect(annotated.length).toBeGreaterThan(0);
  });

  it('follows intentions as they change', async () => {
    await op.write('intentions.yaml', INTENTION('allow'));
    await eventually(async () => {
      const istio = await render('istio');
      return !istio.objects.some((o) => o.kind === 'AuthorizationPolicy');
    }, 5000);
  });

  it('renders instances registered from outside the cluster as a ServiceEntry', async () => {
    const reg = await fetch(`${op.url}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        service: 'orders',
        namespace: 'shop',
        host: '10.1.2.3',
        port: 8080,
        version: 'v1',
      }),
    });
    expect(reg.status).toBe(201);
    const entry = (await render('istio')).objects.find((o) => o.kind === 'ServiceEntry');
    expect(entry?.spec.endpoints).toEqual([
      expect.objectContaining({ address: '10.1.2.3', labels: { version: 'v1' } }),
    ]);
  });

  it('refuses an unknown mesh and an undeclared service with catalog errors', async () => {
    const mesh = await get('/api/v1/services/shop/orders/mesh/consul');
    expect(mesh.status).toBe(400);
    expect(JSON.parse(mesh.text).error.code).toBe('VALIDATION_FAILED');
    const missing = await get('/api/v1/services/shop/nope/mesh/istio');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text).error.code).toBe('SERVICE_NOT_FOUND');
    const post = await fetch(`${op.url}/api/v1/services/shop/orders/mesh/istio`, {
      method: 'POST',
    });
    expect(post.status).toBe(405);
  });
});

describe('the mesh endpoint under ACLs', () => {
  let secured: TestOperator;
  beforeAll(async () => {
    secured = await startOperator({
      files: {
        'services.yaml': SERVICES,
        'acl.yaml': `apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: anonymous-web, namespace: maxine-system }
spec:
  subjects: [{ kind: User, name: 'system:anonymous' }]
  rules: [{ services: ['shop/web'], verbs: [read] }]
`,
      },
      config: { aclDefault: 'deny' },
    });
  });
  afterAll(async () => secured.stop());

  it('needs read on the service', async () => {
    const denied = await fetch(`${secured.url}/api/v1/services/shop/orders/mesh/istio`);
    expect(denied.status).toBe(403);
    const allowed = await fetch(`${secured.url}/api/v1/services/shop/web/mesh/istio`);
    expect(allowed.status).toBe(200);
  });
});
