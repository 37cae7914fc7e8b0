import { describe, expect, it } from '@jest/globals';
import { nextAuthCheck } from './reauth.js';

describe('nextAuthCheck', () => {
  it.each([
    ['a static token: never', {}, undefined],
    ['a JWT: closed at exp', { expiresAt: 1000 }, { at: 1000, action: 'close' }],
    [
      'a reviewed token: asked again when the review expires',
      { expiresAt: 5000, revalidateAt: 2000 },
      { at: 2000, action: 'revalidate' },
    ],
    [
      'a reviewed token that expires first: closed',
      { expiresAt: 1500, revalidateAt: 2000 },
      { at: 1500, action: 'close' },
    ],
    [
      'both at once: closed',
      { expiresAt: 2000, revalidateAt: 2000 },
      { at: 2000, action: 'close' },
    ],
    ['a review without exp', { revalidateAt: 2000 }, { at: 2000, action: 'revalidate' }],
  ] as const)('%s', (_name, credential, expected) => {
    expect(nextAuthCheck(credential)).toEqual(expected);
  });
});
