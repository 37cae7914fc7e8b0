/**
 * `--audit-allowed-reads aggregate` on a real operator writing a real audit file (read back from
 * disk, not through the export): allowed discoveries are counted per principal, source and
 * service and written as one record with `count` per key and interval; refusals are written
 * one by one; at `--audit-reads-max-keys` every count is written early (counted in
 * `maxine_audit_allowed_read_early_flushes_total`); shutdown writes what is still counted.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call as request, ORDERS_TOKENS, startSecuredOrders } from '../helpers/auth.js';
import { eventually } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const TOKENS = ORDERS_TOKENS;

type AuditRecord = Record<string, unknown>;

const work: string[] = [];
afterAll(async () => {
  for (const dir of work) await rm(dir, { recursive: true, force: true });
});

async function started(reads: {
  intervalMs: number;
  maxKeys: number;
}): Promise<{ op: TestOperator; auditDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'maxine-allowed-reads-'));
  work.push(dir);
  const auditDir = join(dir, 'audit');
  const op = await startSecuredOrders(dir, {
    allow: ['web', 'cart'],
    config: {
      auditDir,
      auditAllowedReads: 'aggregate',
      auditReadsIntervalMs: reads.intervalMs,
      auditReadsMaxKeys: reads.maxKeys,
    },
  });
  return { op, auditDir };
}

/** The discovery records of the audit files on disk (`audit.<n>.ndjson`). */
async function discoveries(auditDir: string): Promise<AuditRecord[]> {
  const files = (await readdir(auditDir)).filter((f) => /^audit\.\d+\.ndjson$/.test(f)).sort();
  const lines: string[] = [];
  for (const f of files) lines.push(...(await readFile(join(auditDir, f), 'utf8')).split('\n'));
  return lines
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditRecord)
    .filter((r) => r.action === 'discover');
}

async function discover(op: TestOperator, who: keyof typeof TOKENS, source: string, times = 1) {
  const statuses: number[] = [];
  for (let i = 0; i < times; i++) {
    const res = await request(op.url, 'GET', '/api/v1/discover/shop/orders', {
      token: TOKENS[who],
      headers: { 'x-maxine-source': source },
    });
    statuses.push(res.status);
  }
  return statuses;
}

async function metric(op: TestOperator, name: string): Promise<number> {
  const res = await request(op.url, 'GET', '/metrics', { token: TOKENS.root });
  const line = (res.body as string).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

const allowed = (records: AuditRecord[]) => records.filter((r) => r.outcome === 'allowed');
const total = (records: AuditRecord[]) => records.reduce((n, r) => n + (r.count as number), 0);

/** The summed counts per `who source object`. */
function byKey(records: AuditRecord[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const r of records) {
    const key = `${String(r.who)} ${String(r.source)} ${String(r.object)}`;
    sums[key] = (sums[key] ?? 0) + (r.count as number);
  }
  return sums;
}

describe('--audit-allowed-reads aggregate', () => {
  it('writes one record per principal, source and service each interval, with the count; refusals one by one', async () => {
    const { op, auditDir } = await started({ intervalMs: 300, maxKeys: 100 });
    try {
      expect(await discover(op, 'alice', 'shop/web', 5)).toEqual([200, 200, 200, 200, 200]);
      expect(await discover(op, 'alice', 'shop/cart', 2)).toEqual([200, 200]);
      expect(await discover(op, 'alice', 'shop/evil', 3)).toEqual([403, 403, 403]);
      // An interval may end between two reads: a key's records then sum to its reads.
      const records = await eventually(async () => {
        const r = await discoveries(auditDir);
        return total(allowed(r)) >= 7 ? r : false;
      }, 5000);
      const denied = records.filter((r) => r.outcome === 'denied');
      expect(denied).toHaveLength(3);
      for (const r of denied)
        expect(r).toMatchObject({ who: 'User token:alice', reqId: expect.any(String) });
      expect(byKey(allowed(records))).toEqual({
        'User token:alice shop/web service shop/orders': 5,
        'User token:alice shop/cart service shop/orders': 2,
      });
      for (const r of allowed(records)) {
        expect(r.count).toBeGreaterThanOrEqual(1);
        expect(Date.parse(r.from as string)).toBeLessThanOrEqual(Date.parse(r.to as string));
        expect(r).not.toHaveProperty('reqId');
      }
      // Six reads of one key make at most a few records, not six.
      expect(allowed(records).length).toBeLessThan(7);
      // Later intervals count only their own reads.
      const before = allowed(records).length;
      await discover(op, 'alice', 'shop/web', 2);
      const later = await eventually(async () => {
        const a = allowed(await discoveries(auditDir)).slice(before);
        return total(a) >= 2 ? a : false;
      }, 5000);
      expect(byKey(later)).toEqual({ 'User token:alice shop/web service shop/orders': 2 });
    } finally {
      await op.stop();
    }
  });

  it('at the key bound writes every count early, and writes what is left on shutdown', async () => {
    const { op, auditDir } = await started({ intervalMs: 3_600_000, maxKeys: 2 });
    try {
      await discover(op, 'alice', 'shop/web', 4);
      await discover(op, 'alice', 'shop/cart', 2);
      expect(await metric(op, 'maxine_audit_allowed_read_keys')).toBe(2);
      expect(allowed(await discoveries(auditDir))).toHaveLength(0);
      // A third key: the two counted are written now, and the new key is counted.
      await discover(op, 'root', 'shop/web', 1);
      const early = await eventually(async () => {
        const a = allowed(await discoveries(auditDir));
        return a.length >= 2 ? a : false;
      }, 5000);
      expect(early.map((r) => [r.source, r.count])).toEqual(
        expect.arrayContaining([
          ['shop/web', 4],
          ['shop/cart', 2],
        ]),
      );
      expect(await metric(op, 'maxine_audit_allowed_read_early_flushes_total')).toBe(1);
      expect(await metric(op, 'maxine_audit_allowed_read_keys')).toBe(1);
    } finally {
      await op.stop();
    }
    const last = allowed(await discoveries(auditDir));
    expect(last).toHaveLength(3);
    expect(last[2]).toMatchObject({ who: 'User token:root', source: 'shop/web', count: 1 });
  });
});
