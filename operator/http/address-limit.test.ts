import { describe, expect, it } from '@jest/globals';
import { AddressLimiter, addressKey } from './address-limit.js';
import { originForm } from './edge.js';

describe('addressKey', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1', 'fe80:0:0:0::/64'],
  ])('%s → %s', (address, key) => {
    expect(addressKey(address)).toBe(key);
  });
});

describe('AddressLimiter', () => {
  it('allows the burst, then refills at the rate', () => {
    const l = new AddressLimiter({ requestsPerSecond: 2, burst: 3 }, 10);
    const at0 = [1, 2, 3, 4].map(() => l.take('10.0.0.1', 0).allowed);
    expect(at0).toEqual([true, true, true, false]);
    expect(l.take('10.0.0.1', 0)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(l.take('10.0.0.1', 500).allowed).toBe(true);
    expect(l.take('10.0.0.2', 0).allowed).toBe(true);
  });

  it('shares one bucket across an IPv6 /64', () => {
    const l = new AddressLimiter({ requestsPerSecond: 1, burst: 1 }, 10);
    expect(l.take('2001:db8::1', 0).allowed).toBe(true);
    expect(l.take('2001:db8::2', 0).allowed).toBe(false);
  });

  it('forgets the least recently seen address beyond its bound', () => {
    const l = new AddressLimiter({ requestsPerSecond: 1, burst: 1 }, 2);
    l.take('a', 0);
    l.take('b', 0);
    l.take('a', 0); // a is now the most recent
    l.take('c', 0); // forgets b
    expect(l.size).toBe(2);
    expect(l.take('a', 0).allowed).toBe(false); // still remembered, still empty
    expect(l.take('b', 0).allowed).toBe(true); // forgotten: a fresh bucket
  });
});

describe('originForm', () => {
  it.each([
    ['/api/v1/services', '/api/v1/services'],
    ['http://h/api/v1/services?x=1', '/api/v1/services?x=1'],
    ['HTTPS://h:7710/a', '/a'],
    ['http://h', '/'],
    ['http://h?x=1', '/?x=1'],
    ['*', '*'],
  ])('%s → %s', (target, want) => {
    expect(originForm(target)).toBe(want);
  });
});
