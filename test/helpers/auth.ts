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
import { startOperator } from './operator.js';
import type { TestOperator } from './operator.js';

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

/** The secured shop/orders fixture's users: root (bootstrap admin) and alice. */
export const ORDERS_TOKENS = {
  root: 'root-token-0123456789abcdef',
  alice: 'alice-token-0123456789abcdef',
} as const;

/** alice's MaxineACL: discover on shop/*, with `effect` written out when given. */
export const aliceAcl = (effect?: 'allow' | 'deny'): string => `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: alice, namespace: shop }
spec:
  subjects: [{ kind: User, name: alice }]
  rules: [{ services: ['shop/*'], verbs: [discover]${effect === undefined ? '' : `, effect: ${effect}`} }]
`;

/**
 * The secured shop/orders fixture: the MaxineService shop/orders with a MaxineIntention that
 * allows the sources `allow` and denies every other (`services.yaml`), alice's ACL
 * (`acl.yaml`), on an operator locked down (ORDERS_TOKENS, root admin) with intention default
 * deny and `config` on top, and one instance of shop/orders registered by root.
 */
export async function startSecuredOrders(
  dir: string,
  opts: { allow: string[]; aclEffect?: 'allow' | 'deny'; config?: Partial<OperatorConfig> },
): Promise<TestOperator> {
  const sources = opts.allow.map((name) => `    - { name: ${name}, action: allow }\n`).join('');
  const op = await startOperator({
    files: {
      'services.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders, namespace: shop }
spec:
  destination: { name: orders }
  sources:
${sources}    - { name: '*', action: deny }
`,
      'acl.yaml': aliceAcl(opts.aclEffect),
    },
    config: {
      ...lockedDown(await writeTokens(dir, ORDERS_TOKENS)),
      intentionDefault: 'deny',
      ...opts.config,
    },
  });
  const registered = await call(op.url, 'POST', '/api/v1/instances', {
    token: ORDERS_TOKENS.root,
    body: { service: 'orders', namespace: 'shop', host: '10.0.0.9', port: 8080 },
  });
  if (registered.status !== 201) {
    await op.stop();
    throw new Error(`registering shop/orders answered ${registered.status}`);
  }
  return op;
}
