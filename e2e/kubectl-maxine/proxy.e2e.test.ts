/**
 * `kubectl maxine` through the API server's service proxy, the whole way (issue 18): the
 * plugin → kube-apiserver `/api/v1/namespaces/maxine-system/services/maxine-operator:7710/proxy/`
 * → the operator, with the user's identity forwarded and checked by the operator.
 *
 * How the API server is made to proxy to an operator on this host (decision 0036): the service
 * proxy picks an address of the Service's Endpoints only when it names a Pod (`targetRef`) of
 * the Service's namespace whose `status.podIPs` hold that address, and Endpoints may not name a
 * loopback address. So the operator listens on this host's own non-loopback address, a Pod
 * `maxine-operator-e2e` gets that address written into its status (no kubelet here), and the
 * Endpoints `maxine-operator` name it, as the endpoints controller would for a running pod.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, freePorts, startControlPlane } from '../controlplane/cluster.js';
import type { ControlPlane } from '../controlplane/cluster.js';
import type { Operator } from '../../operator/operator.js';
import {
  installCrds,
  kubectl as kubectlIn,
  startKubeOperator,
  writeTokenKubeconfig,
} from '../operator-identity.js';
import { eventually } from '../../test/helpers/operator.js';
import { bundlePlugin } from '../../plugin/bundle.js';
import { startPlugin, tailUntil } from '../lib/plugin.js';
import type { PluginRun } from '../lib/plugin.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };
let work: string;
/** A ServiceAccount allowed to use the proxy, whose MaxineACL grants read on shop/web only. */
let viewerKubeconfig: string;
/** One whose MaxineACL grants read on all of shop. */
let leadKubeconfig: string;

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

/** This host's first non-loopback IPv4 address: the API server may proxy to it. */
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error(
    'this host has no non-loopback IPv4 address: the API server cannot proxy to a process here',
  );
}

const pluginEnv = (kubeconfig: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: work,
  KUBECONFIG: kubeconfig,
});

const runPlugin = (args: string[], kubeconfig: string): Promise<PluginRun> =>
  startPlugin(args, pluginEnv(kubeconfig)).done;

async function register(name: string, host: string): Promise<void> {
  const res = await fetch(`${base}/api/v1/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...admin },
    body: JSON.stringify({ service: name, namespace: 'shop', host, port: 8080 }),
  });
  expect(res.status).toBe(201);
}

/** The operator's Pod and Endpoints, as the endpoints controller would keep them for `ip`. */
async function endpointsFor(ip: string, port: number): Promise<void> {
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: v1
kind: Pod
metadata: { name: maxine-operator-e2e, namespace: maxine-system, labels: { app.kubernetes.io/name: maxine-operator } }
spec:
  serviceAccountName: maxine-operator
  containers: [{ name: operator, image: maxine-operator:e2e }]
`,
  );
  await kubectl([
    'patch',
    'pod',
    'maxine-operator-e2e',
    '-n',
    'maxine-system',
    '--subresource=status',
    '--type=merge',
    `-p=${JSON.stringify({ status: { podIP: ip, podIPs: [{ ip }] } })}`,
  ]);
  const uid = (
    await kubectl([
      'get',
      'pod',
      'maxine-operator-e2e',
      '-n',
      'maxine-system',
      '-o',
      'jsonpath={.metadata.uid}',
    ])
  ).trim();
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'maxine-operator', namespace: 'maxine-system' },
      subsets: [
        {
          addresses: [
            {
              ip,
              targetRef: {
                kind: 'Pod',
                namespace: 'maxine-system',
                name: 'maxine-operator-e2e',
                uid,
              },
            },
          ],
          ports: [{ name: 'http', port }],
        },
      ],
    }),
  );
}

/**
 * A ServiceAccount `name` of shop that may use the operator's service proxy, with a MaxineACL
 * granting read and discover on `services`; its kubeconfig.
 */
async function proxyUser(name: string, services: string[]): Promise<string> {
  await kubectl(['create', 'serviceaccount', name, '-n', 'shop']);
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: maxine-plugin-user, namespace: maxine-system }
rules: [{ apiGroups: [''], resources: [services/proxy], verbs: [get] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: ${name}, namespace: maxine-system }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: maxine-plugin-user }
subjects: [{ kind: ServiceAccount, name: ${name}, namespace: shop }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: ${name}, namespace: maxine-system }
spec:
  subjects: [{ kind: ServiceAccount, name: ${name}, namespace: shop }]
  rules: [{ services: ${JSON.stringify(services)}, verbs: [read, discover] }]
`,
  );
  const token = (await kubectl(['create', 'token', name, '-n', 'shop'])).trim();
  const path = join(work, `${name}.kubeconfig`);
  await writeTokenKubeconfig(cp, path, { user: name, token, context: name, namespace: 'shop' });
  return path;
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  work = await mkdtemp(join(tmpdir(), 'maxine-plugin-proxy-'));
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  const host = hostAddress();
  const [port] = (await freePorts(1)) as [number];
  ({ operator, admin } = await startKubeOperator(cp, { host, port }));
  base = `http://${host}:${port}`;
  await endpointsFor(host, port);
  for (const name of ['web', 'orders'])
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: ${name}, namespace: shop }\nspec: { selector: { app: ${name} } }\n`,
    );
  await eventually(
    async () =>
      (await fetch(`${base}/api/v1/services/shop/orders`, { headers: admin })).status === 200,
    30_000,
    'the operator knows shop/orders',
  );
  await register('web', '10.1.0.1');
  await register('orders', '10.1.0.2');
  viewerKubeconfig = await proxyUser('viewer', ['shop/web']);
  leadKubeconfig = await proxyUser('lead', ['shop/*']);
}, 30 * 60_000);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('kubectl maxine through the service proxy', () => {
  it('the user is who the operator sees: an ACL on shop/web shows shop/web only', async () => {
    // The ACL reaches the operator through its informer: wait until it is in force.
    await eventually(
      async () => (await runPlugin(['status', '-n', 'shop'], viewerKubeconfig)).code === 0,
      30_000,
      'the viewer ACL in force',
    );
    const r = await runPlugin(['status', '-n', 'shop'], viewerKubeconfig);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+READY/);
    expect(lines).toContainEqual(expect.stringMatching(/^shop\s+web\s+1\/1\s/));
    expect(r.stdout).not.toContain('orders');
    const found = await runPlugin(['discover', 'web'], viewerKubeconfig);
    expect(found.code).toBe(0);
    expect(found.stdout).toMatch(/web-\S+\s+10\.1\.0\.1:8080\s+passing/);
  });

  it('what the ACL does not grant is refused by the operator: exit 4', async () => {
    const r = await runPlugin(['discover', 'orders'], viewerKubeconfig);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^error: the operator answered 403 /);
    expect(r.stderr).toContain('shop/orders');
  });

  it('a client-certificate user has no token to forward: exit 4 naming --token', async () => {
    const r = await runPlugin(['status', '-n', 'shop'], cp.kubeconfig);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('the operator answered 401 UNAUTHENTICATED');
    expect(r.stderr).toContain('no bearer token for kubectl maxine to forward');
    // --token forwards another credential: here the viewer's, through the admin's proxy rights.
    const token = (await kubectl(['create', 'token', 'viewer', '-n', 'shop'])).trim();
    const withToken = await runPlugin(['status', '-n', 'shop', '--token', token], cp.kubeconfig);
    expect(withToken.code).toBe(0);
    expect(withToken.stdout).toMatch(/^shop\s+web\s/m);
    expect(withToken.stdout).not.toContain('orders');
  });

  it('events without -f prints the events the operator holds that the user may read, and exits 0', async () => {
    const r = await runPlugin(['events', '--types', 'service_registered'], viewerKubeconfig);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^\S+Z {2}service_registered {2}shop\/web {2}web-\S+$/m);
    expect(r.stdout).not.toContain('shop/orders'); // the viewer may not read it
  });

  it('events -f keeps the stream open and prints new events as they arrive, with its filters', async () => {
    let n = 10;
    const output = await tailUntil(
      ['events', '-f', '--services', 'web', '--types', 'service_registered'],
      async () => {
        await register('web', `10.1.0.${n++}`);
        await register('orders', `10.1.1.${n}`);
      },
      /service_registered {2}shop\/web {2}web-/,
      {
        env: pluginEnv(viewerKubeconfig),
        what: 'an event line through the service proxy',
        before: async (soFar) => {
          // Held events are not replayed with -f: only what happens from now on.
          await new Promise((resolve) => setTimeout(resolve, 2_000));
          expect(soFar()).toBe('');
        },
      },
    );
    expect(output).not.toContain('shop/orders');
  });

  it('status -o wide shows the breaker states the sidecars reported', async () => {
    // What shop/orders' sidecars would report of their calls to shop/web: one instance's circuit opened.
    const res = await fetch(`${base}/api/v1/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...admin },
      body: JSON.stringify({
        source: { namespace: 'shop', name: 'orders' },
        pod: 'orders-0',
        edges: [],
        circuits: [
          {
            destination: { namespace: 'shop', name: 'web' },
            from: 'closed',
            to: 'open',
            at: Date.now(),
          },
        ],
      }),
    });
    expect(res.status).toBeLessThan(300);
    // The event names its reporter: only who may read shop/orders too sees it.
    let r = await runPlugin(['status', '-n', 'shop', '-o', 'wide'], leadKubeconfig);
    await eventually(
      async () => {
        r = await runPlugin(['status', '-n', 'shop', '-o', 'wide'], leadKubeconfig);
        return /^shop\s+web\s.*\s1 open$/m.test(r.stdout);
      },
      30_000,
      'the open circuit in status -o wide',
    );
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^shop\s+orders\s.*\s<none>$/m);
    expect(r.stdout.split('\n')[0]).toMatch(/\s+REASON\s+BREAKERS$/);
    expect(r.stdout).toMatch(/^shop\s+web\s.*\s1 open$/m);
  });

  it('the single-file bundle runs on its own: no node_modules, no package.json beside it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maxine-plugin-bundle-'));
    try {
      const file = await bundlePlugin(join(dir, 'kubectl-maxine'));
      // Run as kubectl runs a plugin: the file itself (its #! line), from a directory of its own.
      const child = spawn(file, ['status', '-n', 'shop'], {
        cwd: dir,
        env: { PATH: process.env.PATH, HOME: dir, KUBECONFIG: viewerKubeconfig },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toMatch(/^shop\s+web\s+\d+\/\d+\s/m);
      expect(stdout).not.toContain('orders');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
