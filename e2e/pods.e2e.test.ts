/**
 * Pods as instances on a real control plane with workloads (controller-manager, scheduler and
 * KWOK give a Deployment Running, Ready pods with IPs): registry instances follow the pods
 * of a Deployment scaled 0 → 3 → 1, and a deleted pod's instance is gone at once.
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
});
