/**
 * Users and groups from a JWT, for clients other than sidecars (people, CI, services outside
 * the cluster). Verified with `jose` against a configured public key (PEM or JWK) or a JWKS
 * URL (fetched and cached by jose, refreshed when an unknown `kid` appears); issuer, audience,
 * expiry and not-before are checked with a bounded clock skew. Unsigned (`alg: none`) and
 * symmetric tokens are refused: only the asymmetric algorithms listed are accepted, so a
 * public key can never be used as an HMAC secret.
 */
import { createPublicKey } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import type { JWK, JWTVerifyGetKey } from 'jose';
import { MaxineError } from '../../common/errors.js';

export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];

export interface JwtIdentity {
  kind: 'User';
  name: string;
  groups: string[];
}

export interface JwtVerifierOptions {
  issuer: string;
  audience: string;
  /** One of: a PEM public key (SPKI), a JWK (JSON), or a JWKS URL. */
  key: { pem: string } | { jwk: JWK } | { jwksUrl: string };
  /** Claim naming the user (default `sub`) and the groups (default `groups`). */
  userClaim?: string;
  groupsClaim?: string;
  clockSkewSeconds?: number;
}

type Key = KeyObject | JWTVerifyGetKey;

export class JwtVerifier {
  private key: Key | undefined;

  constructor(private readonly opts: JwtVerifierOptions) {}

  /** The identity a token proves, or UNAUTHENTICATED with the reason (never the token). */
  async verify(token: string): Promise<JwtIdentity> {
    let payload: Record<string, unknown>;
    try {
      const key = this.keyOf();
      const options = {
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        algorithms: JWT_ALGORITHMS,
        clockTolerance: this.opts.clockSkewSeconds ?? 30,
        requiredClaims: ['exp'],
      };
      const verified =
        typeof key === 'function'
          ? await jwtVerify(token, key, options)
          : await jwtVerify(token, key, options);
      payload = verified.payload;
    } catch (err) {
      throw new MaxineError('UNAUTHENTICATED', `The JWT was not accepted: ${why(err)}`);
    }
    const name = payload[this.opts.userClaim ?? 'sub'];
    if (typeof name !== 'string' || name === '')
      throw new MaxineError('UNAUTHENTICATED', 'The JWT names no user');
    const groups = payload[this.opts.groupsClaim ?? 'groups'];
    return {
      kind: 'User',
      name,
      groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
    };
  }

  /** The key, made once (a JWKS set fetches and caches the keys itself). */
  private keyOf(): Key {
    if (this.key === undefined) {
      const k = this.opts.key;
      // A public key object, whatever its type; the accepted algorithms are fixed above.
      if ('jwksUrl' in k) this.key = createRemoteJWKSet(new URL(k.jwksUrl));
      else if ('pem' in k) this.key = createPublicKey(k.pem);
      else this.key = createPublicKey({ key: k.jwk as JsonWebKey, format: 'jwk' });
    }
    return this.key;
  }
}

/** A reason a person can act on, without echoing the token. */
function why(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'it has expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `claim "${err.claim}" ${err.reason}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the signature does not verify';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'its algorithm is not accepted';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key of the JWKS matches it';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid)
    return 'it is malformed';
  if (err instanceof errors.JOSEError) return err.code;
  return 'it could not be verified';
}
