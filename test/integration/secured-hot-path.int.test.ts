/**
 * The secured discovery hot path (issue 17) on a real operator with real sockets, set up as in
 * Kubernetes (tokens required, ACL default deny, an intention, the audit log on): repeated
 * discoveries are answered from the caches (the token by its hash, the allowed decision per
 * principal, source and service), which /metrics counts; refusals are decided and audited
 * every time; `--audit-allowed-reads sample:N` writes one allowed record for every N; and an
 * ACL changed in the resource folder decides the next discoveries.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  aliceAcl,
  auditRecords,
  call as request,
  ORDERS_TOKENS,
  startSecuredOrders,
} from '../helpers/auth.js';
import { eventually } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const TOKENS = ORDERS_TOKENS;

let op: TestOperator;
let work: string;

const discover = (source: string) =>
  request(op.url, 'GET', '/api/v1/discover/shop/orders', {
    token: TOKENS.alice,
    headers: { 'x-maxine-source': source },
  });

async function metric(name: string): Promise<number> {
  const res = await request(op.url, 'GET', '/metrics', { token: TOKENS.root });
  const line = (res.body as string).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-hot-path-'));
  op = await startSecuredOrders(work, {
    allow: ['web'],
    aclEffect: 'allow',
    config: { auditDir: join(work, 'audit'), auditAllowedReads: 'sample:3' },
  });
});

afterAll(async () => {
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

describe('secured discovery', () => {
  it('answers repeated discoveries from its caches, and counts them in metrics', async () => {
    for (let i = 0; i < 6; i++) expect((await discover('shop/web')).status).toBe(200);
    expect(await metric('maxine_access_discovery_cache_entries')).toBe(1);
    expect(await metric('maxine_auth_token_cache_entries')).toBeGreaterThanOrEqual(2);
    expect(await metric('maxine_auth_recent_header_cache_entries')).toBeGreaterThanOrEqual(2);
    expect(await metric('maxine_auth_recent_header_cache_evictions')).toBe(0);
    expect(await metric('maxine_access_discovery_cache_overflows_total')).toBe(0);
    expect(await metric('maxine_access_acl_decision_cache_entries')).toBeGreaterThanOrEqual(1);
  });

  it('decides and audits every refusal; allowed reads are sampled one in three', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await discover('shop/cart');
      expect(res.status).toBe(403);
      expect(res.body.error.message).toMatch(/shop\/orders/);
    }
    const records = await eventually(async () => {
      const all = await auditRecords(op.url, TOKENS.root);
      const denied = all.filter((r) => r.action === 'discover' && r.outcome === 'denied');
      return denied.length >= 4 ? all : false;
    }, 5000);
    const discoveries = records.filter((r) => r.action === 'discover');
    expect(discoveries.filter((r) => r.outcome === 'denied')).toHaveLength(4);
    // Six allowed discoveries above: two records, each standing for three.
    const allowed = discoveries.filter((r) => r.outcome === 'allowed');
    expect(allowed).toHaveLength(2);
    for (const r of allowed) {
      expect(r).toMatchObject({
        who: 'User token:alice',
        object: 'service shop/orders',
        sampled: 3,
      });
    }
  });

  it('follows a changed ACL: the remembered decision is dropped', async () => {
    expect((await discover('shop/web')).status).toBe(200);
    await op.write('acl.yaml', aliceAcl('deny'));
    await eventually(async () => (await discover('shop/web')).status === 403, 5000);
    expect(await metric('maxine_access_discovery_cache_entries')).toBe(0);
    await op.write('acl.yaml', aliceAcl('allow'));
    await eventually(async () => (await discover('shop/web')).status === 200, 5000);
  });
});
