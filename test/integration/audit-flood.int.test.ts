/**
 * A flood of unauthenticated requests against an operator whose audit log is small: the
 * refusals are folded into a bounded number of records that still add up to every refusal,
 * they go to files of their own, and a denial decided on a real principal before the flood
 * is still in the export afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { auditRecords, writeTokens, lockedDown } from '../helpers/auth.js';

const ROOT = 'root-token-0123456789abcdef';
const CAROL = 'carol-token-0123456789abcdef';
const FLOOD = 2_000;

let op: TestOperator;
let work: string;
let auditDir: string;
let staticTokensFile: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-audit-flood-'));
  auditDir = join(work, 'audit');
  staticTokensFile = await writeTokens(work, { root: ROOT, carol: CAROL });
  op = await startOperator({
    config: {
      ...lockedDown(staticTokensFile),
      auditDir,
      // Small files and few of them: 2,000 records one by one would rotate everything out.
      auditMaxSize: '2k',
      auditKeep: 1,
      auditNoiseMaxSize: '2k',
      auditNoiseKeep: 1,
      auditAggregateSeconds: 3600,
      // Every request of the flood reaches authentication (the address limit has its own test).
      addressRateLimit: 0,
    },
  });
});
afterAll(async () => {
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

async function status(path: string, token?: string): Promise<number> {
  const res = await fetch(op.url + path, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  await res.arrayBuffer();
  return res.status;
}

describe('the audit log under a flood of unauthenticated requests', () => {
  it('folds the refusals into few records that add up, and keeps the earlier denial', async () => {
    expect(await status('/api/v1/services/shop/web', CAROL)).toBe(403);

    const paths = ['/api/v1/services', '/api/v1/discover/shop/web', '/api/v1/resources'];
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < FLOOD) {
        const n = sent++;
        // Two reasons: no token at all, and a token that is nothing known.
        const got = await status(paths[n % 3] ?? '/', n % 4 === 0 ? 'nothing-known' : undefined);
        expect(got).toBe(401);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    // One folding window per reason of the one address, as a gauge.
    const open = await (await fetch(`${op.url}/metrics`)).text();
    expect(open).toMatch(/^maxine_audit_refusal_windows 2$/m);

    const records = await auditRecords(op.url, ROOT);

    const denial = records.find((r) => r.outcome === 'denied' && String(r.who).includes('carol'));
    expect(denial).toMatchObject({ action: 'read', object: 'service shop/web' });

    const refusals = records.filter((r) => r.outcome === 'unauthenticated');
    // Per reason: the first at once, then one `repeated` record for the rest of the window.
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    expect(refusals.length).toBeLessThanOrEqual(4);
    // Each record stands for one refusal, or for `repeated` of them.
    const total = refusals.reduce((n, r) => n + Number(r.repeated ?? 1), 0);
    expect(total).toBe(FLOOD);
    for (const r of refusals) expect(r.address).toBe('127.0.0.1');
    const repeated = refusals.filter((r) => r.repeated !== undefined);
    expect(repeated.length).toBeGreaterThanOrEqual(1);
    for (const r of repeated)
      expect(r).toMatchObject({ from: expect.any(String), to: expect.any(String) });

    // The noise has files of its own.
    const files = await readdir(auditDir);
    expect(files.some((f) => f.startsWith('auth-failures.'))).toBe(true);
    expect(files.some((f) => f.startsWith('audit.'))).toBe(true);

    const metrics = await (await fetch(`${op.url}/metrics`)).text();
    expect(metrics).toMatch(/^maxine_audit_refusals_folded_total (\d+)$/m);
    const folded = Number(/^maxine_audit_refusals_folded_total (\d+)$/m.exec(metrics)?.[1]);
    expect(folded).toBe(FLOOD - refusals.filter((r) => r.repeated === undefined).length);
  });
});

describe('the audit log under a flood the per-address limit refuses', () => {
  let limitedOp: TestOperator;
  beforeAll(async () => {
    limitedOp = await startOperator({
      config: {
        ...lockedDown(staticTokensFile),
        auditDir: join(work, 'audit-limited'),
        auditAggregateSeconds: 3600,
        addressRateLimit: 10,
        addressRateBurst: 10,
      },
    });
  });
  afterAll(() => limitedOp.stop());

  it('folds the 429s into few rate_limited records that count every one', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${limitedOp.url}/api/v1/services`);
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    const refused = statuses.filter((s) => s === 429).length;
    expect(refused).toBeGreaterThan(150);
    expect(statuses.filter((s) => s !== 429 && s !== 401)).toEqual([]);
    await new Promise((r) => setTimeout(r, 1_100)); // a token for the export
    const records = await auditRecords(limitedOp.url, ROOT);
    const limited = records.filter((r) => r.outcome === 'rate_limited');
    expect(limited.length).toBeGreaterThanOrEqual(1);
    expect(limited.length).toBeLessThanOrEqual(2);
    expect(limited.reduce((n, r) => n + Number(r.repeated ?? 1), 0)).toBe(refused);
    for (const r of limited) {
      expect(r).toMatchObject({ who: 'unknown', address: '127.0.0.1', reqId: expect.any(String) });
      expect(r.reason).toMatch(/address 127\.0\.0\.1 exceeded 10 requests\/s/);
    }
  });
});
