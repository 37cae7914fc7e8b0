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
      'service/maxine-operator',
    ]) {
      expect(r.stdout).toContain(object);
    }
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
