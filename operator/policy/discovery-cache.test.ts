import { describe, expect, it } from '@jest/globals';
import { DiscoveryDecisions, NO_SOURCE } from './discovery-cache.js';

const alice = { who: 'alice' };
const bob = { who: 'bob' };
const NONE: readonly unknown[] = [];

describe('the allowed-discovery cache', () => {
  // remembered (principal, source, service, known) → asked (principal, source, service, known) → hit
  const WEB = [{ namespace: 'shop', name: 'web' }];
  it.each<[string, [object, string, string, readonly unknown[]], boolean]>([
    ['the same everything', [alice, 'shop/web', 'shop/orders', NONE], true],
    ['another principal object', [bob, 'shop/web', 'shop/orders', NONE], false],
    ['another source header', [alice, 'shop/cart', 'shop/orders', NONE], false],
    ['no source header', [alice, NO_SOURCE, 'shop/orders', NONE], false],
    ['another service', [alice, 'shop/web', 'shop/pay', NONE], false],
    ['another empty known list', [alice, 'shop/web', 'shop/orders', []], true],
    ['a known list where there was none', [alice, 'shop/web', 'shop/orders', WEB], false],
  ])('%s', (_what, asked, hit) => {
    const cache = new DiscoveryDecisions(10);
    cache.remember(alice, 'shop/web', 'shop/orders', NONE);
    expect(cache.allowed(...asked)).toBe(hit);
  });

  it('holds a known-sources answer by identity: a new answer of the resolver is a miss', () => {
    const cache = new DiscoveryDecisions(10);
    const known = [{ namespace: 'shop', name: 'web' }];
    cache.remember(alice, NO_SOURCE, 'shop/orders', known);
    expect(cache.allowed(alice, NO_SOURCE, 'shop/orders', known)).toBe(true);
    expect(cache.allowed(alice, NO_SOURCE, 'shop/orders', [...known])).toBe(false);
  });

  it('is bounded: at its bound it is emptied and the overflow counted', () => {
    const cache = new DiscoveryDecisions(3);
    for (const service of ['a/1', 'a/2', 'a/3']) cache.remember(alice, NO_SOURCE, service, NONE);
    cache.remember(alice, NO_SOURCE, 'a/3', NONE); // the same entry again: not a new one
    expect(cache.size).toBe(3);
    expect(cache.overflows).toBe(0);
    cache.remember(bob, NO_SOURCE, 'a/4', NONE);
    expect(cache.size).toBe(1);
    expect(cache.overflows).toBe(1);
    expect(cache.allowed(alice, NO_SOURCE, 'a/1', NONE)).toBe(false);
    expect(cache.allowed(bob, NO_SOURCE, 'a/4', NONE)).toBe(true);
  });

  it('forgets everything when cleared', () => {
    const cache = new DiscoveryDecisions(10);
    cache.remember(alice, NO_SOURCE, 'a/1', NONE);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.allowed(alice, NO_SOURCE, 'a/1', NONE)).toBe(false);
  });
});
