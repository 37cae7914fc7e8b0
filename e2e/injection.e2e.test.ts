/**
 * startInjectingOperator (e2e/injection.ts) on a real control plane: an operator whose webhook
 * never becomes ready (it may not write the CA bundle of the configuration it is told to keep)
 * fails the start within its deadline, with the operator's log saying why, instead of hanging
 * the suite; a correct one still starts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { startInjectingOperator } from './injection.js';
import { installCrds, kubectl } from './operator-identity.js';

let cp: ControlPlane;

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  await installCrds(cp);
  await kubectl(cp, ['create', 'namespace', 'shop']);
  await kubectl(cp, ['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  // No controller-manager here to make it: pods (the dry-run probe) need it.
  await kubectl(cp, ['create', 'serviceaccount', 'default', '-n', 'shop']);
}, 30 * 60_000);
afterAll(async () => {
  await cp?.stop();
});

describe('startInjectingOperator', () => {
  it('fails within its deadline with the operator log when the webhook never gets ready', async () => {
    const started = Date.now();
    // Its RBAC lets it write maxine-sidecar-injector only: the CA bundle is never written.
    const start = startInjectingOperator(
      cp,
      'shop',
      { webhookConfigName: 'maxine-no-such-injector' },
      { readyMs: 5_000 },
    );
    await expect(start).rejects.toThrow(
      /not ready within 5000 ms: the webhook's CA bundle written: not within [\s\S]*its last log lines:[\s\S]*MutatingWebhookConfiguration maxine-no-such-injector; retrying/,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 60_000);

  it('still starts an operator whose webhook gets ready (its log passed on to the sink given)', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    // The test above left the configuration patched to its stopped webhook: start afresh (the
    // manifests are applied again).
    await kubectl(cp, ['delete', 'mutatingwebhookconfiguration', 'maxine-sidecar-injector']);
    const { operator } = await startInjectingOperator(cp, 'shop', {}, { level: 'info', sink });
    try {
      const probe = await cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'probe', namespace: 'shop' },
          spec: { containers: [{ name: 'app', image: 'probe' }] },
        }),
      });
      expect(probe.stderr).toContain('no MaxineService selects this pod');
      expect(lines.length).toBeGreaterThan(0);
    } finally {
      await operator.stop();
    }
  }, 120_000);
});
