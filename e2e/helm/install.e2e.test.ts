/**
 * The Helm chart installed with a real helm into the e2e control plane (controller-manager,
 * scheduler and KWOK): the operator's pods scheduled on the KWOK node, the webhook
 * configuration, the CRDs and the RBAC present; `helm upgrade` keeps the CRDs, the custom
 * resources and the caBundle the operator writes; an invalid value fails `helm install` with the
 * schema's message; `helm uninstall` leaves the CRDs and the resources.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBinaries, startControlPlane } from '../controlplane/cluster.js';
import type { ControlPlane } from '../controlplane/cluster.js';
import { CHART, ensureHelm } from './helm.js';
import type { Helm } from './helm.js';

const NS = 'maxine-system';

/** The shell block of the README's "Install with Helm" section, one word list per command. */
function readmeHelmCommands(): string[][] {
  const text = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const start = text.indexOf('## Install with Helm\n');
  const section = text.slice(start, text.indexOf('\n## ', start + 1));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/));
}
const CRDS = [
  'maxineservices.maxine.io',
  'maxineintentions.maxine.io',
  'maxineacls.maxine.io',
  'maxineregistrations.maxine.io',
];

let cp: ControlPlane;
let helm: Helm;
const inCluster = (args: string[]) => helm([...args, '--kubeconfig', cp.kubeconfig]);

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const json = async (args: string[]): Promise<any> =>
  JSON.parse(await kubectl([...args, '-o', 'json']));

async function eventually<T>(
  what: string,
  check: () => Promise<T | false>,
  ms = 60_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== false) return value;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const operatorPods = async () =>
  (await json(['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/name=maxine-operator']))
    .items as any[];

const uids = async () =>
  Object.fromEntries(
    await Promise.all(CRDS.map(async (c) => [c, (await json(['get', 'crd', c])).metadata.uid])),
  );

beforeAll(async () => {
  helm = await ensureHelm();
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true });
}, 30 * 60_000);
afterAll(async () => cp?.stop());

describe('helm install charts/maxine on the e2e control plane', () => {
  it("the README's two commands install: pods on the KWOK node, CRDs, webhook and RBAC present", async () => {
    const [install, apply] = readmeHelmCommands();
    expect(install!.slice(0, 3)).toEqual(['helm', 'install', 'maxine']);
    const r = await inCluster([...install!.slice(1), '--timeout', '3m']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toContain('STATUS: deployed');
    expect(apply!.slice(0, 2)).toEqual(['kubectl', 'apply']);
    await kubectl(apply!.slice(1));
    // The examples are stored (KWOK runs no operator process to mark them Ready).
    expect((await json(['get', 'msvc', '-A'])).items.map((m: any) => m.metadata.name)).toContain(
      'orders',
    );

    const pods = await eventually('two Running operator pods', async () => {
      const p = await operatorPods();
      return p.length === 2 && p.every((x) => x.status.phase === 'Running') && p;
    });
    expect(pods.map((p) => p.spec.nodeName)).toEqual(['kwok-node-0', 'kwok-node-0']);
    expect(pods.map((p) => p.spec.serviceAccountName)).toEqual([
      'maxine-operator',
      'maxine-operator',
    ]);

    for (const crd of CRDS) {
      const c = await json(['get', 'crd', crd]);
      expect([crd, c.status.conditions.find((x: any) => x.type === 'Established')?.status]).toEqual(
        [crd, 'True'],
      );
    }

    const hook = await json(['get', 'mutatingwebhookconfiguration', 'maxine-sidecar-injector']);
    expect(
      hook.webhooks.map((w: any) => [
        w.name,
        w.clientConfig.service.namespace,
        w.clientConfig.service.name,
        w.failurePolicy,
      ]),
    ).toEqual([
      ['namespace.inject.maxine.io', NS, 'maxine-operator', 'Ignore'],
      ['pod.inject.maxine.io', NS, 'maxine-operator', 'Ignore'],
    ]);

    const as = `--as=system:serviceaccount:${NS}:maxine-operator`;
    const table: [string, string, string[], string][] = [
      ['watch', 'maxineservices.maxine.io', ['--all-namespaces'], 'yes'],
      ['create', 'maxineregistrations.maxine.io', ['--all-namespaces'], 'yes'],
      ['patch', 'pods', ['--all-namespaces', '--subresource=status'], 'yes'],
      ['create', 'tokenreviews.authentication.k8s.io', [], 'yes'],
      ['update', 'mutatingwebhookconfigurations/maxine-sidecar-injector', [], 'yes'],
      ['update', 'leases.coordination.k8s.io', ['-n', NS], 'yes'],
      ['update', 'leases.coordination.k8s.io', ['-n', 'default'], 'no'],
      ['get', 'secrets', ['--all-namespaces'], 'no'],
      ['delete', 'pods', ['--all-namespaces'], 'no'],
    ];
    for (const [verb, resource, extra, expected] of table) {
      const got = (await cp.kubectl(['auth', 'can-i', verb, resource, ...extra, as])).stdout.trim();
      expect(`${verb} ${resource} ${extra.join(' ')}: ${got}`).toBe(
        `${verb} ${resource} ${extra.join(' ')}: ${expected}`,
      );
    }
  });

  it('helm upgrade keeps the CRDs, the custom resources and the caBundle the operator wrote', async () => {
    const before = await uids();
    const orders = await json(['get', 'maxineservice', 'orders', '-n', 'shop']);
    // What the operator does when it starts: its CA into both webhooks' caBundle.
    const ca = Buffer.from(
      '-----BEGIN CERTIFICATE-----\nMAXINE\n-----END CERTIFICATE-----\n',
    ).toString('base64');
    await kubectl([
      'patch',
      'mutatingwebhookconfiguration',
      'maxine-sidecar-injector',
      '--type=json',
      '-p',
      JSON.stringify(
        [0, 1].map((i) => ({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: ca })),
      ),
    ]);

    // docs/operations.md "CRD upgrades": the CRDs first (helm never upgrades crds/), then helm.
    const crds = await cp.kubectl(['apply', '--server-side', '-f', join(CHART, 'crds')]);
    expect([crds.code, crds.stderr]).toEqual([0, '']);
    const r = await inCluster([
      'upgrade',
      'maxine',
      CHART,
      '--namespace',
      NS,
      '--set',
      'replicas=3',
      '--set',
      'webhook.failurePolicy=Fail',
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toContain('REVISION: 2');

    expect(await uids()).toEqual(before);
    const after = await json(['get', 'maxineservice', 'orders', '-n', 'shop']);
    expect([after.metadata.uid, after.spec]).toEqual([orders.metadata.uid, orders.spec]);
    expect((await json(['get', 'deployment', 'maxine-operator', '-n', NS])).spec.replicas).toBe(3);
    await eventually('three Running operator pods', async () => {
      const p = await operatorPods();
      return (
        p.length === 3 &&
        p.every((x) => x.status.phase === 'Running' && x.spec.nodeName === 'kwok-node-0')
      );
    });
    const hook = await json(['get', 'mutatingwebhookconfiguration', 'maxine-sidecar-injector']);
    expect(hook.webhooks.map((w: any) => [w.failurePolicy, w.clientConfig.caBundle])).toEqual([
      ['Fail', ca],
      ['Fail', ca],
    ]);
  });

  it('an invalid value fails helm install with the schema message and installs nothing', async () => {
    const r = await inCluster([
      'install',
      'broken',
      CHART,
      '--namespace',
      'broken',
      '--create-namespace',
      '--set',
      'webhook.failurePolicy=Sometimes',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema(s)");
    expect(r.stderr).toContain(
      "at '/webhook/failurePolicy': value must be one of 'Ignore', 'Fail'",
    );
    const list = await inCluster(['list', '--all-namespaces', '-o', 'json']);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((x) => x.name)).toEqual(['maxine']);
    expect((await cp.kubectl(['get', 'namespace', 'broken'])).code).not.toBe(0);
  });

  it('helm uninstall removes the operator but leaves the CRDs and the custom resources', async () => {
    const before = await uids();
    const r = await inCluster(['uninstall', 'maxine', '--namespace', NS, '--wait']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect((await cp.kubectl(['get', 'deployment', 'maxine-operator', '-n', NS])).code).not.toBe(0);
    expect(
      (await cp.kubectl(['get', 'mutatingwebhookconfiguration', 'maxine-sidecar-injector'])).code,
    ).not.toBe(0);
    expect(await uids()).toEqual(before);
    expect((await json(['get', 'maxineservice', 'orders', '-n', 'shop'])).metadata.name).toBe(
      'orders',
    );
  });
});
