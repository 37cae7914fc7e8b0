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
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, freePorts, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { installCrds, startKubeOperator, kubectl as kubectlIn } from './operator-identity.js';
import { eventually } from '../test/helpers/operator.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };
let work: string;
const sidecars = new Map<string, { proc: ChildProcess; url: string; log: string[] }>();

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Pod {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    initContainers?: {
      name: string;
      restartPolicy?: string;
      env?: EnvVar[];
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: { name: string; projected?: unknown }[];
  };
  status: { podIP?: string; phase?: string };
}
interface Instance {
  id: string;
  host: string;
  health: { status: string; reason?: string; output?: string };
  lease?: { ttlSeconds: number };
  metadata: Record<string, string>;
}

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

async function pods(): Promise<Pod[]> {
  const list = JSON.parse(
    await kubectl(['get', 'pods', '-n', 'shop', '-l', 'app=web', '-o', 'json']),
  );
  return (list.items as Pod[]).filter(
    (p) => (p.metadata as { deletionTimestamp?: string }).deletionTimestamp === undefined,
  );
}

async function instances(): Promise<Instance[]> {
  const res = await fetch(`${base}/api/v1/services/shop/web`, { headers: admin });
  return res.status === 200 ? ((await res.json()) as { items: Instance[] }).items : [];
}

const instanceOf = async (pod: string) => (await instances()).find((i) => i.metadata.pod === pod);

/** A token as kubelet mints the projected one: bound to the pod, for our audience. */
async function podToken(pod: Pod, audience = 'maxine.io'): Promise<string> {
  return (
    await kubectl([
      'create',
      'token',
      pod.spec.serviceAccountName ?? 'default',
      '-n',
      'shop',
      `--audience=${audience}`,
      '--bound-object-kind=Pod',
      `--bound-object-name=${pod.metadata.name}`,
      `--bound-object-uid=${pod.metadata.uid}`,
      '--duration=1h',
    ])
  ).trim();
}

/** The sidecar's environment as the webhook wrote it, with the downward API resolved. */
function envOf(pod: Pod): Record<string, string> {
  const sidecar = pod.spec.initContainers?.find((c) => c.name === 'maxine-sidecar');
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'status.podIP': pod.status.podIP,
    'spec.nodeName': pod.spec.nodeName,
    'spec.serviceAccountName': pod.spec.serviceAccountName,
  };
  const env: Record<string, string> = {};
  for (const v of sidecar?.env ?? []) {
    const value = v.valueFrom?.fieldRef ? fields[v.valueFrom.fieldRef.fieldPath] : v.value;
    if (value === undefined)
      throw new Error(`cannot resolve ${v.name} of pod ${pod.metadata.name}`);
    env[v.name] = value;
  }
  return env;
}

async function startSidecar(pod: Pod): Promise<void> {
  const env = envOf(pod);
  const tokenFile = join(work, `${pod.metadata.name}.token`);
  await writeFile(tokenFile, await podToken(pod), { mode: 0o600 });
  const [port] = await freePorts(1);
  const proc = spawn(process.execPath, ['--import', 'tsx', 'sidecar/main.ts'], {
    env: {
      PATH: process.env.PATH,
      ...env,
      MAXINE_TOKEN_FILE: tokenFile,
      MAXINE_LISTEN_HOST: '127.0.0.1',
      MAXINE_LISTEN_PORT: String(port),
      MAXINE_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  proc.stdout?.on('data', (c: Buffer) => log.push(c.toString()));
  proc.stderr?.on('data', (c: Buffer) => log.push(c.toString()));
  sidecars.set(pod.metadata.name, { proc, url: `http://127.0.0.1:${port}`, log });
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

/** A pod in shop created with a server-side dry run: what admission (our webhook) makes of it. */
function dryRunPod(labels: Record<string, string>) {
  return cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: 'shop', labels },
      spec: { containers: [{ name: 'app', image: 'probe' }] },
    }),
  });
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true });
  work = await mkdtemp(join(tmpdir(), 'maxine-sidecar-e2e-'));
  // The health script: each pod's exit code is in a file named after the pod.
  const script = join(work, 'check.sh');
  await writeFile(
    script,
    `#!/bin/sh\necho "checked $MAXINE_POD_NAME"\nexit $(cat ${work}/$MAXINE_POD_NAME.code 2>/dev/null || echo 0)\n`,
  );
  await chmod(script, 0o755);
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  const [apiPort, webhookPort] = (await freePorts(2)) as [number, number];
  ({ operator, base, admin } = await startKubeOperator(cp, {
    port: apiPort,
    webhook: true,
    webhookHost: '127.0.0.1',
    webhookPort,
    webhookIps: '127.0.0.1',
    webhookDnsNames: 'localhost',
    sidecarImage: 'maxine-sidecar:e2e',
    sidecarOperatorUrl: `http://127.0.0.1:${apiPort}`,
  }));
  // The manifests point the webhook at the in-cluster Service; this operator runs on the host.
  for (const [i, path] of [
    [0, '/inject/namespace'],
    [1, '/inject'],
  ] as const) {
    await kubectl([
      'patch',
      'mutatingwebhookconfiguration',
      'maxine-sidecar-injector',
      '--type=json',
      `-p=${JSON.stringify([
        { op: 'remove', path: `/webhooks/${i}/clientConfig/service` },
        {
          op: 'add',
          path: `/webhooks/${i}/clientConfig/url`,
          value: `https://127.0.0.1:${webhookPort}${path}`,
        },
        { op: 'replace', path: `/webhooks/${i}/failurePolicy`, value: 'Fail' },
      ])}`,
    ]);
  }
  await operator.whenWebhookReady();
  // The API server picks up the patched webhook configuration a moment later; until then it
  // still calls the in-cluster Service (unreachable here) and, failing open, admits pods
  // without the sidecar. A server-side dry run shows when our webhook answers: no
  // MaxineService selects the probe yet, so the answer is its warning saying so.
  await eventually(
    async () => {
      const probe = await dryRunPod({});
      return probe.code === 0 && probe.stderr.includes('no MaxineService selects this pod');
    },
    30_000,
    'webhook configuration in force',
  );
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
  // The webhook injects pods a MaxineService selects, as the operator's informer knows them:
  // the Deployment waits until a dry run of one of its pods comes back with the sidecar, or
  // the first pods could be admitted before the operator has seen the MaxineService.
  await eventually(
    async () => {
      const probe = await dryRunPod({ app: 'web' });
      return probe.code === 0 && probe.stdout.includes('maxine-sidecar');
    },
    30_000,
    'the operator knows the web MaxineService',
  );
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: app
          image: web:e2e
          ports: [{ containerPort: 8080 }]
`,
  );
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
    const running = await eventually(
      async () => {
        const list = await pods();
        return list.length === 2 && list.every((p) => p.status.podIP) && list;
      },
      60_000,
      'two Running pods with IPs',
    );
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
