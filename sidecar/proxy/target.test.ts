import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../../common/errors.js';
import { parseForwardTarget, parseProxyPath } from './target.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof MaxineError ? err.code : 'not a MaxineError';
  }
}

describe('parseProxyPath: /v1/proxy/{service}[.{namespace}]/{path}', () => {
  it.each([
    ['/v1/proxy/orders/items/1?x=1', 'shop', 'orders', '/items/1?x=1', 'orders.shop'],
    ['/v1/proxy/orders', 'shop', 'orders', '/', 'orders.shop'],
    ['/v1/proxy/orders/', 'shop', 'orders', '/', 'orders.shop'],
    ['/v1/proxy/orders?x=1', 'shop', 'orders', '/?x=1', 'orders.shop'],
    ['/v1/proxy/invoices.billing/a//b', 'billing', 'invoices', '/a//b', 'invoices.billing'],
  ])('%s', (url, namespace, name, path, authority) => {
    expect(parseProxyPath(url, 'shop')).toEqual({
      destination: { namespace, name },
      path,
      authority,
    });
  });

  it.each([
    '/v1/proxy/',
    '/v1/proxy//x',
    '/v1/proxy/Orders/x',
    '/v1/proxy/orders./x',
    '/v1/proxy/.shop/x',
    '/v1/proxy/orders.shop.svc/x',
    '/v1/proxy/or%2fders/x',
    `/v1/proxy/${'a'.repeat(64)}/x`,
    '/v1/proxy/-orders/x',
  ])('%s → 400 PROXY_BAD_DESTINATION', (url) => {
    expect(codeOf(() => parseProxyPath(url, 'shop'))).toBe('PROXY_BAD_DESTINATION');
  });
});

describe('parseForwardTarget: absolute form, or origin form with Host', () => {
  it.each([
    ['http://orders/x?y=1', undefined, 'shop', 'orders', '/x?y=1', 'orders'],
    ['http://orders.billing:8080/x', undefined, 'billing', 'orders', '/x', 'orders.billing'],
    ['HTTP://Orders.Shop', undefined, 'shop', 'orders', '/', 'orders.shop'],
    ['http://orders?q', undefined, 'shop', 'orders', '/?q', 'orders'],
    ['/x', 'orders.shop:80', 'shop', 'orders', '/x', 'orders.shop'],
  ])('%s (Host %s)', (url, host, namespace, name, path, authority) => {
    expect(parseForwardTarget(url, host, 'shop')).toEqual({
      destination: { namespace, name },
      path,
      authority,
    });
  });

  it.each([
    ['http://example.com.evil/x', undefined, 'UNKNOWN_PROXY_HOST'],
    ['http://10.0.0.1/x', undefined, 'UNKNOWN_PROXY_HOST'],
    ['http://[::1]:80/x', undefined, 'UNKNOWN_PROXY_HOST'],
    ['http:///x', undefined, 'UNKNOWN_PROXY_HOST'],
    ['/x', undefined, 'UNKNOWN_PROXY_HOST'],
    ['/x', '127.0.0.1:7712', 'UNKNOWN_PROXY_HOST'],
    ['https://orders/x', undefined, 'PROXY_BAD_DESTINATION'],
    ['ftp://orders/x', undefined, 'PROXY_BAD_DESTINATION'],
    ['orders:443', undefined, 'PROXY_BAD_DESTINATION'],
  ])('%s (Host %s) → %s', (url, host, code) => {
    expect(codeOf(() => parseForwardTarget(url, host, 'shop'))).toBe(code);
  });

  it('names the refused host in the error, control characters made printable', () => {
    try {
      parseForwardTarget('http://www.example.com/', undefined, 'shop');
    } catch (err) {
      expect((err as MaxineError).message).toContain('"www.example.com"');
      expect((err as MaxineError).details).toEqual({ host: 'www.example.com' });
    }
    expect.assertions(2);
  });
});
