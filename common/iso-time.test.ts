import { describe, expect, it, jest } from '@jest/globals';
import { isoTime } from './iso-time.js';

describe('isoTime', () => {
  const NOW = Date.UTC(2026, 11, 6, 16, 40, 5, 7);
  it.each([
    0,
    1,
    999,
    59_999,
    60_000,
    NOW,
    NOW + 1,
    NOW + 54_993, // the next minute
    NOW + 3_600_000 * 24 * 365,
    Date.UTC(2024, 1, 29, 23, 59, 59, 999), // a leap day's last millisecond
    Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    253_402_300_800_000, // year 10000: toISOString's six-digit form
    -1, // before 1970
    1.5, // not a whole millisecond
  ])('writes %d as toISOString does', (ms) => {
    expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });

  it("keeps a heartbeat's minutes (now, its registration's, now + TTL): no toISOString per heartbeat", () => {
    // Issue 17: one kept prefix flipped between those minutes, a Date and a toISOString each time.
    const registered = NOW - 3 * 3_600_000;
    const ttl = 30_000;
    const expected: string[] = [];
    for (let t = NOW; t < NOW + 120_000; t += 7)
      expected.push(...[registered, t, t + ttl].map((ms) => new Date(ms).toISOString()));
    const toISOString = jest.spyOn(Date.prototype, 'toISOString');
    try {
      const written: string[] = [];
      for (let t = NOW; t < NOW + 120_000; t += 7)
        written.push(isoTime(registered), isoTime(t), isoTime(t + ttl));
      // Once per new minute at most: the registration's, and now's and the lease's (3 each).
      expect(toISOString.mock.calls.length).toBeLessThanOrEqual(8);
      expect(written).toEqual(expected);
    } finally {
      toISOString.mockRestore();
    }
  });

  it('agrees with toISOString over a sweep of times, repeated and interleaved', () => {
    for (let ms = NOW - 200_000; ms < NOW + 200_000; ms += 997) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      expect(isoTime(NOW)).toBe(new Date(NOW).toISOString());
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });
});
