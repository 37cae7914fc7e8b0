import { describe, expect, it } from '@jest/globals';
import { endToEndHeaders, endToEndRaw, upstreamRequestHeaders } from './headers.js';

describe('hop-by-hop headers are removed (RFC 9110 §7.6.1)', () => {
  it.each([
    [['Connection', 'close', 'X-A', '1'], 'close', ['X-A', '1']],
    // One name, no comma: a hop-by-hop one needs no set, any other is still removed.
    [['Connection', ' Keep-Alive ', 'X-A', '1'], ' Keep-Alive ', ['X-A', '1']],
    [['Connection', 'X-Single', 'x-single', 's', 'X-A', '1'], 'X-Single', ['X-A', '1']],
    [['Connection', '', 'X-A', '1'], '', ['X-A', '1']],
    [
      ['Keep-Alive', 'timeout=5', 'Proxy-Connection', 'keep-alive', 'X-A', '1'],
      undefined,
      ['X-A', '1'],
    ],
    [
      ['TE', 'trailers', 'Trailer', 'x', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c'],
      undefined,
      [],
    ],
    [['Proxy-Authorization', 'Basic a', 'Proxy-Authenticate', 'Basic'], undefined, []],
    [
      ['Connection', 'X-Secret, x-other', 'X-SECRET', 's', 'X-Other', 'o', 'X-Keep', 'k'],
      'X-Secret, x-other',
      ['X-Keep', 'k'],
    ],
    [
      ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'],
      undefined,
      ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'],
    ],
    [
      ['Authorization', 'Bearer t', 'Host', 'h'],
      undefined,
      ['Authorization', 'Bearer t', 'Host', 'h'],
    ],
  ])('%j', (raw, connection, expected) => {
    expect(endToEndRaw(raw, connection)).toEqual(expected);
  });

  it('filters parsed headers the same way', () => {
    expect(
      endToEndHeaders({
        connection: 'x-a',
        'x-a': '1',
        'x-b': '2',
        'keep-alive': 't',
        te: 'trailers',
      }),
    ).toEqual({ 'x-b': '2' });
  });

  it('upstreamRequestHeaders: end-to-end, no Expect, Host and traceparent replaced, in one pass', () => {
    expect(
      upstreamRequestHeaders(
        [
          'Host',
          '127.0.0.1:7711',
          'Connection',
          'x-a',
          'X-A',
          '1',
          'Expect',
          '100-continue',
          'traceparent',
          'old',
          'X-B',
          '2',
          'Content-Length',
          '3',
        ],
        'x-a',
        { host: 'orders.shop', traceparent: 'new' },
      ),
    ).toEqual(['X-B', '2', 'Content-Length', '3', 'host', 'orders.shop', 'traceparent', 'new']);
  });
});
