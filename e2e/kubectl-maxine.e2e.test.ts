/**
 * The `kubectl-maxine` plugin against a real control plane, run as the executable it is (a
 * child process with a kubeconfig). The operator runs on this host; the e2e control plane runs
 * no controller-manager, and its API server's service proxy answered "no endpoints available"
 * for a hand-made Endpoints/EndpointSlice naming a host address (decision 0030), so the
 * commands' answers are checked with --server straight at the operator (and its admin token),
 * and the service-proxy path with what it answers here: no endpoints (the operator's pod is not
 * running: exit 3), no Service (exit 3), no RBAC (exit 4). inject-check reads the API server
 * with the user's credentials. Also: the monitoring rules' and dashboard's metric names
 * against this Kubernetes-mode operator's scrape (webhook and mesh metrics included).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { installCrds, kubectl as kubectlIn, writeTokenKubeconfig } from './operator-identity.js';
import { startInjectingOperator } from './injection.js';
import { eventually } from '../test/helpers/operator.js';
import { missingFromScrape } from '../monitoring/scrape-check.js';
import { startPlugin, tailUntil } from './lib/plugin.js';
import type { PluginRun } from './lib/plugin.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };
let work: string;
let forbiddenKubeconfig: string;
/** The flags that send the plugin straight to the operator, as its administrator. */
let direct: string[] = [];

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

const pluginEnv = (kubeconfig?: string): NodeJS.ProcessEnv => ({
  ...process.env,
  KUBECONFIG: kubeconfig ?? cp.kubeconfig,
});

/** Runs the plugin as kubectl would, with the admin kubeconfig unless told otherwise. */
const runPlugin = (args: string[], kubeconfig?: string): Promise<PluginRun> =>
  startPlugin(args, pluginEnv(kubeconfig)).done;

async function register(host: string): Promise<void> {
  const res = await fetch(`${base}/api/v1/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...admin },
    body: JSON.stringify({ service: 'web', namespace: 'shop', host, port: 8080 }),
  });
  expect(res.status).toBe(201);
}

/** A kubeconfig for a ServiceAccount with no RBAC at all. */
async function kubeconfigWithoutRights(): Promise<string> {
  await kubectl(['create', 'serviceaccount', 'nobody', '-n', 'default']);
  const token = (await kubectl(['create', 'token', 'nobody', '-n', 'default'])).trim();
  const path = join(work, 'nobody.kubeconfig');
  await writeTokenKubeconfig(cp, path, {
    user: 'nobody',
    token,
    context: 'nobody',
    namespace: 'shop',
  });
  return path;
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  work = await mkdtemp(join(tmpdir(), 'maxine-plugin-e2e-'));
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  // No controller-manager here: the namespace's default ServiceAccount, which pods need, is ours to make.
  await kubectl(['create', 'serviceaccount', 'default', '-n', 'shop']);
  ({ operator, base, admin } = await startInjectingOperator(cp, 'shop'));
  // --token=<value>: the random admin token may start with '-', which a separate argument would
  // not allow (the parser would read it as an option).
  direct = ['--server', base, `--token=${admin.authorization.replace(/^Bearer /, '')}`];
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  dependencies: [{ name: orders }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  selector: { app: orders }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders, namespace: shop }
spec:
  destination: { name: orders }
  sources:
    - name: web
      permissions:
        - action: allow
          http: { pathPrefix: /orders, methods: [GET] }
        - action: deny
          http: { pathPrefix: / }
`,
  );
  await eventually(
    async () =>
      (await fetch(`${base}/api/v1/services/shop/orders`, { headers: admin })).status === 200,
    30_000,
    'the operator knows shop/orders',
  );
  await register('10.1.0.1');
  forbiddenKubeconfig = await kubeconfigWithoutRights();
}, 30 * 60_000);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('kubectl maxine commands', () => {
  it('status lists the services with instance health, as a table and as JSON', async () => {
    const table = await runPlugin(['status', '-n', 'shop', ...direct]);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+READY\s+PASSING\s+WARNING\s+CRITICAL$/);
    expect(lines).toContainEqual(expect.stringMatching(/^shop\s+web\s+1\/1\s+1\s+0\s+0$/));
    expect(lines).toContainEqual(expect.stringMatching(/^shop\s+orders\s+0\/0\s+0\s+0\s+0$/));
    const json = await runPlugin(['status', '-n', 'shop', '-o', 'json', ...direct]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      services: expect.arrayContaining([
        expect.objectContaining({
          name: 'web',
          instances: expect.objectContaining({ passing: 1 }),
        }),
      ]) as unknown,
    });
  });

  it('discover answers the instance; an unknown service is exit 5', async () => {
    const found = await runPlugin(['discover', 'web', '-n', 'shop', '-o', 'wide', ...direct]);
    expect(found.code).toBe(0);
    expect(found.stdout).toMatch(/^ID\s+ADDRESS\s+HEALTH\s+VERSION\s+ZONE\s+DATACENTER\s+WEIGHT\n/);
    expect(found.stdout).toMatch(/web-\S+\s+10\.1\.0\.1:8080\s+passing/);
    const missing = await runPlugin(['discover', 'shop/nope', ...direct]);
    expect(missing.code).toBe(5);
    expect(missing.stderr).toContain('404 SERVICE_NOT_FOUND');
  });

  it('why shows which intention decides, for a path and method', async () => {
    const allowed = await runPlugin([
      'why',
      'web',
      'orders',
      '-n',
      'shop',
      '--method',
      'GET',
      '--path',
      '/orders/7',
      ...direct,
    ]);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('Allowed:     yes\n');
    expect(allowed.stdout).toMatch(/Decided by:\s+intention shop\/orders/);
    const denied = await runPlugin([
      'why',
      'shop/web',
      'shop/orders',
      '--method',
      'DELETE',
      '--path',
      '/orders/7',
      ...direct,
    ]);
    expect(denied.code).toBe(0);
    expect(denied.stdout).toContain('Allowed:     no\n');
    expect(denied.stdout).toMatch(/Reason:\s+\S/);
  });

  it('graph shows the declared edge, as a table and as DOT', async () => {
    const table = await runPlugin(['graph', '-n', 'shop', ...direct]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^shop\/web\s+shop\/orders\s+true\s+false\s+true$/m);
    const dot = await runPlugin(['graph', '-n', 'shop', '-o', 'dot', ...direct]);
    expect(dot.code).toBe(0);
    expect(dot.stdout).toMatch(/^digraph maxine \{/);
    expect(dot.stdout).toContain('"shop/web" -> "shop/orders"');
  });

  it('events -f tails the stream with its filters', async () => {
    // The plugin prints nothing before an event: register until one shows up.
    let n = 2;
    const output = await tailUntil(
      [
        'events',
        '-f',
        '-n',
        'shop',
        '--services',
        'web',
        '--types',
        'service_registered',
        ...direct,
      ],
      () => register(`10.1.0.${n++}`),
      /service_registered\s+shop\/web\s+web-/,
      { env: pluginEnv(), what: 'an event line' },
    );
    expect(output).not.toContain('shop/orders');
  });

  it('inject-check explains an injected pod and one that opted out', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Pod
metadata: { name: web-injected, namespace: shop, labels: { app: web } }
spec: { containers: [{ name: app, image: example.test/web:1 }] }
---
apiVersion: v1
kind: Pod
metadata:
  name: web-opted-out
  namespace: shop
  labels: { app: web }
  annotations: { maxine.io/inject: 'false' }
spec: { containers: [{ name: app, image: example.test/web:1 }] }
`,
    );
    const injected = await runPlugin(['inject-check', 'web-injected', '-n', 'shop']);
    expect(injected.code).toBe(0);
    expect(injected.stdout).toContain('Verdict:  injected: the pod has the sidecar');
    expect(injected.stdout).toMatch(
      /yes\s+webhook namespace\.inject\.maxine\.io\s+called for this pod/,
    );
    const out = await runPlugin(['inject-check', 'web-opted-out', '-n', 'shop', '-o', 'json']);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({
      injected: false,
      verdict: 'not injected: maxine.io/inject is "false"',
    });
    const none = await runPlugin(['inject-check', 'no-such-pod', '-n', 'shop']);
    expect(none.code).toBe(5);
    expect(none.stderr).toContain('pod shop/no-such-pod not found');
  });
});

describe('kubectl maxine failures', () => {
  it('through the service proxy: an operator without endpoints is exit 3', async () => {
    // What the endpoints controller keeps for a Service whose pods are not ready: no addresses.
    await kubectl(
      ['apply', '-f', '-'],
      'apiVersion: v1\nkind: Endpoints\nmetadata: { name: maxine-operator, namespace: maxine-system }\n',
    );
    const r = await runPlugin(['status', '-n', 'shop']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('the Maxine operator does not answer (503): no endpoints available');
    expect(r.stderr).toContain('kubectl -n maxine-system get pods,endpoints maxine-operator');
  });

  it('a missing operator is exit 3 with what to look for', async () => {
    const r = await runPlugin(['status', '--operator-namespace', 'nowhere']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no Maxine operator: .*not found\. Is Maxine installed\?/);
    const unreachable = await runPlugin(['status', '--server', 'http://127.0.0.1:9']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('cannot reach http://127.0.0.1:9');
  });

  it('missing rights are exit 4 naming the permission', async () => {
    const r = await runPlugin(['status'], forbiddenKubeconfig);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('the API server refused (403)');
    expect(r.stderr).toContain('kubectl auth can-i get services/proxy -n maxine-system');
    const pod = await runPlugin(['inject-check', 'web-injected'], forbiddenKubeconfig);
    expect(pod.code).toBe(4);
    expect(pod.stderr).toContain('refused (403) to get pod shop/web-injected');
  });

  it('--server with a wrong token is exit 4', async () => {
    const wrong = await runPlugin(['status', '--server', base, '--token', 'not-a-token']);
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toContain('401 UNAUTHENTICATED');
  });

  it('a usage error is exit 2', async () => {
    const r = await runPlugin(['why', 'web']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('why takes SOURCE DESTINATION');
  });
});

describe('monitoring against a Kubernetes-mode operator', () => {
  it('every metric the rules and the dashboard read is in its scrape', async () => {
    const scrape = await (await fetch(`${base}/metrics`, { headers: admin })).text();
    expect(scrape).toContain('maxine_webhook_reviews_total{outcome="injected"}');
    expect(Object.fromEntries(await missingFromScrape(scrape))).toEqual({});
  });
});
