// What `npm run cluster:up` starts, as a function the e2e tier shares with cli.ts: the control
// plane with workloads (controller-manager, scheduler, kwok) and Maxine's CRDs Established.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane, type StartOptions } from './cluster.js';
import { applyCrds } from '../lib/crds.js';

const CRDS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../crds');

export async function startLocalCluster(
  opts: Omit<StartOptions, 'workloads'> = {},
): Promise<ControlPlane> {
  const cp = await startControlPlane({ ...opts, workloads: true });
  try {
    await applyCrds((args) => cp.kubectl(args), CRDS);
  } catch (e) {
    await cp.stop();
    throw e;
  }
  return cp;
}
