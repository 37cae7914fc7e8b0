/**
 * The operator's identity in the e2e tier: its manifests (namespace, ServiceAccount,
 * least-privilege ClusterRole) applied as a user would, and a kubeconfig holding a token of
 * that ServiceAccount, so the operator under test has exactly its RBAC rights.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { ControlPlane } from './controlplane/cluster.js';

export const OPERATOR_NAMESPACE = 'maxine-system';
export const OPERATOR_SERVICE_ACCOUNT = 'maxine-operator';

interface Kubeconfig {
  clusters: { name: string; cluster: { server: string; 'certificate-authority-data'?: string } }[];
}

async function kubectl(cp: ControlPlane, args: string[]): Promise<string> {
  const r = await cp.kubectl(args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Applies manifests/ and returns the path of a kubeconfig with the operator's token. */
export async function operatorKubeconfig(cp: ControlPlane): Promise<string> {
  await kubectl(cp, ['apply', '-k', join(process.cwd(), 'manifests')]);
  const token = (
    await kubectl(cp, [
      'create',
      'token',
      OPERATOR_SERVICE_ACCOUNT,
      '-n',
      OPERATOR_NAMESPACE,
      '--duration=2h',
    ])
  ).trim();
  const admin = parse(await readFile(cp.kubeconfig, 'utf8')) as Kubeconfig;
  const cluster = admin.clusters[0];
  if (cluster === undefined) throw new Error(`no cluster in ${cp.kubeconfig}`);
  const path = join(cp.dir, 'operator.kubeconfig');
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [cluster],
      users: [{ name: OPERATOR_SERVICE_ACCOUNT, user: { token } }],
      contexts: [
        { name: 'operator', context: { cluster: cluster.name, user: OPERATOR_SERVICE_ACCOUNT } },
      ],
      'current-context': 'operator',
    }),
    { mode: 0o600 },
  );
  return path;
}
