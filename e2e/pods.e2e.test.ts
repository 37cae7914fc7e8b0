/**
 * Pods as instances on a real control plane with workloads (controller-manager, scheduler and
 * KWOK give a Deployment Running, Ready pods with IPs): registry instances follow the pods
 * of a Deployment scaled 0 → 3 → 1, and a deleted pod's instance is gone at once. A pod of a
 * service with a healthCheck but without sidecar (not injected) says so: health reason
 * no-sidecar, the SidecarsMissing condition and a NoSidecar Event.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Operator } from '../operator/operator.js';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { installCrds, startKubeOperator, kubectl as kubectlIn } from './operator-identity.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

interface Item {
  id: string;
  host: string;
  source: string;
  health: { status: string };
  metadata: Record<string, string>;
}

async function instances(): Promise<Item[]> {
  const res = await fetch(`${base}/api/v1/services/shop/web`, { headers: admin });
  return res.status === 200 ? ((await res.json()) as { items: Item[] }).items : [];
}

async function eventually<T>(check: () => Promise<T | false>, ms: number): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== false) return value;
    if (Date.now() - started > ms)
      throw new Error(
        `condition not met within ${ms} ms; instances: ${JSON.stringify(await instances())}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

/** The MaxineService's condition of `type`, or false while it has none. */
async function conditionOf(name: string, type: string): Promise<Condition | false> {
  const msvc = JSON.parse(await kubectl(['get', 'msvc', name, '-n', 'shop', '-o', 'json'])) as {
    status?: { conditions?: Condition[] };
  };
  return msvc.status?.conditions?.find((c) => c.type === type) ?? false;
}

/** The Events of `reason` on the MaxineService, or false while there are none. */
async function eventsOf(
  name: string,
  reason: string,
): Promise<{ type: string; message: string }[] | false> {
  const out = await kubectl([
    'get',
    'events',
    '-n',
    'shop',
    '--field-selector',
    `involvedObject.kind=MaxineService,involvedObject.name=${name},reason=${reason}`,
    '-o',
    'json',
  ]);
  const list = (JSON.parse(out) as { items: { type: string; message: string }[] }).items;
  return list.length > 0 && list;
}

/** Whether the MaxineService's status has no condition of `type`. */
async function lacksCondition(name: string, type: string): Promise<boolean> {
  const types = await kubectl([
    'get',
    'msvc',
    name,
    '-n',
    'shop',
    '-o',
    'jsonpath={.status.conditions[*].type}',
  ]);
  return !types.includes(type);
}

const passing = async (n: number) => {
  const items = await instances();
  return items.length === n && items.every((i) => i.health.status === 'passing') && items;
};

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true });
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  ({ operator, base, admin } = await startKubeOperator(cp));
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec: { selector: { app: web }, ports: [{ name: http, port: 8080 }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 0
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: web, image: fake.example/web:1, ports: [{ containerPort: 8080 }] }]
`,
  );
}, 30 * 60_000);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

describe('pods as instances', () => {
  it('follows a Deployment scaled 0 → 3 → 1', async () => {
    await eventually(
      async () =>
        (await fetch(`${base}/api/v1/services/shop/web`, { headers: admin })).status === 200,
      5000,
    );
    expect(await instances()).toEqual([]);

    await kubectl(['scale', 'deployment/web', '-n', 'shop', '--replicas=3']);
    const three = await eventually(() => passing(3), 30_000);
    expect(new Set(three.map((i) => i.host)).size).toBe(3);
    expect(
      three.every((i) => i.source === 'kubernetes' && i.metadata.pod?.startsWith('web-')),
    ).toBe(true);
    const discovered = (await (
      await fetch(`${base}/api/v1/discover/shop/web?all=true`, { headers: admin })
    ).json()) as { instances: unknown[] };
    expect(discovered.instances).toHaveLength(3);

    await kubectl(['scale', 'deployment/web', '-n', 'shop', '--replicas=1']);
    await eventually(() => passing(1), 30_000);
  });

  it('removes a deleted pod’s instance at once', async () => {
    const [only] = await eventually(() => passing(1), 30_000);
    const pod = only!.metadata.pod!;
    const deleted = kubectl(['delete', 'pod', pod, '-n', 'shop', '--wait=false']);
    // Gone as soon as the API server says the pod is terminating or gone, not after a TTL.
    await eventually(
      async () =>
        !(await instances()).some((i) => i.id === only!.id && i.health.status === 'passing'),
      3000,
    );
    await deleted;
    // The Deployment replaces it; the replacement becomes the one instance.
    const [replacement] = await eventually(() => passing(1), 30_000);
    expect(replacement!.metadata.pod).not.toBe(pod);
  });

  it('deleting the MaxineService removes its pod instances', async () => {
    await kubectl(['delete', 'msvc', 'web', '-n', 'shop']);
    await eventually(
      async () =>
        (await fetch(`${base}/api/v1/services/shop/web`, { headers: admin })).status === 404,
      3000,
    );
  });

  it('a pod without sidecar in a service with a healthCheck is critical with reason no-sidecar, in status and an Event', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: checked, namespace: shop }
spec:
  selector: { app: checked }
  ports: [{ name: http, port: 8080 }]
  healthCheck: { http: { path: /healthz } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: checked, namespace: shop }
spec:
  replicas: 1
  selector: { matchLabels: { app: checked } }
  template:
    metadata: { labels: { app: checked } }
    spec:
      containers: [{ name: app, image: fake.example/checked:1, ports: [{ containerPort: 8080 }] }]
`,
    );
    const item = await eventually(async () => {
      const res = await fetch(`${base}/api/v1/services/shop/checked`, { headers: admin });
      if (res.status !== 200) return false;
      const items = ((await res.json()) as { items: (Item & { health: { reason: string } })[] })
        .items;
      return items.length === 1 && items[0]!.health.reason === 'no-sidecar' && items[0]!;
    }, 30_000);
    expect(item.health.status).toBe('critical');
    const pod = item.metadata.pod!;

    const condition = await eventually(() => conditionOf('checked', 'SidecarsMissing'), 30_000);
    expect(condition).toMatchObject({ status: 'True', reason: 'NoSidecar' });
    expect(condition.message).toContain(`pod ${pod} did not ask for injection`);

    const events = await eventually(() => eventsOf('checked', 'NoSidecar'), 30_000);
    expect(events[0]).toMatchObject({ type: 'Warning' });
    expect(events[0]!.message).toContain(pod);

    // Gone with the pods: the condition leaves the status.
    await kubectl(['scale', 'deployment/checked', '-n', 'shop', '--replicas=0']);
    await eventually(() => lacksCondition('checked', 'SidecarsMissing'), 30_000);
  });

  it('pods with no port (no spec.ports, no containerPort) are no instances, and the MaxineService says why until it names a port', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: portless, namespace: shop }
spec:
  selector: { app: portless }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: portless, namespace: shop }
spec:
  replicas: 1
  selector: { matchLabels: { app: portless } }
  template:
    metadata: { labels: { app: portless } }
    spec:
      containers: [{ name: app, image: fake.example/portless:1 }]
`,
    );
    const condition = await eventually(() => conditionOf('portless', 'PortsMissing'), 30_000);
    expect(condition).toMatchObject({ status: 'True', reason: 'NoPort' });
    expect(condition.message).toContain('add spec.ports');
    const pods = JSON.parse(
      await kubectl(['get', 'pods', '-n', 'shop', '-l', 'app=portless', '-o', 'json']),
    ) as { items: { metadata: { name: string } }[] };
    expect(condition.message).toContain(pods.items[0]!.metadata.name);
    const res = await fetch(`${base}/api/v1/services/shop/portless`, { headers: admin });
    expect(((await res.json()) as { items: unknown[] }).items).toEqual([]);

    const events = await eventually(() => eventsOf('portless', 'NoPort'), 30_000);
    expect(events[0]).toMatchObject({ type: 'Warning' });

    // Naming a port makes the pod an instance and the condition leaves.
    await kubectl([
      'patch',
      'msvc',
      'portless',
      '-n',
      'shop',
      '--type',
      'merge',
      '-p',
      '{"spec":{"ports":[{"name":"http","port":8080}]}}',
    ]);
    await eventually(async () => {
      const r = await fetch(`${base}/api/v1/services/shop/portless`, { headers: admin });
      const items = r.status === 200 ? ((await r.json()) as { items: Item[] }).items : [];
      return items.length === 1;
    }, 30_000);
    await eventually(() => lacksCondition('portless', 'PortsMissing'), 30_000);
  });
});
