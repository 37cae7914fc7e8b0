/**
 * The readiness gate on a real control plane: the webhook gives injected pods the
 * `maxine.io/healthy` readiness gate, sidecar processes run the service's health script, and
 * the leader writes the condition. kwok plays kubelet with stages that compute Ready from the
 * containers and the readiness gates (e2e/controlplane/kwok/stages.yaml), and
 * kube-controller-manager's EndpointSlice controller keeps the Kubernetes Service's endpoints.
 *
 * A pod whose script fails gets the condition False (CheckFailed), turns not Ready and leaves
 * the ready endpoints of its Service's EndpointSlice; a second operator, a follower that no
 * sidecar talks to, answers discovery without it, from the condition its pod informer reads.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { installCrds, kubectl as kubectlIn, startKubeOperator } from './operator-identity.js';
import {
  applyDeployment,
  podsWithIps,
  startInjectingOperator,
  startSidecar,
  untilInjects,
  writeHealthScript,
} from './injection.js';
import type { Pod, SidecarProcess } from './injection.js';
import { eventually } from '../test/helpers/operator.js';

let cp: ControlPlane;
let leader: { operator: Operator; base: string; admin: { authorization: string } };
let follower: { operator: Operator; base: string; admin: { authorization: string } };
let work: string;
let web: Pod[] = [];
const sidecars: SidecarProcess[] = [];

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

interface PodCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

async function conditionsOf(pod: string): Promise<Record<string, PodCondition>> {
  const got = JSON.parse(await kubectl(['get', 'pod', '-n', 'shop', pod, '-o', 'json'])) as {
    status: { conditions?: PodCondition[] };
  };
  return Object.fromEntries((got.status.conditions ?? []).map((c) => [c.type, c]));
}

/** The pod names among the ready endpoints of the `web` Service's EndpointSlices. */
async function readyEndpoints(): Promise<string[]> {
  const slices = JSON.parse(
    await kubectl([
      'get',
      'endpointslices',
      '-n',
      'shop',
      '-l',
      'kubernetes.io/service-name=web',
      '-o',
      'json',
    ]),
  ) as {
    items: {
      endpoints?: { conditions?: { ready?: boolean }; targetRef?: { name?: string } }[];
    }[];
  };
  return slices.items
    .flatMap((s) => s.endpoints ?? [])
    .filter((e) => e.conditions?.ready === true)
    .map((e) => e.targetRef?.name ?? '')
    .sort();
}

/** The pods an operator discovers for shop/web (all healthy ones). */
async function discovered(op: { base: string; admin: { authorization: string } }) {
  const res = await fetch(`${op.base}/api/v1/discover/shop/web?all=true`, { headers: op.admin });
  if (res.status === 404) return [];
  const body = (await res.json()) as { instances: { metadata: { pod: string } }[] };
  return body.instances.map((i) => i.metadata.pod).sort();
}

async function writesOf(op: { base: string; admin: { authorization: string } }): Promise<number> {
  const res = await fetch(`${op.base}/metrics`, { headers: op.admin });
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('maxine_health_condition_writes_total{'))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

beforeAll(async () => {
  await ensureBinaries();
  // The default pod range (10.244.0.0/16): EndpointSlices refuse loopback addresses.
  cp = await startControlPlane({ workloads: true });
  work = await mkdtemp(join(tmpdir(), 'maxine-gate-e2e-'));
  // The health script: a pod fails while a file named after it holds an exit code.
  const script = await writeHealthScript(work);
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  leader = await startInjectingOperator(cp, 'shop');
  await eventually(async () => Promise.resolve(leader.operator.isLeader()), 30_000, 'a leader');
  // The second replica: same Lease, so it follows; no webhook, no sidecar talks to it.
  follower = await startKubeOperator(cp, { kubeconfig: join(cp.dir, 'operator.kubeconfig') });
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 8080 }]
  heartbeat: { ttlSeconds: 3 }
  healthCheck:
    exec: { command: [${JSON.stringify(script)}] }
    intervalSeconds: 1
    failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 8080, targetPort: 8080 }]
`,
  );
  await untilInjects(cp, 'shop', { app: 'web' });
  await applyDeployment(cp, 'shop', 'web', { replicas: 2 });
  web = await podsWithIps(cp, 'shop', 'web', 2);
}, 30 * 60_000);

afterAll(async () => {
  for (const { proc } of sidecars) proc.kill('SIGKILL');
  await follower?.operator.stop();
  await leader?.operator.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the maxine.io/healthy readiness gate', () => {
  it('an injected pod carries the gate and is not Ready before its sidecar reports', async () => {
    expect(follower.operator.isLeader()).toBe(false);
    for (const pod of web) {
      const got = JSON.parse(
        await kubectl(['get', 'pod', '-n', 'shop', pod.metadata.name, '-o', 'json']),
      ) as { spec: { readinessGates?: { conditionType: string }[] } };
      expect(got.spec.readinessGates).toEqual([{ conditionType: 'maxine.io/healthy' }]);
      const conditions = await conditionsOf(pod.metadata.name);
      expect(conditions.ContainersReady?.status).toBe('True');
      expect(conditions.Ready?.status).toBe('False');
      expect(conditions['maxine.io/healthy']).toBeUndefined();
    }
    expect(await readyEndpoints()).toEqual([]);
  });

  it('the leader sets the condition True when the sidecar first reports passing: the pods are Ready and in the EndpointSlice', async () => {
    for (const pod of web) sidecars.push(await startSidecar(cp, pod, work));
    const names = web.map((p) => p.metadata.name).sort();
    await eventually(
      async () => JSON.stringify(await readyEndpoints()) === JSON.stringify(names),
      60_000,
      'both pods ready endpoints',
    ).catch(async (e: Error) => {
      const seen = await Promise.all(names.map((n) => conditionsOf(n)));
      const slices = await kubectl(['get', 'endpointslices', '-n', 'shop', '-o', 'yaml']);
      const kwok = readFileSync(join(cp.dir, 'logs', 'kwok.log'), 'utf8')
        .split('\n')
        .slice(-40);
      throw new Error(
        `${e.message}\n${JSON.stringify(seen, null, 1)}\n${slices}\n${kwok.join('\n')}\n` +
          sidecars.map((s) => s.log.join('')).join('\n---\n'),
      );
    });
    for (const name of names) {
      const conditions = await conditionsOf(name);
      expect(conditions['maxine.io/healthy']).toMatchObject({ status: 'True', reason: 'Passing' });
      expect(conditions.Ready?.status).toBe('True');
    }
    await eventually(
      async () => JSON.stringify(await discovered(follower)) === JSON.stringify(names),
      30_000,
      'the follower discovers both',
    );
  });

  it('a failing check turns the condition False: the pod leaves the ready endpoints, and the follower does not discover it', async () => {
    const [failing, healthy] = web.map((p) => p.metadata.name).sort() as [string, string];
    const writesBefore = await writesOf(leader);
    const t0 = performance.now();
    await writeFile(join(work, `${failing}.code`), '2');
    await eventually(
      async () => {
        const c = (await conditionsOf(failing))['maxine.io/healthy'];
        return c?.status === 'False' && c;
      },
      30_000,
      'the condition False',
    );
    const condition = (await conditionsOf(failing))['maxine.io/healthy'];
    expect(condition).toMatchObject({ status: 'False', reason: 'CheckFailed' });
    expect(condition?.message).toContain(`checked ${failing}`);
    await eventually(
      async () => JSON.stringify(await readyEndpoints()) === JSON.stringify([healthy]),
      30_000,
      'the failing pod out of the ready endpoints',
    );
    const tookMs = Math.round(performance.now() - t0);
    expect((await conditionsOf(failing)).Ready?.status).toBe('False');
    // Every replica answers alike: the follower, which no sidecar talks to, reads the condition.
    await eventually(
      async () => JSON.stringify(await discovered(follower)) === JSON.stringify([healthy]),
      30_000,
      'the follower discovers only the healthy pod',
    );
    expect(await discovered(leader)).toEqual([healthy]);
    // One transition, one write (heartbeats in between write nothing).
    await new Promise((r) => setTimeout(r, 3000));
    const writes = (await writesOf(leader)) - writesBefore;
    process.stderr.write(
      `[e2e] failing check → out of the EndpointSlice in ${tookMs} ms; ${writes} pods/status write(s)\n`,
    );
    expect(writes).toBe(1);

    // It recovers: True again, back in the endpoints and in the follower's answers.
    await rm(join(work, `${failing}.code`));
    await eventually(
      async () => (await readyEndpoints()).length === 2,
      30_000,
      'both pods ready endpoints again',
    );
    await eventually(
      async () => (await discovered(follower)).length === 2,
      30_000,
      'the follower discovers both again',
    );
  });

  it('a replica that becomes leader starts from the conditions: no write, the same answers', async () => {
    const [failing, healthy] = web.map((p) => p.metadata.name).sort() as [string, string];
    await writeFile(join(work, `${failing}.code`), '2');
    await eventually(
      async () => (await conditionsOf(failing))['maxine.io/healthy']?.status === 'False',
      30_000,
      'the condition False again',
    );
    // The sidecars reach the other replica too (as they would through the route to whichever
    // replica leads); the old ones keep the old leader's leases until it stops.
    for (const pod of web)
      sidecars.push(await startSidecar(cp, pod, work, { MAXINE_OPERATOR_URL: follower.base }));
    await leader.operator.stop();
    await eventually(
      () => Promise.resolve(follower.operator.isLeader()),
      40_000,
      'the follower leads',
    );
    // Two TTLs under the new leader: its adopted state agrees with the pods, so nothing flips.
    await new Promise((r) => setTimeout(r, 6000));
    expect(await writesOf(follower)).toBe(0);
    expect((await conditionsOf(failing))['maxine.io/healthy']?.status).toBe('False');
    expect((await conditionsOf(healthy))['maxine.io/healthy']?.status).toBe('True');
    expect(await discovered(follower)).toEqual([healthy]);
    expect(await readyEndpoints()).toEqual([healthy]);
    // And its own sidecars' heartbeats take over: the failing pod recovers under it.
    await rm(join(work, `${failing}.code`));
    await eventually(
      async () => (await readyEndpoints()).length === 2,
      30_000,
      'both ready endpoints under the new leader',
    );
    expect(await writesOf(follower)).toBe(1);
  });
});
