/**
 * Config versions in Kubernetes mode against a real kube-apiserver: the operator records the
 * version and hash in MaxineService status (`status.config`), and a restarted operator starts
 * from it (same config: same version; changed: version + 1). The rollback docs/api.md shows
 * (curl the history, jq a JSON patch, kubectl patch) is run exactly as written.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { configHash } from '../common/config-version.js';
import type { Operator } from '../operator/operator.js';
import { eventually } from '../test/helpers/operator.js';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import {
  installCrds,
  kubectl as kubectlIn,
  operatorKubeconfig,
  startKubeOperator,
} from './operator-identity.js';

let cp: ControlPlane;
let kubeconfig: string;
let work: string;
const operators: Operator[] = [];

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

const cart = (config: Record<string, string>) => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec:
  config: ${JSON.stringify(config)}
`;

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  kubeconfig = await operatorKubeconfig(cp);
  work = await mkdtemp(join(tmpdir(), 'maxine-config-e2e-'));
}, 30 * 60_000);

afterAll(async () => {
  for (const op of operators) await op.stop();
  await cp?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

async function start() {
  const started = await startKubeOperator(cp, { kubeconfig, statusResyncMs: 300 });
  operators.push(started.operator);
  const token = started.admin.authorization.slice('Bearer '.length);
  const history = async (): Promise<any> => {
    const res = await fetch(`${started.base}/api/v1/services/shop/cart/config/history`, {
      headers: started.admin,
    });
    return res.status === 200 ? res.json() : { version: -res.status };
  };
  return { ...started, token, history };
}

const statusConfig = async (): Promise<{ version?: number; hash?: string } | undefined> =>
  JSON.parse(await kubectl(['get', 'msvc', 'cart', '-n', 'shop', '-o', 'json'])).status?.config;

/** The shell block docs/api.md marks `config-rollback`, as written. */
async function rollbackBlock(): Promise<string> {
  const doc = await readFile(join(process.cwd(), 'docs/api.md'), 'utf8');
  const at = doc.indexOf('<!-- config-rollback:');
  expect(at).toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(doc.slice(at));
  expect(block).not.toBeNull();
  return block![1]!;
}

function sh(script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      ['-euo', 'pipefail', '-c', script],
      { cwd: work, env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

describe('config versions in Kubernetes mode', () => {
  it('survive an operator restart through status.config, and the documented kubectl rollback is the next version', async () => {
    const a = await start();
    await kubectl(['apply', '-f', '-'], cart({ A: '1' }));
    await eventually(async () => (await a.history()).version === 1, 10_000, 'version 1');
    await kubectl(['apply', '-f', '-'], cart({ A: '2', B: 'x' }));
    await eventually(async () => (await a.history()).version === 2, 10_000, 'version 2');
    await kubectl(['apply', '-f', '-'], cart({ A: '3' }));
    await eventually(async () => (await a.history()).version === 3, 10_000, 'version 3');

    // docs/api.md: back to version 2, with curl, jq and kubectl patch.
    await sh(await rollbackBlock(), {
      MAXINE: a.base,
      TOKEN: a.token,
      KUBECONFIG: cp.kubeconfig,
      PATH: `${cp.binDir}:${process.env.PATH ?? ''}`,
    });
    await eventually(async () => (await a.history()).version === 4, 10_000, 'version 4');
    const rolledBack = await a.history();
    expect(rolledBack.hash).toBe(configHash({ A: '2', B: 'x' }));
    expect(rolledBack.entries[0]).toMatchObject({
      version: 4,
      values: { A: '2', B: 'x' },
      changes: { added: ['B'], changed: ['A'], removed: [] },
    });
    const spec = JSON.parse(
      await kubectl(['get', 'msvc', 'cart', '-n', 'shop', '-o', 'json']),
    ).spec;
    expect(spec.config).toEqual({ A: '2', B: 'x' });
    await eventually(async () => (await statusConfig())?.version === 4, 10_000, 'status v4');
    expect(await statusConfig()).toEqual({ version: 4, hash: configHash({ A: '2', B: 'x' }) });

    // A new operator process: the same config keeps version 4 (not 1).
    await a.operator.stop();
    const b = await start();
    await eventually(async () => (await b.history()).version === 4, 10_000, 'version 4 kept');
    expect((await b.history()).hash).toBe(configHash({ A: '2', B: 'x' }));
    // Changed: version 5, recorded in the status.
    await kubectl(['apply', '-f', '-'], cart({ A: '5' }));
    await eventually(async () => (await b.history()).version === 5, 10_000, 'version 5');
    await eventually(async () => (await statusConfig())?.version === 5, 10_000, 'status v5');
  }, 120_000);
});
