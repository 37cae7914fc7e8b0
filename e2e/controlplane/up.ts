// What `npm run cluster:up` starts, as a function the e2e tier shares with cli.ts: the control
// plane with workloads (controller-manager, scheduler, kwok) and Maxine's CRDs Established.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane, type StartOptions } from './cluster.js';

const CRDS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../crds');

export async function startLocalCluster(
  opts: Omit<StartOptions, 'workloads'> = {},
): Promise<ControlPlane> {
  const cp = await startControlPlane({ ...opts, workloads: true });
  try {
    const applied = await cp.kubectl(['apply', '-f', CRDS]);
    if (applied.code !== 0) throw new Error(`kubectl apply -f crds/: ${applied.stderr}`);
    const established = await cp.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      '-f',
      CRDS,
    ]);
    if (established.code !== 0) throw new Error(`kubectl wait crds: ${established.stderr}`);
  } catch (e) {
    await cp.stop();
    throw e;
  }
  return cp;
}
