import { describe, expect, it } from '@jest/globals';
import { ExpiringCache } from './expiring-cache.js';

describe('ExpiringCache', () => {
  it('answers an entry until it expires', () => {
    const cache = new ExpiringCache<{ until: number; v: string }>(10);
    cache.set('a', { until: 100, v: 'x' });
    expect(cache.get('a', 99)?.v).toBe('x');
    expect(cache.get('a', 100)).toBeUndefined();
    expect(cache.get('b', 0)).toBeUndefined();
  });

  it('drops the oldest insertion when full; setting a key again makes it the newest', () => {
    const cache = new ExpiringCache<{ until: number }>(2);
    cache.set('a', { until: 1000 });
    cache.set('b', { until: 1000 });
    cache.set('a', { until: 1000 });
    cache.set('c', { until: 1000 });
    expect(cache.get('b', 0)).toBeUndefined();
    expect(cache.get('a', 0)).toBeDefined();
    expect(cache.get('c', 0)).toBeDefined();
    expect(cache.size).toBe(2);
  });

  it('counts the entries pushed out at the bound, and drops an entry found expired', () => {
    const cache = new ExpiringCache<{ until: number }>(1);
    cache.set('a', { until: 10 });
    cache.set('b', { until: 10 });
    expect(cache.evictions).toBe(1);
    cache.set('b', { until: 10 }); // the same key again: nothing pushed out
    expect(cache.evictions).toBe(1);
    expect(cache.get('b', 10)).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
