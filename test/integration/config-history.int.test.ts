/**
 * Config versions and history over real sockets, with the `file` store and operators that
 * restart on the same folder: GET .../config/history answers the last versions newest first,
 * ACL-checked like the other service reads; a restart with the same config keeps its version
 * and history, a config changed while the operator was down is the next version.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configHistoryResponseSchema } from '../../common/config-history.js';
import { configHash } from '../../common/config-version.js';
import { call, lockedDown, writeTokens } from '../helpers/auth.js';
import { eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const TOKENS = { root: 'root-token-0123456789abcdef', alice: 'alice-token-0123456789abcdef' };

let work: string;
let resources: string;
let tokens: string;
const running: TestOperator[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-config-history-'));
  resources = join(work, 'resources');
  await mkdir(resources);
  tokens = await writeTokens(work, {
    root: TOKENS.root,
    alice: { token: TOKENS.alice, groups: ['shop-team'] },
  });
  await writeFile(
    join(resources, 'acl.yaml'),
    `apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: shop-team, namespace: shop }
spec:
  subjects: [{ kind: Group, name: shop-team }]
  rules: [{ services: ['shop/*'], verbs: [read] }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ledger, namespace: bank }
spec: { config: { LIMIT: "5" } }
`,
  );
});
afterEach(async () => {
  for (const op of running.splice(0)) await op.operator.stop();
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function writeCart(config: Record<string, string>): Promise<void> {
  await writeFile(
    join(resources, 'cart.yaml'),
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec:
  config: ${JSON.stringify(config)}
`,
  );
}

async function start(storeDir: string): Promise<TestOperator> {
  const op = await startOperator({
    config: {
      resources,
      store: 'file',
      storeDir,
      configHistory: 3,
      ...lockedDown(tokens),
    },
  });
  running.push(op);
  return op;
}

async function history(op: TestOperator, token = TOKENS.alice, service = 'shop/cart') {
  return call(op.url, 'GET', `/api/v1/services/${service}/config/history`, { token });
}

describe('GET /api/v1/services/{ns}/{name}/config/history', () => {
  it('answers the last versions newest first; the version and history survive restarts', async () => {
    const storeDir = join(work, 'store');
    await writeCart({ A: '1', B: '2' });
    const first = await start(storeDir);
    const one = await history(first);
    expect(one.status).toBe(200);
    const body = configHistoryResponseSchema.parse(one.body);
    expect(body).toMatchObject({
      service: { namespace: 'shop', name: 'cart' },
      version: 1,
      hash: configHash({ A: '1', B: '2' }),
      limit: 3,
    });
    expect(body.entries).toEqual([
      {
        version: 1,
        hash: configHash({ A: '1', B: '2' }),
        time: expect.any(String),
        changes: { added: ['A', 'B'], changed: [], removed: [] },
        values: { A: '1', B: '2' },
        redacted: [],
      },
    ]);

    await writeCart({ A: '1', B: '3', C: 'x' });
    await eventually(async () => (await history(first)).body.version === 2, 5000, 'version 2');
    await first.operator.stop();
    running.splice(0);

    // Same config after a restart: same version, the history kept.
    const second = await start(storeDir);
    const kept = (await history(second)).body;
    expect(kept.version).toBe(2);
    expect(kept.entries.map((e: { version: number }) => e.version)).toEqual([2, 1]);
    expect(kept.entries[0]).toMatchObject({
      changes: { added: ['C'], changed: ['B'], removed: [] },
      values: { A: '1', B: '3', C: 'x' },
    });
    await second.operator.stop();
    running.splice(0);

    // Changed while down: the next version, never 1 again.
    await writeCart({ A: '9' });
    const third = await start(storeDir);
    const moved = (await history(third)).body;
    expect(moved.version).toBe(3);
    expect(moved.entries[0]).toMatchObject({
      version: 3,
      changes: { added: [], changed: ['A'], removed: ['B', 'C'] },
      values: { A: '9' },
    });
    // Bounded by --config-history (3 here).
    await writeCart({ A: '10' });
    await eventually(async () => (await history(third)).body.version === 4, 5000, 'version 4');
    expect((await history(third)).body.entries.map((e: { version: number }) => e.version)).toEqual([
      4, 3, 2,
    ]);
    const metrics = await call(third.url, 'GET', '/metrics', { token: TOKENS.root });
    expect(String(metrics.body)).toMatch(
      /^maxine_config_history_evicted_total\{what="entries"\} 1$/m,
    );
    expect(String(metrics.body)).toMatch(/^maxine_config_history_bytes [1-9]\d*$/m);
    expect(String(metrics.body)).toMatch(
      /^maxine_config_history_evicted_total\{what="bytes"\} 0$/m,
    );
  }, 60_000);

  it('is checked like the other service reads: 401, 403, 404, 405', async () => {
    await writeCart({ A: '1' });
    const op = await start(join(work, 'store-acl'));
    expect((await history(op, TOKENS.alice)).status).toBe(200);
    const unauthenticated = await call(op.url, 'GET', '/api/v1/services/shop/cart/config/history');
    expect(unauthenticated.status).toBe(401);
    const other = await history(op, TOKENS.alice, 'bank/ledger');
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe('FORBIDDEN');
    expect((await history(op, TOKENS.root, 'bank/ledger')).body.entries[0].values).toEqual({
      LIMIT: '5',
    });
    const unknown = await history(op, TOKENS.root, 'shop/nothing');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('SERVICE_NOT_FOUND');
    const bad = await history(op, TOKENS.root, 'shop/Not_A_Name');
    expect(bad.status).toBe(400);
    const post = await call(op.url, 'POST', '/api/v1/services/shop/cart/config/history', {
      token: TOKENS.root,
    });
    expect(post.status).toBe(405);
  }, 30_000);
});
