import { describe, expect, it } from '@jest/globals';
import { endToEndHeaders, endToEndRaw, withHeaders } from './headers.js';

describe('hop-by-hop headers are removed (RFC 9110 §7.6.1)', () => {
  it.each([
    [['Connection', 'close', 'X-A', '1'], 'close', ['X-A', '1']],
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

  it('withHeaders replaces (case-insensitively) and adds', () => {
    expect(
      withHeaders(['HOST', 'a', 'Traceparent', 'old', 'X', '1'], { host: 'b', traceparent: 'new' }),
    ).toEqual(['X', '1', 'host', 'b', 'traceparent', 'new']);
  });
});
