// A local control plane for people: `npm run cluster:up` starts etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok (one fake node) in .maxine/cluster,
// installs Maxine's CRDs and prints the KUBECONFIG to use; the processes keep running
// after the command returns. `npm run cluster:down` stops them and removes the directory.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopProcesses, type ProcessInfo } from './cluster.js';
import { startLocalCluster } from './up.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = path.join(ROOT, '.maxine', 'cluster');
const STATE = path.join(DIR, 'state.json');

interface State {
  dir: string;
  server: string;
  kubeconfig: string;
  binDir: string;
  startedAt: string;
  processes: ProcessInfo[];
}

async function readState(): Promise<State | undefined> {
  try {
    return JSON.parse(await fsp.readFile(STATE, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

function running(state: State): boolean {
  return state.processes.every((p) => {
    try {
      return fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0')[0] === p.cmd;
    } catch {
      return false;
    }
  });
}

async function down(): Promise<void> {
  const state = await readState();
  if (state) {
    await stopProcesses(state.processes, state.dir);
    console.error(`stopped the control plane in ${state.dir}`);
  } else {
    console.error('no control plane is running (no .maxine/cluster/state.json)');
  }
  await fsp.rm(DIR, { recursive: true, force: true });
}

async function up(): Promise<void> {
  const old = await readState();
  if (old && running(old)) {
    console.error(`already running: ${old.server} (npm run cluster:down to stop it)`);
    console.log(`export KUBECONFIG=${old.kubeconfig}`);
    return;
  }
  // Leftovers of a crashed or half-stopped cluster.
  if (old) await stopProcesses(old.processes, old.dir);
  await fsp.rm(DIR, { recursive: true, force: true });

  const cp = await startLocalCluster({ dir: DIR, detached: true });
  try {
    const state: State = {
      dir: cp.dir,
      server: cp.server,
      kubeconfig: cp.kubeconfig,
      binDir: cp.binDir,
      startedAt: new Date().toISOString(),
      processes: [...cp.processes],
    };
    await fsp.writeFile(STATE, JSON.stringify(state, null, 2) + '\n');
  } catch (e) {
    await cp.stop();
    throw e;
  }
  const t = cp.timings;
  console.error(
    `control plane ready at ${cp.server} in ${t.workloads ?? t.apiserver}s (apiserver ready after ${t.apiserver}s); ` +
      `CRDs installed; logs in ${path.join(cp.dir, 'logs')}; kubectl: ${path.join(cp.binDir, 'kubectl')}`,
  );
  console.error('stop it with: npm run cluster:down');
  console.log(`export KUBECONFIG=${cp.kubeconfig}`);
}

const command = process.argv[2];
try {
  if (command === 'up') await up();
  else if (command === 'down') await down();
  else {
    console.error('usage: tsx e2e/controlplane/cli.ts up|down');
    process.exitCode = 2;
  }
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
}
