/**
 * JWT verification with real keys (generated here) and a real JWKS endpoint on a socket:
 * good tokens pass; wrong audience or issuer, expired, wrong signature, `alg: none` and an
 * HMAC token signed with the public key (algorithm confusion) are refused with a reason.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { MaxineError } from '../../common/errors.js';
import { JwtVerifier } from './jwt.js';

const ISSUER = 'https://login.example.test';
const AUDIENCE = 'maxine';
let keys: { privateKey: CryptoKey; publicKey: CryptoKey };
let other: { privateKey: CryptoKey; publicKey: CryptoKey };
let publicJwk: JWK;
let jwks: Server;
let jwksUrl: string;

const sign = (
  key: CryptoKey,
  claims: Record<string, unknown> = {},
  opts: { audience?: string; issuer?: string; expires?: string | number; kid?: string } = {},
) =>
  new SignJWT({ groups: ['platform-team'], ...claims })
    .setProtectedHeader({ alg: 'RS256', ...(opts.kid !== undefined && { kid: opts.kid }) })
    .setSubject('alice')
    .setIssuer(opts.issuer ?? ISSUER)
    .setAudience(opts.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.expires ?? '5m')
    .sign(key);

async function refusal(verifier: JwtVerifier, token: string): Promise<string> {
  try {
    await verifier.verify(token);
    return 'accepted';
  } catch (e) {
    if (e instanceof MaxineError) return `${e.code}: ${e.message}`;
    throw e;
  }
}

beforeAll(async () => {
  keys = await generateKeyPair('RS256', { extractable: true });
  other = await generateKeyPair('RS256', { extractable: true });
  publicJwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  jwks = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`;
});

afterAll(async () => {
  await new Promise((resolve) => jwks.close(resolve));
});

describe('JwtVerifier', () => {
  const verifiers = () => ({
    pem: async () =>
      new JwtVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        key: { pem: await exportSPKI(keys.publicKey) },
      }),
    jwk: () =>
      Promise.resolve(
        new JwtVerifier({ issuer: ISSUER, audience: AUDIENCE, key: { jwk: publicJwk } }),
      ),
    jwks: () =>
      Promise.resolve(new JwtVerifier({ issuer: ISSUER, audience: AUDIENCE, key: { jwksUrl } })),
  });

  it.each(['pem', 'jwk', 'jwks'] as const)('accepts a good token (key from %s)', async (kind) => {
    const verifier = await verifiers()[kind]();
    await expect(verifier.verify(await sign(keys.privateKey, {}, { kid: 'k1' }))).resolves.toEqual({
      kind: 'User',
      name: 'alice',
      groups: ['platform-team'],
    });
  });

  it.each([
    [
      'wrong audience',
      () => sign(keys.privateKey, {}, { audience: 'vault', kid: 'k1' }),
      /claim "aud"/,
    ],
    [
      'wrong issuer',
      () => sign(keys.privateKey, {}, { issuer: 'https://evil.test', kid: 'k1' }),
      /claim "iss"/,
    ],
    [
      'expired beyond the skew',
      () => sign(keys.privateKey, {}, { expires: Math.floor(Date.now() / 1000) - 120, kid: 'k1' }),
      /expired/,
    ],
    [
      'signed by another key',
      () => sign(other.privateKey, {}, { kid: 'k1' }),
      /signature does not verify/,
    ],
    [
      'alg none',
      () =>
        Promise.resolve(
          new UnsecuredJWT({ sub: 'alice' })
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .setExpirationTime('5m')
            .encode(),
        ),
      /algorithm|malformed/,
    ],
    ['garbage', () => Promise.resolve('not.a.jwt'), /malformed|ERR_/],
  ])('refuses a token: %s', async (_what, make, reason) => {
    for (const kind of ['jwk', 'jwks'] as const) {
      const verifier = await verifiers()[kind]();
      const outcome = await refusal(verifier, await make());
      expect(outcome).toMatch(/^UNAUTHENTICATED: The JWT was not accepted: /);
      expect(outcome).toMatch(reason);
    }
  });

  it('refuses an HMAC token keyed with the public key (algorithm confusion)', async () => {
    const pem = await exportSPKI(keys.publicKey);
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(pem));
    const verifier = await verifiers().pem();
    expect(await refusal(verifier, forged)).toMatch(/algorithm is not accepted/);
  });

  it('tolerates a small clock skew on expiry', async () => {
    const verifier = await verifiers().jwk();
    const justExpired = await sign(
      keys.privateKey,
      {},
      {
        expires: Math.floor(Date.now() / 1000) - 10,
        kid: 'k1',
      },
    );
    await expect(verifier.verify(justExpired)).resolves.toMatchObject({ name: 'alice' });
  });
});
