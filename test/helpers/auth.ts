/**
 * Credentials for tests of an operator that authenticates: a static-token file, a JWT issuer
 * (an RS256 key pair whose public key the operator trusts), requests with a bearer token, and
 * the audit export read back as records.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey } from 'jose';
import type { OperatorConfig } from '../../operator/config.js';

export const ISSUER = 'https://login.example.test';
export const AUDIENCE = 'maxine';

/** A static token, optionally with groups. */
export type TokenUser = string | { token: string; groups?: string[] };

/** Writes `dir/tokens.yaml` with one entry per user (user → token); returns its path. */
export async function writeTokens(dir: string, users: Record<string, TokenUser>): Promise<string> {
  const file = join(dir, 'tokens.yaml');
  const lines = Object.entries(users).map(([user, t]) => {
    const { token, groups } = typeof t === 'string' ? { token: t, groups: undefined } : t;
    return `  - { token: ${token}, user: ${user}${groups === undefined ? '' : `, groups: [${groups.join(', ')}]`} }`;
  });
  await writeFile(file, ['tokens:', ...lines].join('\n') + '\n');
  return file;
}

/**
 * An operator configured as a Kubernetes operator would be: no anonymous access, ACL default
 * deny, the static tokens of `staticTokensFile` and `root` as bootstrap admin.
 */
export function lockedDown(staticTokensFile: string) {
  return {
    anonymous: false,
    aclDefault: 'deny',
    bootstrapAdmins: ['User:root'],
    staticTokensFile,
  } as const satisfies Partial<OperatorConfig>;
}

export interface JwtIssuer {
  keys: { privateKey: CryptoKey; publicKey: CryptoKey };
  /** The operator's settings that trust this issuer. */
  config: { jwtIssuer: string; jwtAudience: string; jwtPublicKeyFile: string };
  /** A token of `sub` (expiring in 5 minutes unless `expires`: a span or seconds since the epoch). */
  sign(opts: {
    sub: string;
    groups?: string[];
    expires?: string | number;
    audience?: string;
    key?: CryptoKey;
  }): Promise<string>;
}

/** A JWT issuer whose public key is written to `dir/jwt.pem`. */
export async function jwtIssuer(dir: string): Promise<JwtIssuer> {
  const keys = await generateKeyPair('RS256', { extractable: true });
  const file = join(dir, 'jwt.pem');
  await writeFile(file, await exportSPKI(keys.publicKey));
  return {
    keys,
    config: { jwtIssuer: ISSUER, jwtAudience: AUDIENCE, jwtPublicKeyFile: file },
    sign: ({ sub, groups, expires, audience, key }) =>
      new SignJWT(groups === undefined ? {} : { groups })
        .setProtectedHeader({ alg: 'RS256' })
        .setSubject(sub)
        .setIssuer(ISSUER)
        .setAudience(audience ?? AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(expires ?? '5m')
        .sign(key ?? keys.privateKey),
  };
}

export interface Reply {
  status: number;
  /** Parsed JSON, the text when it is not JSON, undefined when empty. */
  body: any;
  headers: Headers;
}

/** One request to `base + path`, with a bearer token, a JSON body and headers as given. */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string | undefined; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(opts.token !== undefined && { authorization: `Bearer ${opts.token}` }),
      ...(opts.body !== undefined && { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let body: unknown = text === '' ? undefined : text;
  try {
    if (text !== '') body = JSON.parse(text);
  } catch {
    // NDJSON or plain text stays a string
  }
  return { status: res.status, body, headers: res.headers };
}

/** The audit export (`GET /api/v1/audit`, read as `token`), one record a line. */
export async function auditRecords(
  base: string,
  token: string,
): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${base}/api/v1/audit`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`audit export answered ${res.status}`);
  return (await res.text())
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
