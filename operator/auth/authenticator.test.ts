import { describe, expect, it } from '@jest/globals';
import type { UserSource } from '../../common/policy/acl.js';
import { codeOf } from '../../test/helpers/errors.js';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Authenticator, RECENT_HEADER_MAX, tokenDigest, userPrincipal } from './authenticator.js';
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
  /** A valid token too long for the recent-header cache (its header is over the limit). */
  const LONG = `carol-token-${'x'.repeat(RECENT_HEADER_MAX)}`;
  function authenticator(now: { t: number }, maxEntries = 10, recentHeaders?: number) {
    let resolved = 0;
    const auth = new Authenticator({
      anonymous: false,
      staticTokens: {
        identify: (t) => {
          resolved += 1;
          if (t === ALICE || t === BOB || t === LONG)
            return { kind: 'User', name: t.split('-')[0] ?? '', groups: [] };
          throw new Error('unknown');
        },
      },
      hint: 'test',
      now: () => now.t,
      cacheMs: 1000,
      maxEntries,
      ...(recentHeaders !== undefined && { recentHeaders }),
    });
    return { auth, resolved: () => resolved };
  }

  it('keys by the SHA-256 of the header holding the token (never the token) and hands out one principal object', async () => {
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

  // The key is the digest of the whole header, taken before the header is parsed: a header that
  // holds no valid token must never find an entry.
  it.each<[string, string, string | undefined]>([
    ['the usual form', `Bearer ${ALICE}`, undefined],
    ['lower-case scheme', `bearer ${ALICE}`, undefined],
    ['extra blanks', `Bearer   ${ALICE}  `, undefined],
    ['another scheme', `Basic ${ALICE}`, 'UNAUTHENTICATED'],
    ['no token', 'Bearer', 'UNAUTHENTICATED'],
    ['the token alone', ALICE, 'UNAUTHENTICATED'],
  ])('header %s: the same answer the first and the second time', async (_what, header, code) => {
    const now = { t: 0 };
    const { auth } = authenticator(now);
    await auth.principal(reqWith(ALICE)); // the usual form is cached
    const req = { headers: { authorization: header } } as unknown as IncomingMessage;
    for (let i = 0; i < 2; i++) {
      let failed: string | undefined;
      try {
        const p = await auth.principal(req);
        expect(p.who).toBe('User token:alice');
      } catch (err) {
        failed = (err as { code?: string }).code;
      }
      expect(failed).toBe(code);
    }
  });

  describe('the recent-header cache (exact header text, no digest)', () => {
    it('keeps the header of a resolved token and answers its repeats with the same principal', async () => {
      const now = { t: 0 };
      const { auth, resolved } = authenticator(now);
      expect(auth.recentHeaders).toBe(0);
      const first = await auth.principal(reqWith(ALICE));
      expect(auth.recentHeaders).toBe(1);
      for (let i = 0; i < 3; i++) expect(auth.principal(reqWith(ALICE))).toBe(first);
      expect(resolved()).toBe(1);
    });

    it('is bounded: at the bound the oldest header goes (counted), and its caller falls back to the digest', async () => {
      const now = { t: 0 };
      const { auth, resolved } = authenticator(now, 10, 1);
      const alice = await auth.principal(reqWith(ALICE));
      await auth.principal(reqWith(BOB));
      expect(auth.recentHeaders).toBe(1);
      expect(auth.recentHeaderEvictions).toBe(1);
      // Still answered synchronously (by the digest cache), and kept again.
      expect(auth.principal(reqWith(ALICE))).toBe(alice);
      expect(auth.recentHeaderEvictions).toBe(2);
      expect(resolved()).toBe(2);
    });

    it('answers nothing once the entry expired: the token is resolved again and the stale header dropped', async () => {
      const now = { t: 0 };
      const { auth, resolved } = authenticator(now);
      await auth.principal(reqWith(ALICE));
      now.t = 1000;
      const again = auth.principal(reqWith(ALICE));
      expect(again).toBeInstanceOf(Promise);
      expect(auth.recentHeaders).toBe(0);
      await again;
      expect(auth.recentHeaders).toBe(1);
      expect(resolved()).toBe(2);
    });

    it('keeps no header longer than RECENT_HEADER_MAX (the digest cache answers it)', async () => {
      const now = { t: 0 };
      const { auth, resolved } = authenticator(now);
      const carol = await auth.principal(reqWith(LONG));
      expect(auth.recentHeaders).toBe(0);
      expect(auth.principal(reqWith(LONG))).toBe(carol);
      expect(auth.cachedTokens).toBe(1);
      expect(resolved()).toBe(1);
    });

    it('keeps no header that held no valid token, and none with recentHeaders 0', async () => {
      const now = { t: 0 };
      const { auth } = authenticator(now);
      for (const header of ['Bearer nope', `Basic ${ALICE}`, ALICE]) {
        const req = { headers: { authorization: header } } as unknown as IncomingMessage;
        await expect((async () => auth.principal(req))()).rejects.toMatchObject({
          code: 'UNAUTHENTICATED',
        });
      }
      expect(auth.recentHeaders).toBe(0);
      const off = authenticator(now, 10, 0).auth;
      const p = await off.principal(reqWith(ALICE));
      expect(off.principal(reqWith(ALICE))).toBe(p);
      expect(off.recentHeaders).toBe(0);
    });
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
  it.each<[string, number | 'aggregate']>([
    ['aggregate', 'aggregate'],
    ['none', 0],
    ['all', 1],
    ['sample:1', 1],
    ['sample:250', 250],
  ])('%s → one record every %d allowed reads (0: none)', (flag, every) => {
    expect(allowedReadsEvery(flag)).toBe(every);
  });
});
