import { describe, expect, it } from '@jest/globals';
import { bearerToken, precheck, tokenExpiry } from './tokenreview.js';

const NOW = 1_800_000_000_000;
const jwt = (claims: unknown) =>
  `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;
const good = {
  aud: ['maxine.io'],
  sub: 'system:serviceaccount:shop:web',
  exp: NOW / 1000 + 600,
};

describe('precheck: refusals decided without a TokenReview', () => {
  it.each([
    ['a projected token for us', jwt(good), undefined],
    ['a string audience', jwt({ ...good, aud: 'maxine.io' }), undefined],
    ['no exp (legacy token): left to the review', jwt({ ...good, exp: undefined }), undefined],
    ['not a JWT', 'random-bytes', 'The token is not a JWT'],
    ['a JWT whose claims are not JSON', 'a.b.c', 'The token is not a JWT'],
    ['expired', jwt({ ...good, exp: NOW / 1000 - 1 }), 'The token has expired'],
    [
      'another audience',
      jwt({ ...good, aud: ['vault'] }),
      'The token is not meant for audience "maxine.io"',
    ],
    [
      'no audience',
      jwt({ ...good, aud: undefined }),
      'The token is not meant for audience "maxine.io"',
    ],
    [
      'a user, not a ServiceAccount',
      jwt({ ...good, sub: 'alice' }),
      'The token is not a ServiceAccount token',
    ],
  ])('%s', (_what, token, expected) => {
    expect(precheck(token, 'maxine.io', NOW)).toBe(expected);
  });
});

describe('token helpers', () => {
  it('reads exp in milliseconds, or nothing', () => {
    expect(tokenExpiry(jwt(good))).toBe(NOW + 600_000);
    expect(tokenExpiry('nope')).toBeUndefined();
  });

  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc', 'abc'],
    ['Basic abc', undefined],
    ['Bearer ', undefined],
    [undefined, undefined],
  ])('bearerToken(%s)', (header, expected) => {
    expect(bearerToken(header)).toBe(expected);
  });
});
