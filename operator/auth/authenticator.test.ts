import { describe, expect, it } from '@jest/globals';
import type { UserSource } from '../../common/policy/acl.js';
import { codeOf } from '../../test/helpers/errors.js';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Authenticator, tokenDigest, userPrincipal } from './authenticator.js';
import { allowedReadsEvery } from './setup.js';

const ISSUER = 'https://login.example.test';
const jwt: UserSource = { kind: 'jwt', issuer: ISSUER };
const token: UserSource = { kind: 'token' };

describe('userPrincipal', () => {
  it.each<[string, UserSource, string | undefined]>([
    // [user name, source, refusal code or undefined when accepted]
    ['alice', token, undefined],
    ['alice', jwt, undefined],
    ['system:serviceaccount:shop:web', jwt, 'UNAUTHENTICATED'],
    ['maxine:sidecar', token, 'UNAUTHENTICATED'],
    ['jwt:oncall', jwt, 'UNAUTHENTICATED'],
    ['token:ops-admin', jwt, 'UNAUTHENTICATED'],
    // would pose as the Kubernetes user alice (kubectl maxine through the service proxy)
    ['kubernetes:alice', token, 'UNAUTHENTICATED'],
    // would read `jwt:<issuer>:ops-admin`, the qualified name of the issuer's user ops-admin
    [`${ISSUER}:ops-admin`, jwt, 'UNAUTHENTICATED'],
    ['https://other.example:ops-admin', jwt, undefined],
    [`${ISSUER}:x`, token, undefined],
  ])('%s from %j → %s', (name, source, code) => {
    expect(codeOf(() => userPrincipal({ kind: 'User', name, groups: [] }, source))).toBe(code);
  });

  it('names users by source: one principal id per user, whatever the groups', () => {
    const a = userPrincipal({ kind: 'User', name: 'ops', groups: ['a'] }, jwt);
    const b = userPrincipal({ kind: 'User', name: 'ops', groups: ['b'] }, jwt);
    const t = userPrincipal({ kind: 'User', name: 'ops', groups: ['a'] }, token);
    expect(a.id).toBe(`jwt:${ISSUER}:ops`);
    expect(b.id).toBe(a.id);
    expect(a.key).not.toBe(b.key);
    expect(t.id).toBe('token:ops');
  });
});

describe('the token cache (issue 17)', () => {
  const ALICE = 'alice-token-0123456789abcdef';
  const BOB = 'bob-token-0123456789abcdef';
  const reqWith = (t: string) =>
    ({ headers: { authorization: `Bearer ${t}` } }) as unknown as IncomingMessage;
  function authenticator(now: { t: number }, maxEntries = 10) {
    let resolved = 0;
    const auth = new Authenticator({
      anonymous: false,
      staticTokens: {
        identify: (t) => {
          resolved += 1;
          if (t === ALICE || t === BOB)
            return { kind: 'User', name: t.split('-')[0] ?? '', groups: [] };
          throw new Error('unknown');
        },
      },
      hint: 'test',
      now: () => now.t,
      cacheMs: 1000,
      maxEntries,
    });
    return { auth, resolved: () => resolved };
  }

  it('keys by the SHA-256 of the token (never the token) and hands out one principal object', async () => {
    expect(tokenDigest('abc')).toBe(createHash('sha256').update('abc').digest('base64url'));
    const now = { t: 0 };
    const { auth, resolved } = authenticator(now);
    const first = await auth.principal(reqWith(ALICE));
    const second = auth.principal(reqWith(ALICE));
    expect(second).toBe(first); // synchronous, the same object: decisions are cached by it
    expect(resolved()).toBe(1);
    expect(auth.cachedTokens).toBe(1);
  });

  it('resolves a token again once its entry expired', async () => {
    const now = { t: 0 };
    const { auth, resolved } = authenticator(now);
    await auth.principal(reqWith(ALICE));
    now.t = 1000;
    const again = auth.principal(reqWith(ALICE));
    expect(again).toBeInstanceOf(Promise);
    await again;
    expect(resolved()).toBe(2);
  });

  it('is bounded by maxEntries', async () => {
    const now = { t: 0 };
    const { auth } = authenticator(now, 1);
    await auth.principal(reqWith(ALICE));
    await auth.principal(reqWith(BOB));
    expect(auth.cachedTokens).toBe(1);
    expect(auth.principal(reqWith(ALICE))).toBeInstanceOf(Promise);
  });
});

describe('--audit-allowed-reads', () => {
  it.each([
    ['none', 0],
    ['all', 1],
    ['sample:1', 1],
    ['sample:250', 250],
  ])('%s → one record every %d allowed reads (0: none)', (flag, every) => {
    expect(allowedReadsEvery(flag)).toBe(every);
  });
});
