/**
 * The audit log on a real directory: records are written as NDJSON, rotated by size and
 * pruned, exported by time range, and a token that slips into a record is redacted.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from './audit.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-audit-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(it: AsyncIterable<string>): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const line of it) out.push(JSON.parse(line) as Record<string, unknown>);
  return out;
}

describe('AuditLog', () => {
  it('writes who, what, which object, outcome and request id; exports them as NDJSON', async () => {
    const audit = await AuditLog.open({ dir });
    audit.record({
      who: 'ServiceAccount shop/web',
      action: 'register',
      object: 'service shop/orders',
      outcome: 'denied',
      reason: 'pod shop/web-0 is not selected by shop/orders',
      reqId: 'r-1',
    });
    audit.record({
      who: 'anonymous',
      action: 'register',
      outcome: 'unauthenticated',
      reqId: 'r-2',
    });
    const records = await collect(audit.export());
    expect(records).toEqual([
      expect.objectContaining({
        audit: true,
        who: 'ServiceAccount shop/web',
        action: 'register',
        object: 'service shop/orders',
        outcome: 'denied',
        reqId: 'r-1',
        time: expect.any(String),
      }),
      expect.objectContaining({ who: 'anonymous', outcome: 'unauthenticated', reqId: 'r-2' }),
    ]);
    await audit.close();
  });

  it('exports only the asked time range', async () => {
    const audit = await AuditLog.open({ dir });
    audit.record({ who: 'a', action: 'x', outcome: 'allowed' });
    const [first] = await collect(audit.export());
    const t = Date.parse(first!.time as string);
    expect(await collect(audit.export({ from: t + 1 }))).toEqual([]);
    expect(await collect(audit.export({ from: t, to: t + 1 }))).toHaveLength(1);
    expect(await collect(audit.export({ to: t }))).toEqual([]);
    await audit.close();
  });

  it('rotates by size, keeps the newest files, and exports across them in order', async () => {
    const audit = await AuditLog.open({ dir, size: '1k', keep: 2 });
    for (let i = 0; i < 60; i++) {
      audit.record({
        who: `User u${i}`,
        action: 'write',
        object: `service s/${'x'.repeat(40)}`,
        outcome: 'allowed',
      });
      // Rotation happens between writes, once the previous write has drained.
      await new Promise((r) => setTimeout(r, 2));
    }
    const files = (await readdir(dir)).filter(
      (f) => f.startsWith('audit.') && f.endsWith('.ndjson'),
    );
    expect(files.length).toBeGreaterThan(1);
    expect(files.length).toBeLessThanOrEqual(3);
    const records = await collect(audit.export());
    expect(records.at(-1)?.who).toBe('User u59');
    const order = records.map((r) => Number(String(r.who).slice(6)));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    await audit.close();
  });

  it('never writes a token that slipped into a record', async () => {
    const audit = await AuditLog.open({ dir });
    audit.record({
      who: 'User alice',
      action: 'login',
      outcome: 'unauthenticated',
      ...({ token: 'eyJhbGciOi.secret.sig', authorization: 'Bearer eyJ.x.y' } as object),
    } as never);
    await audit.close();
    const text = (
      await Promise.all((await readdir(dir)).map((f) => readFile(join(dir, f), 'utf8')))
    ).join('');
    expect(text).toContain('User alice');
    expect(text).not.toContain('eyJ');
  });
});
