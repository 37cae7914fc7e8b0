import { describe, expect, it } from '@jest/globals';
import { MANY_ADDRESSES, RefusalAggregator } from './audit-aggregate.js';
import type { RepeatedEntry } from './audit-aggregate.js';
import type { AuditEntry } from './audit.js';

const refusal = (address: string, reason = 'no token'): AuditEntry => ({
  who: 'unknown',
  action: 'GET /api/v1/services',
  outcome: 'unauthenticated',
  reason,
  address,
  reqId: `r-${address}`,
});

function setup(maxKeys = 100) {
  const written: (AuditEntry | RepeatedEntry)[] = [];
  let folded = 0;
  const agg = new RefusalAggregator((e) => written.push(e), {
    windowMs: 10_000,
    maxKeys,
    folded: () => (folded += 1),
  });
  return { agg, written, folded: () => folded };
}

describe('RefusalAggregator', () => {
  it.each([
    // [refusals (address@ms), flush at, records written, sum the records stand for]
    [['a@0'], 20_000, 1, 1],
    [['a@0', 'a@1', 'a@2'], 20_000, 2, 3],
    [['a@0', 'b@1', 'a@2', 'b@3'], 20_000, 4, 4],
    [['a@0', 'a@1', 'a@2'], 5_000, 1, 1], // the window is still open: nothing more yet
    [['a@0', 'a@1', 'a@10000', 'a@10001'], 20_000, 4, 4], // the second window starts afresh
  ])('%j flushed at %i → %i records standing for %i refusals', (events, at, records, sum) => {
    const { agg, written } = setup();
    for (const e of events) {
      const [address = '', ms = '0'] = e.split('@');
      agg.flush(Number(ms));
      agg.add(refusal(address), Number(ms));
    }
    agg.flush(at);
    expect(written).toHaveLength(records);
    expect(written.reduce((n, r) => n + ('repeated' in r ? r.repeated : 1), 0)).toBe(sum);
  });

  it('writes the first refusal at once and the rest as one repeated record at window end', () => {
    const { agg, written, folded } = setup();
    agg.add(refusal('10.0.0.1'), 1_000);
    expect(written).toEqual([refusal('10.0.0.1')]);
    for (let i = 0; i < 99; i++) agg.add({ ...refusal('10.0.0.1'), reqId: `r-${i}` }, 2_000 + i);
    expect(written).toHaveLength(1);
    expect(folded()).toBe(99);
    agg.flush(11_000);
    expect(written[1]).toEqual({
      who: 'unknown',
      action: 'GET /api/v1/services',
      outcome: 'unauthenticated',
      reason: 'no token',
      address: '10.0.0.1',
      reqId: 'r-98',
      repeated: 99,
      from: new Date(1_000).toISOString(),
      to: new Date(11_000).toISOString(),
    });
  });

  it('keeps different reasons of one address apart', () => {
    const { agg, written } = setup();
    agg.add(refusal('a', 'no token'), 0);
    agg.add(refusal('a', 'bad token'), 0);
    expect(written.map((r) => r.reason)).toEqual(['no token', 'bad token']);
  });

  it('folds reasons that differ only in quoted, client-chosen values (a JWT issuer)', () => {
    const { agg, written } = setup();
    const issuer = (i: number) => `Tokens of issuer "https://x/${i}" are not trusted here`;
    for (let i = 0; i < 500; i++) agg.add(refusal('10.0.0.9', issuer(i)), i);
    expect(agg.size).toBe(1);
    agg.flush(20_000);
    expect(written).toHaveLength(2);
    expect(written[0]?.reason).toBe(issuer(0));
    expect(written[1]).toMatchObject({ reason: issuer(0), repeated: 499 });
  });

  it('folds the addresses of one IPv6 /64 together, as the per-address limit keys them', () => {
    const { agg, written } = setup();
    for (let i = 1; i <= 300; i++) agg.add(refusal(`2001:db8:1:2::${i.toString(16)}`), i);
    agg.add(refusal('2001:db8:1:3::1'), 400);
    expect(agg.size).toBe(2);
    agg.flush(20_000);
    expect(written.map((r) => r.address)).toEqual([
      '2001:db8:1:2::1',
      '2001:db8:1:3::1',
      '2001:db8:1:2::1',
    ]);
    expect(written[2]).toMatchObject({ repeated: 299 });
  });

  it('counts addresses beyond its bound under one (many) key per outcome', () => {
    const { agg, written } = setup(2);
    for (let i = 0; i < 50; i++) agg.add(refusal(`10.0.0.${i}`, `issuer ${i}`), i);
    expect(agg.size).toBe(3);
    agg.flush(0, true);
    const many = written.filter((r) => r.address === MANY_ADDRESSES);
    expect(many.reduce((n, r) => n + ('repeated' in r ? r.repeated : 1), 0)).toBe(48);
    expect(written.reduce((n, r) => n + ('repeated' in r ? r.repeated : 1), 0)).toBe(50);
  });
});
