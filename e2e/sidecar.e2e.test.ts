/**
 * Injection and sidecars on a real control plane. The API server calls the operator's
 * webhook over TLS (the operator made the CA and wrote it into the MutatingWebhookConfiguration);
 * a Deployment's pods come back with the native sidecar; sidecar processes started with exactly
 * the environment the webhook gave those pods (downward API resolved from the pod, the
 * projected token minted the way kubelet mints it: bound to the pod, audience maxine.io)
 * register, heartbeat and run a real health script, and an app discovers through its sidecar.
 * Then: a failing script, a killed sidecar, a deleted pod, and forged identities.
 *
 * What differs from a real pod, because there is no kubelet here: the token is written to a
 * temporary file instead of /var/run/secrets/maxine.io/token, and each sidecar listens on its
 * own 127.0.0.1 port (in a pod each has its own network namespace and port 7711).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { installCrds, kubectl as kubectlIn } from './operator-identity.js';
import {
  applyDeployment,
  envOf,
  podsOf,
  podsWithIps,
  podToken as podTokenIn,
  startInjectingOperator,
  startSidecar as startSidecarIn,
  untilInjects,
  writeHealthScript,
} from './injection.js';
import type { Pod, SidecarProcess } from './injection.js';
import { eventually } from '../test/helpers/operator.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };
let work: string;
const sidecars = new Map<string, SidecarProcess>();

interface Instance {
  id: string;
  host: string;
  health: { status: string; reason?: string; output?: string };
  lease?: { ttlSeconds: number };
  metadata: Record<string, string>;
}

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

const pods = (): Promise<Pod[]> => podsOf(cp, 'shop', 'web');

async function instances(): Promise<Instance[]> {
  const res = await fetch(`${base}/api/v1/services/shop/web`, { headers: admin });
  return res.status === 200 ? ((await res.json()) as { items: Instance[] }).items : [];
}

const instanceOf = async (pod: string) => (await instances()).find((i) => i.metadata.pod === pod);

const podToken = (pod: Pod, audience?: string) => podTokenIn(cp, pod, audience);

async function startSidecar(pod: Pod): Promise<void> {
  sidecars.set(pod.metadata.name, await startSidecarIn(cp, pod, work));
}

async function register(token: string | undefined, service: string): Promise<number> {
  const res = await fetch(`${base}/api/v1/instances`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token !== undefined && { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ service, namespace: 'shop', host: '10.9.9.9', port: 8080 }),
  });
  return res.status;
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true });
  work = await mkdtemp(join(tmpdir(), 'maxine-sidecar-e2e-'));
  // The health script: each pod's exit code is in a file named after the pod.
  const script = await writeHealthScript(work);
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  ({ operator, base, admin } = await startInjectingOperator(cp, 'shop'));
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
    failureThreshold: 2
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  selector: { app: orders }
`,
  );
  await untilInjects(cp, 'shop', { app: 'web' });
  await applyDeployment(cp, 'shop', 'web', { replicas: 2 });
}, 30 * 60_000);

afterAll(async () => {
  for (const { proc } of sidecars.values()) proc.kill('SIGKILL');
  await operator?.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('sidecar injection and sidecars', () => {
  it('the API server calls the webhook over TLS and pods come back with the native sidecar', async () => {
    const bundle = await kubectl([
      'get',
      'mutatingwebhookconfiguration',
      'maxine-sidecar-injector',
      '-o=jsonpath={.webhooks[*].clientConfig.caBundle}',
    ]);
    expect(bundle.split(' ').filter((b) => b.length > 100)).toHaveLength(2);
    const running = await podsWithIps(cp, 'shop', 'web', 2);
    for (const pod of running) {
      const sidecar = pod.spec.initContainers?.find((c) => c.name === 'maxine-sidecar');
      expect(sidecar).toMatchObject({ restartPolicy: 'Always' });
      expect(pod.metadata.annotations?.['maxine.io/status']).toBe('injected');
      expect(pod.spec.volumes?.map((v) => v.name)).toEqual(
        expect.arrayContaining(['maxine-token', 'maxine-podinfo']),
      );
      expect(envOf(pod)).toMatchObject({
        MAXINE_SERVICE: 'web',
        MAXINE_POD_NAME: pod.metadata.name,
        MAXINE_POD_NAMESPACE: 'shop',
        MAXINE_APP_PORT: '8080',
        MAXINE_OPERATOR_URL: base,
      });
    }
  });

  it('sidecars register with their pod token, heartbeat and report the health script', async () => {
    for (const pod of await pods()) await startSidecar(pod);
    const items = await eventually(
      async () => {
        const list = await instances();
        return (
          list.length === 2 &&
          list.every(
            (i) =>
              i.lease?.ttlSeconds === 3 &&
              i.health.status === 'passing' &&
              i.health.output?.startsWith('checked'),
          ) &&
          list
        );
      },
      30_000,
      'both pod instances leased and passing',
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}\n${[...sidecars.values()].map((s) => s.log.join('')).join('\n---\n')}`,
      );
    });
    for (const i of items) expect(i.health.output).toBe(`checked ${i.metadata.pod}\n`);
  });

  it('an app discovers through its sidecar on localhost', async () => {
    const podIps = new Set((await pods()).map((p) => p.status.podIP));
    const [first] = [...sidecars.values()];
    const res = await fetch(`${first!.url}/v1/discover/web?all=true`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { instances: { host: string }[] };
    expect(new Set(body.instances.map((i) => i.host))).toEqual(podIps);
    const one = (await (await fetch(`${first!.url}/v1/discover/web`)).json()) as {
      instance: { host: string; port: number };
    };
    expect(podIps.has(one.instance.host)).toBe(true);
    expect(one.instance.port).toBe(8080);
  });

  it('a failing script takes the instance out of discovery within interval × threshold + one heartbeat', async () => {
    const [pod] = await pods();
    const name = pod!.metadata.name;
    await writeFile(join(work, `${name}.code`), '2');
    const flipped = Date.now();
    await eventually(
      async () => (await instanceOf(name))?.health.status === 'critical',
      10_000,
      'instance critical',
    );
    const took = Date.now() - flipped;
    process.stderr.write(`[e2e] failing script → out of discovery in ${took} ms\n`);
    // interval 1 s × failureThreshold 2 + one heartbeat (ttl 3 s / 3 = 1 s).
    expect(took).toBeLessThanOrEqual(1000 * 2 + 1000 + 500);
    const [any] = [...sidecars.values()];
    await eventually(
      async () => {
        const body = (await (await fetch(`${any!.url}/v1/discover/web?all=true`)).json()) as {
          instances?: { host: string }[];
        };
        return body.instances?.length === 1 && body.instances[0]?.host !== pod!.status.podIP;
      },
      3000,
      'the sidecar copy drops it',
    );
    await writeFile(join(work, `${name}.code`), '0');
    await eventually(
      async () => (await instanceOf(name))?.health.status === 'passing',
      10_000,
      'instance passing again',
    );
  });

  it('a killed sidecar: its instance goes critical after the TTL, not before', async () => {
    const [, pod] = await pods();
    const name = pod!.metadata.name;
    sidecars.get(name)?.proc.kill('SIGKILL');
    const killed = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    // The last heartbeat was at most a third of the TTL before the kill.
    expect((await instanceOf(name))?.health.status).toBe('passing');
    const lapsed = await eventually(
      async () => {
        const i = await instanceOf(name);
        return i?.health.status === 'critical' && i;
      },
      10_000,
      'lease lapsed',
    );
    expect(lapsed.health.reason).toBe('lease-expired');
    process.stderr.write(
      `[e2e] killed sidecar → critical after ${Date.now() - killed} ms (TTL 3 s)\n`,
    );
  });

  it('refuses forged identities and registers nothing', async () => {
    const [a, b] = await pods();
    const before = (await instances()).length;
    // No token; garbage; a token for another audience.
    expect(await register(undefined, 'web')).toBe(401);
    expect(await register('not-a-token', 'web')).toBe(401);
    expect(await register(await podToken(a!, 'somebody-else'), 'web')).toBe(401);
    // A ServiceAccount token not bound to a pod.
    const unbound = (
      await kubectl(['create', 'token', 'default', '-n', 'shop', '--audience=maxine.io'])
    ).trim();
    expect(await register(unbound, 'web')).toBe(403);
    // A real pod token, but for a service that does not select the pod.
    const tokenA = await podToken(a!);
    expect(await register(tokenA, 'orders')).toBe(403);
    // Another pod's instance cannot be renewed or removed with this token.
    const other = await instanceOf(b!.metadata.name);
    const beat = await fetch(`${base}/api/v1/instances/${other!.id}/heartbeat`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokenA}` },
    });
    expect(beat.status).toBe(403);
    const removal = await fetch(`${base}/api/v1/instances/${other!.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${tokenA}` },
    });
    expect(removal.status).toBe(403);
    expect((await instances()).length).toBe(before);
    expect(await instanceOf(b!.metadata.name)).toBeDefined();
    // Its own token, its own service: allowed (the same instance, renewed).
    expect(await register(tokenA, 'web')).toBe(200);
  });

  it('a deleted pod is gone from the registry at once, and its token stops working', async () => {
    const [pod] = await pods();
    const name = pod!.metadata.name;
    const token = await podToken(pod!);
    await kubectl(['delete', 'pod', name, '-n', 'shop', '--wait=false']);
    const deleted = Date.now();
    await eventually(async () => (await instanceOf(name)) === undefined, 5000, 'instance gone');
    expect(Date.now() - deleted).toBeLessThan(1500);
    // The bound token dies with its pod object.
    await eventually(
      async () => (await cp.kubectl(['get', 'pod', name, '-n', 'shop'])).code !== 0,
      30_000,
      'pod object gone',
    );
    expect(await register(token, 'web')).toBe(401);
  });
});
