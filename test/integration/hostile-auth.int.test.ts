/**
 * Property-based hostile authentication over real sockets, modelled on hostile-input: an
 * operator with anonymous access off, `aclDefault: deny`, static tokens, a JWT issuer and the
 * audit log on, and a run of requests at every authenticated endpoint (and the event stream's
 * WebSocket handshake) carrying hostile `Authorization` headers: none, other schemes, garbage,
 * unicode, 10 KB values, odd spacing, duplicates, near-misses of the static tokens, JWTs that
 * are unsigned, HMAC-signed with the public key, signed by another key, expired, not yet
 * valid, for another audience or issuer, tampered with, not JSON, with claims of the wrong
 * type or claiming reserved names and groups; and valid tokens of principals without the
 * right attempting writes and reads they may not make.
 *
 * Whatever arrives: never a 5xx; the registry is exactly as it was (lease times included);
 * a request that is not authenticated gets exactly 401 (every route resolves the principal
 * before reading anything else); and afterwards no token sent appears in the operator's log
 * or in the audit log, which holds `unauthenticated` and `denied` records.
 *
 * Writes with a valid root token are never made (they would rightly change the registry):
 * when the oracle says an input authenticates as root, the method becomes GET.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey } from 'jose';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { handshakeStatus, registrySnapshot } from '../helpers/hostile.js';

const RUNS = Number(process.env.MAXINE_FUZZ_RUNS ?? 1500);
const WS_RUNS = Number(process.env.MAXINE_FUZZ_WS_RUNS ?? 300);
const RIGHTS_RUNS = Math.max(50, Math.round(RUNS / 5));

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'maxine';
/** Random per run; the tokens file wants at least 16 characters. */
const ROOT_TOKEN = randomBytes(24).toString('base64url');
const ALICE_TOKEN = randomBytes(24).toString('base64url');
/** Nobody but root may write, so a write must never reach the registry. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Stays under node's 16 KB header limit with everything else a request carries. */
const MAX_AUTH_BYTES = 12_000;

/** Who the operator should take a request for: the oracle every property asserts against. */
type Who = 'anonymous' | 'root' | 'alice' | 'user';

let op: TestOperator;
let port: number;
let knownId: string;
let secrets: string;
let auditDir: string;
let keys: { privateKey: CryptoKey; publicKey: CryptoKey };
let otherRsa: { privateKey: CryptoKey };
let otherEc: { privateKey: CryptoKey };
let publicPem: string;
/** bob: a JWT user in no group; carol: a JWT user in shop-team (the ACL grants it read). */
let bobToken: string;
let carolToken: string;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const counts = { http: 0, ws: 0 };
/** How often the main run's inputs authenticated as each principal: every kind must occur. */
const seen: Record<Who, number> = { anonymous: 0, root: 0, alice: 0, user: 0 };
/** The tokens that authenticate, and as whom. */
const valid = new Map<string, Who>([
  [ROOT_TOKEN, 'root'],
  [ALICE_TOKEN, 'alice'],
]);
/** Every token-like string sent (16+ characters), for the leak check at the end. */
const sent = new Set<string>();

const SHOP_WEB =
  'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: web, namespace: shop }\nspec: {}\n';
const SHOP_ACL = `apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: shop-team, namespace: shop }
spec:
  subjects: [{ kind: Group, name: shop-team }]
  rules: [{ services: ['shop/*'], verbs: [read, discover] }]
`;

beforeAll(async () => {
  keys = await generateKeyPair('RS256', { extractable: true });
  otherRsa = await generateKeyPair('RS256');
  otherEc = await generateKeyPair('ES256');
  publicPem = await exportSPKI(keys.publicKey);
  // Secrets and the audit log live apart from the watched resource folder.
  secrets = await mkdtemp(join(tmpdir(), 'maxine-auth-'));
  auditDir = join(secrets, 'audit');
  await writeFile(join(secrets, 'jwt.pem'), publicPem);
  await writeFile(
    join(secrets, 'tokens.yaml'),
    `tokens:\n  - { token: '${ROOT_TOKEN}', user: root }\n  - { token: '${ALICE_TOKEN}', user: alice, groups: [shop-team] }\n`,
  );
  op = await startOperator({
    files: { 'svc.yaml': SHOP_WEB, 'acl.yaml': SHOP_ACL },
    config: {
      anonymous: false,
      aclDefault: 'deny',
      staticTokensFile: join(secrets, 'tokens.yaml'),
      bootstrapAdmins: ['User:root'],
      jwtIssuer: ISSUER,
      jwtAudience: AUDIENCE,
      jwtPublicKeyFile: join(secrets, 'jwt.pem'),
      auditDir,
      bodyLimitBytes: 4096,
    },
  });
  port = Number(new URL(op.url).port);
  bobToken = await sign({ ...standardClaims(), sub: 'bob' });
  carolToken = await sign({ ...standardClaims(), sub: 'carol', groups: ['shop-team'] });
  for (const t of [ROOT_TOKEN, ALICE_TOKEN, bobToken, carolToken]) sent.add(t);
  valid.set(bobToken, 'user');
  valid.set(carolToken, 'user');
  const res = await send({
    method: 'POST',
    path: '/api/v1/instances',
    body: JSON.stringify(KNOWN_REGISTRATION),
    contentType: 'application/json',
    auth: [`Bearer ${ROOT_TOKEN}`],
  });
  expect(res.status).toBe(201);
  knownId = (JSON.parse(res.text) as { instance: { id: string } }).instance.id;
});
afterAll(async () => {
  agent.destroy();
  await op.stop();
  await rm(secrets, { recursive: true, force: true });
  // The count of inputs tried, for the record (issue notes quote it).
  process.stdout.write(
    `hostile-auth: ${counts.http} HTTP requests, ${counts.ws} WebSocket handshakes\n`,
  );
});

const KNOWN_REGISTRATION = {
  service: 'web',
  namespace: 'shop',
  host: '10.0.0.1',
  port: 80,
  ttlSeconds: 3600,
};

/** Everything the registry holds, including lease times: any change shows. */
const registryState = (): string => registrySnapshot(op.operator.registry);

interface Req {
  method: string;
  path: string;
  body?: string | undefined;
  contentType?: string | undefined;
  /** Authorization header lines, in order (several: a duplicated header). */
  auth?: readonly string[];
  source?: string | undefined;
}

function send(r: Req): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = {};
    if (r.contentType !== undefined) headers['content-type'] = r.contentType;
    if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
    if (r.auth !== undefined && r.auth.length > 0) headers.authorization = [...r.auth];
    if (r.source !== undefined) headers['x-maxine-source'] = r.source;
    const req = request(
      { host: '127.0.0.1', port, method: r.method, path: r.path, headers, agent },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(r.body);
  });
}

/** A raw WebSocket handshake; resolves with the status of the answer (101 is closed at once). */
function handshake(path: string, auth: readonly string[]): Promise<number> {
  return handshakeStatus(port, path, { headers: auth.map((v) => `Authorization: ${v}`) });
}

// ---- the oracle ----

/** What the operator accepts as a bearer token (operator/auth/tokenreview.ts `bearerToken`). */
const BEARER_RE = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,8192})\s*$/i;

/** Node keeps the first of duplicated Authorization headers and trims spaces and tabs. */
function whoIs(values: readonly string[]): Who {
  const first = values[0];
  if (first === undefined) return 'anonymous';
  const token = BEARER_RE.exec(first.replace(/^[ \t]+|[ \t]+$/g, ''))?.[1];
  return (token === undefined ? undefined : valid.get(token)) ?? 'anonymous';
}

/** The token-like pieces of header values: 16+ characters and not a run of a few letters. */
function tokensIn(values: readonly string[]): string[] {
  const pieces = values.flatMap((v) => [v.trim(), ...v.split(/[\s,]+/)]);
  return pieces.filter((p) => p.length >= 16 && new Set(p).size >= 6);
}

// ---- tokens ----

const b64 = (v: unknown): string =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function standardClaims(): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 };
}

function sign(claims: Record<string, unknown>, key = keys.privateKey, alg = 'RS256') {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
}

const DEFECTS = [
  'other-key',
  'expired',
  'wrong-aud',
  'wrong-iss',
  'nbf-future',
  'no-exp',
  'alg-none',
  'hs256',
  'tampered',
  'bad-signature',
  'non-json',
  'random-parts',
] as const;
type Defect = 'none' | (typeof DEFECTS)[number];

interface JwtSpec {
  defect: Defect;
  sub: unknown;
  groups: unknown;
  /** The wrong `aud` or `iss`. */
  claim: unknown;
  extra: Record<string, unknown>;
  n: number;
  noise: string;
}

const RESERVED = /^(system|maxine):/;
const NON_JSON = ['not json', '{"iss":', '', 'null', '123', '"https://issuer.test"', '[1,2]', '{'];

function adjustClaims(s: JwtSpec, claims: Record<string, unknown>): void {
  const now = Math.floor(Date.now() / 1000);
  // Beyond the 30 s clock skew the operator allows.
  if (s.defect === 'expired') claims.exp = now - 60 - s.n;
  else if (s.defect === 'nbf-future') claims.nbf = now + 60 + s.n;
  else if (s.defect === 'no-exp') delete claims.exp;
  else if (s.defect === 'wrong-aud') claims.aud = s.claim;
  else if (s.defect === 'wrong-iss') claims.iss = s.claim;
}

/** Tokens that are not a signed JWT of the trusted key at all. */
function forged(s: JwtSpec, claims: Record<string, unknown>): string | undefined {
  if (s.defect === 'alg-none') return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
  if (s.defect === 'hs256') {
    // Algorithm confusion: the public key used as an HMAC secret.
    const signing = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    return `${signing}.${createHmac('sha256', publicPem).update(signing).digest('base64url')}`;
  }
  if (s.defect === 'non-json')
    return `${b64({ alg: 'RS256' })}.${b64(NON_JSON[s.n % NON_JSON.length])}.${s.noise}`;
  if (s.defect === 'random-parts') {
    const cut = (s.n % 4) + 1;
    const step = Math.max(1, Math.floor(s.noise.length / cut));
    const parts = Array.from({ length: cut }, (_, i) => s.noise.slice(i * step, (i + 1) * step));
    return parts.join('.');
  }
  return undefined;
}

async function jwtOf(s: JwtSpec): Promise<string> {
  const claims: Record<string, unknown> = { ...s.extra, ...standardClaims() };
  if (s.sub !== undefined) claims.sub = s.sub;
  if (s.groups !== undefined) claims.groups = s.groups;
  adjustClaims(s, claims);
  const unsigned = forged(s, claims);
  if (unsigned !== undefined) return unsigned;
  if (s.defect === 'other-key')
    return s.n % 2 === 0
      ? sign(claims, otherRsa.privateKey)
      : sign(claims, otherEc.privateKey, 'ES256');
  const token = await sign(claims);
  const [header, payload] = token.split('.');
  // `admin` makes the payload differ from the signed one even when it already named root.
  if (s.defect === 'tampered') {
    const escalated = { ...claims, sub: 'root', groups: ['shop-team'], admin: true };
    return `${header}.${b64(escalated)}.${token.split('.')[2]}`;
  }
  if (s.defect === 'bad-signature') return `${header}.${payload}.${s.noise}`;
  // A good token: it authenticates when it names a user that is not reserved.
  if (s.defect === 'none' && typeof s.sub === 'string' && s.sub !== '' && !RESERVED.test(s.sub))
    valid.set(token, 'user');
  return token;
}

type Miss = 'exact' | 'changed' | 'prefix' | 'suffix' | 'case' | 'doubled';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A static token, exactly or one of its near misses. */
function staticToken(who: 'root' | 'alice', miss: Miss, n: number): string {
  const t = who === 'root' ? ROOT_TOKEN : ALICE_TOKEN;
  const at = n % t.length;
  switch (miss) {
    case 'changed': {
      const c = B64URL[(B64URL.indexOf(t[at]!) + 1 + (n % 63)) % 64]!;
      return t.slice(0, at) + c + t.slice(at + 1);
    }
    case 'prefix':
      return t.slice(0, at);
    case 'suffix':
      return t + B64URL[n % 64]!;
    case 'case':
      return [...t]
        .map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()))
        .join('');
    case 'doubled':
      return t + t;
    default:
      return t;
  }
}

type TokenSpec =
  | { kind: 'static'; who: 'root' | 'alice'; miss: Miss; n: number }
  | { kind: 'jwt'; jwt: JwtSpec }
  | { kind: 'text'; text: string };

/** A string as node sends a header value: UTF-8 bytes read as latin1, without control bytes. */
const latin1 = (s: string): string =>
  Buffer.from(s, 'utf8')
    .toString('latin1')
    .replace(/[^\t\x20-\x7e\x80-\xff]/g, '');

async function tokenOf(t: TokenSpec): Promise<string> {
  if (t.kind === 'static') return staticToken(t.who, t.miss, t.n);
  if (t.kind === 'jwt') return jwtOf(t.jwt);
  return latin1(t.text);
}

type HeaderSpec =
  | { form: 'bearer'; scheme: string; lead: string; gap: string; trail: string; token: TokenSpec }
  | { form: 'scheme'; scheme: string; token: TokenSpec }
  | { form: 'raw'; text: string };

async function headerValue(h: HeaderSpec): Promise<string> {
  if (h.form === 'raw') return latin1(h.text);
  const token = await tokenOf(h.token);
  if (h.form === 'scheme') return `${h.scheme} ${token}`;
  return `${h.lead}${h.scheme}${h.gap}${token}${h.trail}`;
}

/** The header lines to send, within the header size limit; their tokens are kept for the leak check. */
async function headerValues(specs: readonly HeaderSpec[]): Promise<string[]> {
  const values: string[] = [];
  let size = 0;
  for (const spec of specs) {
    const value = await headerValue(spec);
    size += value.length;
    if (size > MAX_AUTH_BYTES) break;
    values.push(value);
  }
  for (const t of tokensIn(values)) sent.add(t);
  return values;
}

// ---- arbitraries ----

const b64char = fc.constantFrom(...B64URL.split(''));
const b64str = (max: number) => fc.string({ unit: b64char, minLength: 1, maxLength: max });
const printable = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});
/** 1 to 10 KB of base64url: past the 8192 characters a bearer token may have, and under. */
const huge = fc
  .tuple(b64str(64), fc.integer({ min: 1000, max: 10_000 }))
  .map(([s, n]) => s.repeat(Math.ceil(n / s.length)).slice(0, n));
const noise = fc.oneof(b64str(400), huge);

const fuzzUser = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).map((s) => `fz-${s}`);
/** Subjects that never name a usable user: empty, reserved, not a string. */
const badSub = fc.constantFrom<unknown>(
  undefined,
  '',
  0,
  42,
  -1,
  true,
  null,
  [],
  ['root'],
  { name: 'root' },
  'system:serviceaccount:shop:web',
  'system:anonymous',
  'system:admin',
  'maxine:sidecar',
  'maxine:sidecars',
);
const privilegedSub = fc.constantFrom('root', 'alice', 'bob', 'carol');
const groups = fc.oneof(
  fc.constant(undefined),
  fc.array(
    fc.constantFrom(
      'shop-team',
      'system:masters',
      'maxine:sidecars',
      'system:authenticated',
      'platform-team',
      '',
    ),
    { maxLength: 6 },
  ),
  fc.constantFrom<unknown>('system:masters', 'shop-team', 'maxine:sidecars', 42, null, {
    shop: 'team',
  }),
  fc.integer({ min: 100, max: 700 }).map((n) => Array.from({ length: n }, (_, i) => `group-${i}`)),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 5 }),
);
/** A wrong `aud` or `iss`; never one whose string form cannot be made (a test of its own below). */
const wrongClaim = fc.oneof(
  fc.constantFrom<unknown>(
    'https://evil.test',
    'https://issuer.test/',
    'HTTPS://ISSUER.TEST',
    'Maxine',
    'maxine ',
    '',
    0,
    null,
    true,
    [],
    ['other'],
    ['https://issuer.test'],
    { aud: 'maxine' },
  ),
  fc.string({ maxLength: 40 }).filter((s) => s !== ISSUER && s !== AUDIENCE),
);
const extraClaims = fc.dictionary(
  fc.constantFrom('jti', 'email', 'scope', 'roles', 'azp', 'name', 'kid', 'jku', 'constructor'),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 4 },
);
const jwtCommon = {
  groups,
  claim: wrongClaim,
  extra: extraClaims,
  n: fc.integer({ min: 0, max: 1_000_000 }),
  noise,
};
const jwtSpec: fc.Arbitrary<JwtSpec> = fc.oneof(
  fc.record({
    defect: fc.constant<Defect>('none'),
    sub: fc.oneof({ weight: 3, arbitrary: fuzzUser }, { weight: 1, arbitrary: badSub }),
    ...jwtCommon,
  }),
  fc.record({
    defect: fc.constantFrom<Defect>(...DEFECTS),
    sub: fc.oneof(fuzzUser, badSub, privilegedSub),
    ...jwtCommon,
  }),
);
const tokenSpec: fc.Arbitrary<TokenSpec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('static' as const),
      who: fc.constantFrom('root' as const, 'alice' as const),
      miss: fc.oneof(
        { weight: 5, arbitrary: fc.constant<Miss>('exact') },
        {
          weight: 5,
          arbitrary: fc.constantFrom<Miss>('changed', 'prefix', 'suffix', 'case', 'doubled'),
        },
      ),
      n: fc.nat(),
    }),
  },
  { weight: 5, arbitrary: jwtSpec.map((jwt) => ({ kind: 'jwt' as const, jwt })) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        b64str(80),
        printable,
        fc.string({ unit: 'binary', maxLength: 40 }),
        huge,
        fc.constantFrom('', 'null', 'undefined', 'Bearer', '.', '..', 'a.b.c', 'eyJ.eyJ.', '='),
        fc.tuple(b64str(30), b64str(200), b64str(60)).map((p) => p.join('.')),
      )
      .map((text) => ({ kind: 'text' as const, text })),
  },
);
/** Mostly the plain form, else one of the odd ones. */
const plainOr = (plain: string, odd: string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(plain) },
    { weight: 1, arbitrary: fc.constantFrom(...odd) },
  );
const header: fc.Arbitrary<HeaderSpec> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      form: fc.constant('bearer' as const),
      scheme: plainOr('Bearer', ['bearer', 'BEARER', 'BeArEr', 'Bearer:']),
      lead: plainOr('', [' ', '   ', '\t']),
      gap: plainOr(' ', ['  ', '\t', ' \t ', ' '.repeat(60), '', '\xa0', '+']),
      trail: plainOr('', [' ', '\t', ' '.repeat(100), ' x']),
      token: tokenSpec,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      form: fc.constant('scheme' as const),
      scheme: fc.constantFrom('Basic', 'Token', 'Digest', 'Negotiate', 'JWT', '', 'Bearer,'),
      token: tokenSpec,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      form: fc.constant('raw' as const),
      text: fc.oneof(printable, fc.string({ unit: 'binary', maxLength: 60 }), huge),
    }),
  },
);
/** No header, one, or a duplicated header (node keeps the first). */
const auth = fc.oneof(
  { weight: 1, arbitrary: fc.constant([]) },
  { weight: 8, arbitrary: fc.tuple(header) },
  { weight: 2, arbitrary: fc.array(header, { minLength: 2, maxLength: 3 }) },
);
const source = fc.option(
  fc.oneof(
    fc.constantFrom('shop/web', 'other/x', 'shop/*', 'SHOP/WEB', '', '/', 'shop/web/extra'),
    printable,
    fc.string({ unit: 'binary', maxLength: 30 }).map(latin1),
  ),
  { nil: undefined },
);

// ---- targets: every authenticated endpoint ----

interface Target {
  method: string;
  path: string;
  body?: string | undefined;
  contentType?: string | undefined;
}

/** `{known}` stands for the id of the instance root registered (known only at run time). */
const KNOWN = '{known}';
const withKnown = (s: string | undefined): string | undefined => s?.replaceAll(KNOWN, knownId);

const idSeg = fc.oneof(
  { weight: 3, arbitrary: fc.constant(KNOWN) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('no-such', '..', '%2e%2e', '%ZZ', 'a:b', '-x', `${KNOWN}%00`),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9._:-]{1,30}$/) },
);
const nsSeg = fc.constantFrom('shop', 'shop', 'other', 'fuzz', 'SHOP', '*', '%73hop', '..', '');
const nameSeg = fc.constantFrom('web', 'web', 'x', 'fuzz', 'WEB', '*', '%77eb', '');
const query = fc.oneof(
  fc.constant(''),
  fc.constantFrom(
    '?strategy=round-robin',
    '?zone=a&zone=b',
    '?namespace=shop',
    '?namespace=other',
    '?namespace=BAD!',
    '?kind=MaxineACL',
    '?kind=MaxineService',
    '?kind=Nope',
    '?x=1',
    '?',
    '?%zz',
  ),
  printable.map((q) => `?${q}`),
);
const serviceRef = fc.constantFrom('shop/web', 'other/x', 'shop/*', 'SHOP/web', '', 'a/b/c');
const intentionQuery = fc
  .record(
    {
      source: serviceRef,
      destination: serviceRef,
      method: fc.constantFrom('GET', 'post', 'DELETE'),
      path: fc.constantFrom('/', '/admin', 'x', ''),
    },
    { requiredKeys: [] },
  )
  .map((q) => `?${new URLSearchParams(q as Record<string, string>).toString()}`);
const auditQuery = fc
  .record(
    {
      from: fc.constantFrom('2020-01-01T00:00:00Z', 'not-a-date', '', '2099-01-01T00:00:00+02:00'),
      to: fc.constantFrom('2099-01-01T00:00:00Z', '0', '2020-01-01'),
    },
    { requiredKeys: [] },
  )
  .map((q) => `?${new URLSearchParams(q as Record<string, string>).toString()}`);

const json = (v: unknown): string => JSON.stringify(v);
const registration = fc.oneof(
  fc.constant(json(KNOWN_REGISTRATION)),
  fc.constant(json({ ...KNOWN_REGISTRATION, id: KNOWN })),
  fc.constant(json({ ...KNOWN_REGISTRATION, host: '10.9.9.9', port: 1234 })),
  fc.constant(json({ service: 'fuzz', namespace: 'fuzz', host: '10.9.9.9', port: 1234 })),
  fc.constant(json({ service: 'web', namespace: 'other', host: '10.9.9.9', port: 1 })),
  fc.jsonValue({ maxDepth: 2 }).map(json),
  printable,
  fc.constant(json({ ...KNOWN_REGISTRATION, metadata: { k: 'x'.repeat(5000) } })),
);
const heartbeatBody = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    '{}',
    '{"status":"passing"}',
    '{"status":"critical","output":"down"}',
    '{"connections":5}',
    '{"status":"dead"}',
    'null',
  ),
  fc.jsonValue({ maxDepth: 2 }).map(json),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json',
  'text/plain',
  undefined,
);
const readMethod = fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH');

const target: fc.Arbitrary<Target> = fc.oneof(
  fc.record({
    method: fc.constant('POST'),
    path: fc.constantFrom('/api/v1/instances', '/api/v1/instances/', '/api/v1/instances?x=1'),
    body: registration,
    contentType,
  }),
  fc.record({
    method: fc.constant('PUT'),
    path: fc.tuple(idSeg, query).map(([id, q]) => `/api/v1/instances/${id}/heartbeat${q}`),
    body: heartbeatBody,
    contentType,
  }),
  fc.record({
    method: fc.constantFrom('GET', 'DELETE', 'DELETE', 'HEAD', 'PATCH'),
    path: idSeg.map((id) => `/api/v1/instances/${id}`),
  }),
  fc.record({ method: readMethod, path: query.map((q) => `/api/v1/services${q}`) }),
  fc.record({
    method: readMethod,
    path: fc
      .tuple(nsSeg, nameSeg, query)
      .map(([ns, name, q]) => `/api/v1/services/${ns}/${name}${q}`),
  }),
  fc.record({
    method: fc.constantFrom('GET', 'GET', 'HEAD', 'POST'),
    path: fc
      .tuple(nsSeg, nameSeg, query)
      .map(([ns, name, q]) => `/api/v1/discover/${ns}/${name}${q}`),
  }),
  fc.record({ method: readMethod, path: query.map((q) => `/api/v1/resources${q}`) }),
  fc.record({
    method: readMethod,
    path: intentionQuery.map((q) => `/api/v1/intentions/check${q}`),
  }),
  fc.record({ method: readMethod, path: auditQuery.map((q) => `/api/v1/audit${q}`) }),
  fc.record({ method: readMethod, path: query.map((q) => `/api/v1/events${q}`) }),
);

const wsQuery = fc.oneof(
  fc
    .constantFrom(
      '',
      '?services=shop/web',
      '?services=*/*&types=service_registered,service_heartbeat',
      '?since=0',
      '?snapshot=true',
      '?services=other/x',
    )
    .map((q) => ({ q, ok: true })),
  fc
    .constantFrom(
      '?since=abc',
      '?bogus=1',
      '?since=1&since=2',
      '?services=UPPER/x',
      '?types=nope',
      '?snapshot=maybe',
    )
    .map((q) => ({ q, ok: false })),
);

function expectNoEcho(text: string, values: readonly string[]): void {
  for (const t of tokensIn(values)) expect(text.includes(t)).toBe(false);
}

describe('hostile authentication', () => {
  it(`never answers 5xx, refuses the unauthenticated with 401 and changes nothing (${RUNS} requests)`, async () => {
    const before = registryState();
    await fc.assert(
      fc.asyncProperty(auth, target, source, async (specs, t, src) => {
        const values = await headerValues(specs);
        const who = whoIs(values);
        // Root may do anything: only its reads are tried.
        const method = who === 'root' && !SAFE_METHODS.has(t.method) ? 'GET' : t.method;
        const res = await send({
          ...t,
          method,
          path: withKnown(t.path) ?? '',
          body: withKnown(t.body),
          auth: values,
          source: src,
        });
        counts.http += 1;
        seen[who] += 1;
        expect(res.status).toBeGreaterThanOrEqual(200);
        expect(res.status).toBeLessThan(500);
        if (who === 'anonymous') expect(res.status).toBe(401);
        else if (who !== 'root' && !SAFE_METHODS.has(method))
          expect(res.status).toBeGreaterThanOrEqual(400);
        expectNoEcho(res.text, values);
        expect(registryState()).toBe(before);
      }),
      { numRuns: RUNS },
    );
    if (RUNS >= 200) for (const n of Object.values(seen)) expect(n).toBeGreaterThan(0);
  });

  it(`WebSocket handshakes: 400 for a bad query, else 401 without a principal, 101 with one (${WS_RUNS} runs)`, async () => {
    const before = registryState();
    await fc.assert(
      fc.asyncProperty(auth, wsQuery, async (specs, { q, ok }) => {
        const values = await headerValues(specs);
        const who = whoIs(values);
        const status = await handshake(`/api/v1/events${q}`, values);
        counts.ws += 1;
        // The query is checked before the principal; any principal may subscribe (what it
        // sees is filtered by its read rights).
        if (!ok) expect(status).toBe(400);
        else expect(status).toBe(who === 'anonymous' ? 401 : 101);
        expect(registryState()).toBe(before);
      }),
      { numRuns: WS_RUNS },
    );
  });

  /** [status for a shop-team reader (alice, carol), status for bob (no group)] */
  const RIGHTS: { method: string; path: string; body?: string; want: [number, number] }[] = [
    { method: 'PUT', path: `/api/v1/instances/${KNOWN}/heartbeat`, want: [403, 404] },
    {
      method: 'PUT',
      path: `/api/v1/instances/${KNOWN}/heartbeat`,
      body: '{"status":"passing","connections":1}',
      // bob has no right on shop/web: the same 404 as an unknown id (no cross-tenant oracle)
      want: [403, 404],
    },
    { method: 'DELETE', path: `/api/v1/instances/${KNOWN}`, want: [403, 404] },
    {
      method: 'POST',
      path: '/api/v1/instances',
      body: json({ ...KNOWN_REGISTRATION, id: KNOWN }),
      want: [403, 403],
    },
    {
      method: 'POST',
      path: '/api/v1/instances',
      body: json({ service: 'fuzz', namespace: 'fuzz', host: '10.9.9.9', port: 1234 }),
      want: [403, 403],
    },
    // Unknown ids pass the write check so that a sidecar learns to register again.
    { method: 'PUT', path: '/api/v1/instances/no-such/heartbeat', want: [404, 404] },
    { method: 'DELETE', path: '/api/v1/instances/no-such', want: [404, 404] },
    { method: 'GET', path: `/api/v1/instances/${KNOWN}`, want: [200, 404] },
    { method: 'GET', path: '/api/v1/services/shop/web', want: [200, 403] },
    { method: 'GET', path: '/api/v1/discover/shop/web', want: [200, 403] },
    { method: 'HEAD', path: '/api/v1/discover/shop/web', want: [200, 403] },
    { method: 'GET', path: '/api/v1/services/other/x', want: [403, 403] },
    { method: 'GET', path: '/api/v1/discover/other/x', want: [403, 403] },
    {
      method: 'GET',
      path: '/api/v1/intentions/check?source=other/x&destination=shop/web',
      want: [200, 403],
    },
    {
      method: 'GET',
      path: '/api/v1/intentions/check?source=shop/web&destination=other/x',
      want: [403, 403],
    },
    { method: 'GET', path: '/api/v1/audit', want: [403, 403] },
    { method: 'GET', path: '/api/v1/audit?from=2000-01-01T00:00:00Z', want: [403, 403] },
    { method: 'GET', path: '/api/v1/services', want: [200, 200] },
    { method: 'GET', path: '/api/v1/services?namespace=other', want: [200, 200] },
    { method: 'GET', path: '/api/v1/resources', want: [200, 200] },
  ];

  it(`valid principals without the right are refused exactly, and see only what they may (${RIGHTS_RUNS} runs)`, async () => {
    const before = registryState();
    const principal = fc.constantFrom('alice', 'bob', 'carol');
    const tokenOfUser = { alice: ALICE_TOKEN, bob: bobToken, carol: carolToken };
    await fc.assert(
      fc.asyncProperty(
        principal,
        fc.constantFrom(...RIGHTS),
        fc.constantFrom('Bearer ', 'bearer ', 'Bearer \t', ' Bearer  '),
        async (user, c, scheme) => {
          const res = await send({
            method: c.method,
            path: withKnown(c.path) ?? '',
            body: withKnown(c.body),
            contentType: c.body === undefined ? undefined : 'application/json',
            auth: [`${scheme}${tokenOfUser[user]}`],
          });
          counts.http += 1;
          expect(res.status).toBe(c.want[user === 'bob' ? 1 : 0]);
          if (c.path === '/api/v1/services')
            expect(res.text.includes('"name":"web"')).toBe(user !== 'bob');
          // ACLs are for admins; the catalogue shows a reader the service only.
          if (c.path === '/api/v1/resources') expect(res.text.includes('MaxineACL')).toBe(false);
          expect(registryState()).toBe(before);
        },
      ),
      { numRuns: RIGHTS_RUNS },
    );
  });

  it('a JWT whose `iss` has no string form is refused with 401, not 500', async () => {
    // Bug: the authenticator builds its message with String(claims.iss), which throws a
    // TypeError for {"toString": 1}; the TypeError becomes INTERNAL (500) and goes unaudited.
    const before = registryState();
    const token = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: { toString: 1 }, sub: 'x' })}.${b64('sig')}`;
    sent.add(token);
    const statuses: Record<string, number> = {};
    for (const r of [
      { method: 'GET', path: '/api/v1/services' },
      { method: 'GET', path: '/api/v1/discover/shop/web' },
      { method: 'PUT', path: `/api/v1/instances/${knownId}/heartbeat` },
      { method: 'POST', path: '/api/v1/instances', body: json(KNOWN_REGISTRATION) },
    ]) {
      const contentType = r.body === undefined ? undefined : 'application/json';
      const res = await send({ ...r, contentType, auth: [`Bearer ${token}`] });
      counts.http += 1;
      statuses[`${r.method} ${r.path}`] = res.status;
    }
    statuses['WebSocket /api/v1/events'] = await handshake('/api/v1/events', [`Bearer ${token}`]);
    counts.ws += 1;
    expect(statuses).toEqual(Object.fromEntries(Object.keys(statuses).map((k) => [k, 401])));
    expect(registryState()).toBe(before);
  });

  it('a token without a group does not inherit the rights of an earlier token with it', async () => {
    // Bug: ACL decisions are cached by principal key `User\0<name>`, which leaves the groups
    // out; the first token of a user decides for every later one until the policies change.
    const now = standardClaims();
    const withGroup = await sign({ ...now, sub: 'dave', groups: ['shop-team'] });
    const withoutGroup = await sign({ ...now, sub: 'dave', jti: 'second' });
    sent.add(withGroup);
    sent.add(withoutGroup);
    const path = '/api/v1/services/shop/web';
    const first = await send({ method: 'GET', path, auth: [`Bearer ${withGroup}`] });
    const second = await send({ method: 'GET', path, auth: [`Bearer ${withoutGroup}`] });
    counts.http += 2;
    expect([first.status, second.status]).toEqual([200, 403]);
  });

  it('no token reaches the operator log or the audit log, which records refusals', async () => {
    const audit = await settledAudit();
    expect(audit).toContain('"outcome":"unauthenticated"');
    expect(audit).toContain('"outcome":"denied"');
    const log = op.logs.map((l) => JSON.stringify(l)).join('\n');
    const leaked = [...sent].filter((t) => audit.includes(t) || log.includes(t));
    expect(leaked).toEqual([]);
    expect(sent.size).toBeGreaterThan(100);
  });
});

/** The audit files' text once both outcomes are there and it stops growing (at most ~2 s). */
async function settledAudit(): Promise<string> {
  let text = '';
  const deadline = Date.now() + 2000;
  for (;;) {
    const files = (await readdir(auditDir)).filter((f) =>
      /^(audit|auth-failures)\..*\.ndjson$/.test(f),
    );
    const next = (await Promise.all(files.map((f) => readFile(join(auditDir, f), 'utf8')))).join(
      '\n',
    );
    const complete =
      next.includes('"outcome":"unauthenticated"') && next.includes('"outcome":"denied"');
    if ((complete && next === text) || Date.now() > deadline) return next;
    text = next;
    await new Promise((r) => setTimeout(r, 100));
  }
}
