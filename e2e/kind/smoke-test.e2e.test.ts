/**
 * e2e/kind/smoke-test.sh, the kind script's smoke test, run as it is against the e2e control plane
 * and an operator in kubernetes mode (with the operator's RBAC): examples/ applied and Ready,
 * an instance registered with a ServiceAccount token, discovered through the operator. On kind
 * the same script talks to the chart's operator through a port-forward (e2e/kind/run.sh).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { delimiter, join } from 'node:path';
import type { Operator } from '../../operator/operator.js';
import { ensureBinaries, startControlPlane } from '../controlplane/cluster.js';
import type { ControlPlane } from '../controlplane/cluster.js';
import { installCrds, startKubeOperator } from '../operator-identity.js';

let cp: ControlPlane;
let operator: Operator | undefined;
let base: string;

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  await installCrds(cp);
  ({ operator, base } = await startKubeOperator(cp));
}, 30 * 60_000);
afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

function smoke(
  url: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(process.cwd(), 'e2e', 'kind', 'smoke-test.sh'), url], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        KUBECONFIG: cp.kubeconfig,
        PATH: `${cp.binDir}${delimiter}${process.env.PATH ?? ''}`,
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('e2e/kind/smoke-test.sh', () => {
  it('applies examples/, registers shop/web with a ServiceAccount token and discovers it', async () => {
    const r = await smoke(base);
    expect([r.code, r.stderr.split('\n').filter((l) => l.startsWith('[smoke]'))]).toEqual([
      0,
      [
        expect.stringMatching(
          /^\[smoke\] ok: discovered shop\/web through the operator: .*"host":"10\.0\.0\.7"/,
        ),
      ],
    ]);
  });

  it('fails, saying so, when the operator does not answer', async () => {
    // Nothing listens on port 9: the calls fail, and the script must not report success. (One
    // /readyz try: the script's 50 tries, 0.2 s apart, would only wait 10 s for the same end.)
    const r = await smoke('http://127.0.0.1:9', { SMOKE_READY_TRIES: '1' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('[smoke] ERROR:');
    expect(r.stderr).not.toContain('[smoke] ok');
  });
});
