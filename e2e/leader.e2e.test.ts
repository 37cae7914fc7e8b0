/**
 * Two operator replicas on a real control plane: one leads (holds the Lease and writes status),
 * both serve reads; killed with SIGKILL, the leader is replaced within the lease duration.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configSchema } from '../operator/config.js';
import { createOperator } from '../operator/operator.js';
import { loadKubeParts } from '../operator/kube/load-parts.js';
import type { Operator } from '../operator/operator.js';
import { createLogger } from '../common/logger.js';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { eventually } from '../test/helpers/operator.js';
import { spawnListening } from '../test/helpers/spawn.js';
import { operatorKubeconfig } from './operator-identity.js';

const LEASE_SECONDS = 3;
let cp: ControlPlane;
let kubeconfig: string;
let child: ChildProcess | undefined;
let follower: Operator | undefined;

async function health(port: number): Promise<{ leader: boolean } | undefined> {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { leader: boolean };
  } catch {
    return undefined;
  }
}

const leaseFlags = [
  '--lease-duration-seconds',
  String(LEASE_SECONDS),
  '--lease-renew-seconds',
  '1',
];

/** The first replica as a real process, so it can be killed without a chance to let go. */
async function startChild(): Promise<number> {
  const started = await spawnListening(
    [
      '--import',
      'tsx',
      'operator/main.ts',
      '--mode',
      'kubernetes',
      '--kubeconfig',
      kubeconfig,
      '--port',
      '0',
      '--webhook',
      'false',
      ...leaseFlags,
    ],
    { timeoutMs: 120_000 },
  );
  child = started.proc;
  return started.port;
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  const crds = await cp.kubectl(['apply', '-f', join(process.cwd(), 'crds')]);
  if (crds.code !== 0) throw new Error(crds.stderr);
  kubeconfig = await operatorKubeconfig(cp);
}, 30 * 60_000);

afterAll(async () => {
  child?.kill('SIGKILL');
  await follower?.stop();
  await cp?.stop();
});

describe('leader election', () => {
  it('one replica leads; killed, another takes over within the lease duration', async () => {
    const leaderPort = await startChild();
    await eventually(async () => (await health(leaderPort))?.leader === true, 10_000);

    const sink = new Writable({ write: (_c, _e, done) => done() });
    await loadKubeParts();
    follower = createOperator(
      configSchema.parse({
        port: 0,
        mode: 'kubernetes',
        kubeconfig,
        logLevel: 'info',
        leaseDurationSeconds: LEASE_SECONDS,
        leaseRenewSeconds: 1,
        webhook: false,
      }),
      createLogger('warn', sink),
    );
    const followerPort = (await follower.start()).port;
    // Both serve reads; only one leads.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await health(leaderPort))?.leader).toBe(true);
    expect((await health(followerPort))?.leader).toBe(false);
    const lease = await cp.kubectl([
      'get',
      'lease',
      'maxine-operator',
      '-n',
      'maxine-system',
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    expect(lease.stdout).not.toBe('');

    child?.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(
      async () => (await health(followerPort))?.leader === true,
      (LEASE_SECONDS + 3) * 1000,
    );
    const tookMs = Date.now() - killedAt;
    process.stdout.write(
      `leader takeover after SIGKILL: ${tookMs} ms (lease ${LEASE_SECONDS} s, renew 1 s)\n`,
    );
    expect(tookMs).toBeLessThanOrEqual((LEASE_SECONDS + 2) * 1000);

    // The new leader writes status.
    const applied = await cp.kubectl(['apply', '-f', '-'], {
      input:
        'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: led, namespace: default }\nspec: {}\n',
    });
    expect(applied.code).toBe(0);
    await eventually(async () => {
      const r = await cp.kubectl([
        'get',
        'msvc',
        'led',
        '-o',
        'jsonpath={.status.observedGeneration}',
      ]);
      return r.stdout === '1';
    }, 5000);
  });
});
