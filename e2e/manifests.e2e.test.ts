/** The operator's manifests against a real API server: accepted, and least privilege. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import {
  OPERATOR_NAMESPACE,
  OPERATOR_SERVICE_ACCOUNT,
  operatorKubeconfig,
} from './operator-identity.js';

type KubeObject = { kind: string; spec: any };

let cp: ControlPlane;
const as = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SERVICE_ACCOUNT}`;

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  const crds = await cp.kubectl(['apply', '-f', join(process.cwd(), 'crds')]);
  if (crds.code !== 0) throw new Error(crds.stderr);
}, 30 * 60_000);
afterAll(async () => cp?.stop());

describe('manifests', () => {
  it('pass server-side dry run', async () => {
    const dir = join(process.cwd(), 'manifests');
    // Namespaced objects need their namespace to exist for a server-side dry run.
    const ns = await cp.kubectl(['apply', '--dry-run=server', '-f', join(dir, 'namespace.yaml')]);
    expect([ns.code, ns.stderr]).toEqual([0, '']);
    expect((await cp.kubectl(['apply', '-f', join(dir, 'namespace.yaml')])).code).toBe(0);
    const r = await cp.kubectl(['apply', '--dry-run=server', '-k', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const object of [
      'serviceaccount/maxine-operator',
      'clusterrole.rbac.authorization.k8s.io/maxine-operator',
      'clusterrolebinding.rbac.authorization.k8s.io/maxine-operator',
      'deployment.apps/maxine-operator',
      'poddisruptionbudget.policy/maxine-operator',
      'service/maxine-operator',
    ]) {
      expect(r.stdout).toContain(object);
    }
  });

  it('run two replicas spread by host, kept by a PodDisruptionBudget, each advertising its pod IP', async () => {
    const dir = join(process.cwd(), 'manifests');
    const r = await cp.kubectl(['apply', '--dry-run=server', '-k', dir, '-o', 'json']);
    expect(r.code).toBe(0);
    const { items } = JSON.parse(r.stdout) as { items: KubeObject[] };
    const deployment = items.find((o) => o.kind === 'Deployment')!;
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual([
      {
        weight: 100,
        podAffinityTerm: {
          topologyKey: 'kubernetes.io/hostname',
          labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'maxine-operator' } },
        },
      },
    ]);
    const env = pod.containers[0].env as { name: string; value?: string; valueFrom?: unknown }[];
    const names = env.map((e) => e.name);
    expect(env.find((e) => e.name === 'MAXINE_POD_IP')?.valueFrom).toEqual({
      fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' },
    });
    // $(MAXINE_POD_IP) expands only when that variable comes first.
    expect(env.find((e) => e.name === 'MAXINE_ADVERTISE_URL')?.value).toBe(
      'http://$(MAXINE_POD_IP):7710',
    );
    expect(names.indexOf('MAXINE_POD_IP')).toBeLessThan(names.indexOf('MAXINE_ADVERTISE_URL'));
    const pdb = items.find((o) => o.kind === 'PodDisruptionBudget')!;
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector).toEqual(deployment.spec.selector);
  });

  it('give the operator exactly what it uses (kubectl auth can-i as its ServiceAccount)', async () => {
    await operatorKubeconfig(cp);
    const can = async (verb: string, resource: string) => {
      const [name, subresource] = resource.split('/');
      const args = ['auth', 'can-i', verb, name!, '--all-namespaces', `--as=${as}`];
      if (subresource !== undefined) args.push(`--subresource=${subresource}`);
      return (await cp.kubectl(args)).stdout.trim();
    };
    const table: [string, string, string][] = [
      ['watch', 'maxineservices.maxine.io', 'yes'],
      ['list', 'maxineacls.maxine.io', 'yes'],
      ['patch', 'maxineintentions.maxine.io/status', 'yes'],
      ['watch', 'pods', 'yes'],
      ['update', 'maxineservices.maxine.io', 'no'],
      ['delete', 'pods', 'no'],
      ['get', 'secrets', 'no'],
      ['create', 'deployments.apps', 'no'],
    ];
    for (const [verb, resource, expected] of table) {
      expect(`${verb} ${resource}: ${await can(verb, resource)}`).toBe(
        `${verb} ${resource}: ${expected}`,
      );
    }
  });
});
