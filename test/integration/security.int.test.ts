/**
 * Access control end to end on a real operator with real sockets, set up as a Kubernetes
 * operator would be (no anonymous access, ACL default deny): static tokens and JWTs identify
 * callers; ACLs decide every endpoint and what an event subscriber sees; intentions refuse
 * discovery by a denied source; blocked services and rate limits refuse with their reasons;
 * and the audit export holds every one of those decisions and no token.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import type { CryptoKey } from 'jose';
import WebSocket from 'ws';
import type { MaxineEvent } from '../../common/wire.js';
import { call as request, writeTokens, lockedDown } from '../helpers/auth.js';
import { eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const ISSUER = 'https://login.example.test';
const AUDIENCE = 'maxine';
const TOKENS = {
  root: 'root-token-0123456789abcdef',
  alice: 'alice-token-0123456789abcdef',
  carol: 'carol-token-0123456789abcdef',
  flood: 'flood-token-0123456789abcdef',
};

const RESOURCES = {
  'services.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec:
  rateLimit: { requestsPerSecond: 2, burst: 3 }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ledger, namespace: bank }
spec: {}
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: legacy, namespace: shop }
spec:
  blocked: { registration: true, reason: "being retired, see TICKET-42" }
`,
  'acls.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: shop-team, namespace: shop }
spec:
  subjects:
    - { kind: Group, name: shop-team }
  rules:
    - services: ['shop/*']
      verbs: [read, discover]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: deployers, namespace: shop }
spec:
  subjects:
    - { kind: User, name: carol }
  rules:
    - services: ['shop/*']
      verbs: [write]
    - services: ['shop/web']
      verbs: [register]
      effect: deny
`,
  'intentions.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders, namespace: shop }
spec:
  destination: { name: orders }
  sources:
    - name: web
      permissions:
        - action: allow
          http: { pathPrefix: /api/orders, methods: [GET] }
        - action: deny
          http: { pathPrefix: / }
    - name: '*'
      action: deny
`,
};

let op: TestOperator;
let work: string;
let keys: { privateKey: CryptoKey; publicKey: CryptoKey };
let other: { privateKey: CryptoKey; publicKey: CryptoKey };
/** Every token this file sends, to prove none reaches a log. */
const sent = new Set<string>(Object.values(TOKENS));

const jwt = async (
  key: CryptoKey,
  opts: { sub?: string; audience?: string; expires?: string | number; groups?: string[] } = {},
) => {
  const token = await new SignJWT({ groups: opts.groups ?? ['shop-team'] })
    .setProtectedHeader({ alg: 'RS256' })
    .setSubject(opts.sub ?? 'bob')
    .setIssuer(ISSUER)
    .setAudience(opts.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.expires ?? '5m')
    .sign(key);
  sent.add(token);
  return token;
};

const call = (
  method: string,
  path: string,
  token?: string,
  extra: { body?: unknown; headers?: Record<string, string> } = {},
) => request(op.url, method, path, { token, ...extra });

const register = (token: string | undefined, service: string, namespace = 'shop') =>
  call('POST', '/api/v1/instances', token, {
    body: { service, namespace, host: '10.0.0.9', port: 8080, ttlSeconds: 3600 },
  });

beforeAll(async () => {
  keys = await generateKeyPair('RS256', { extractable: true });
  other = await generateKeyPair('RS256', { extractable: true });
  work = await mkdtemp(join(tmpdir(), 'maxine-security-'));
  await writeFile(join(work, 'jwt.pem'), await exportSPKI(keys.publicKey));
  const staticTokensFile = await writeTokens(work, {
    root: TOKENS.root,
    alice: { token: TOKENS.alice, groups: ['shop-team'] },
    carol: TOKENS.carol,
    flood: { token: TOKENS.flood, groups: ['shop-team'] },
  });
  op = await startOperator({
    files: RESOURCES,
    config: {
      ...lockedDown(staticTokensFile),
      jwtIssuer: ISSUER,
      jwtAudience: AUDIENCE,
      jwtPublicKeyFile: join(work, 'jwt.pem'),
      auditDir: join(work, 'audit'),
      identityRateLimit: 20,
      identityRateBurst: 40,
    },
  });
});

afterAll(async () => {
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

describe('authentication', () => {
  it('refuses requests without a token, naming how to authenticate', async () => {
    const res = await call('GET', '/api/v1/services');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
    expect(res.body.error.message).toMatch(/JWT from https:\/\/login\.example\.test/);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('keeps health, readiness and metrics open', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics'])
      expect((await call('GET', path)).status).toBe(200);
  });

  it('accepts a static token and a JWT from the configured issuer', async () => {
    expect((await call('GET', '/api/v1/services/shop/web', TOKENS.alice)).status).toBe(200);
    expect(
      (await call('GET', '/api/v1/services/shop/web', await jwt(keys.privateKey))).status,
    ).toBe(200);
  });

  it.each([
    ['a wrong audience', () => jwt(keys.privateKey, { audience: 'someone-else' }), /aud/],
    ['a wrong signature', () => jwt(other.privateKey), /signature/],
    [
      'an expired token',
      () => jwt(keys.privateKey, { expires: Math.floor(Date.now() / 1000) - 3600 }),
      /exp/,
    ],
    [
      'alg: none',
      () => {
        const t = new UnsecuredJWT({ groups: ['shop-team'] })
          .setSubject('bob')
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .encode();
        sent.add(t);
        return Promise.resolve(t);
      },
      /./,
    ],
  ])(
    'refuses a JWT with %s (401, on REST, discovery and the event stream)',
    async (_what, make, why) => {
      const token = await make();
      const rest = await call('GET', '/api/v1/services/shop/web', token);
      expect(rest.status).toBe(401);
      expect(rest.body.error.message).toMatch(why);
      expect((await call('GET', '/api/v1/discover/shop/web', token)).status).toBe(401);
      expect((await register(token, 'web')).status).toBe(401);
      await expect(subscribe(token)).rejects.toThrow(/401/);
    },
  );

  it('does not let a JWT claim reserved groups or a ServiceAccount name', async () => {
    const claimed = await jwt(keys.privateKey, { groups: ['system:masters', 'maxine:sidecars'] });
    // Reserved groups are dropped: bob keeps no right at all.
    expect((await call('GET', '/api/v1/services/shop/web', claimed)).status).toBe(403);
    const posing = await jwt(keys.privateKey, { sub: 'system:serviceaccount:shop:web' });
    expect((await call('GET', '/api/v1/services/shop/web', posing)).status).toBe(401);
  });
});

describe('ACLs', () => {
  it('refuses a register right nobody granted, naming the default', async () => {
    const res = await register(TOKENS.alice, 'web');
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: 'FORBIDDEN', details: { decidedBy: 'default' } });
    expect(res.body.error.message).toMatch(
      /no ACL rule covers register on shop\/web for User token:alice/,
    );
  });

  it('lets a deny rule win over a broader allow', async () => {
    // carol may write (so register) shop/*, but a deny rule takes shop/web away.
    expect((await register(TOKENS.carol, 'orders')).status).toBe(201);
    const denied = await register(TOKENS.carol, 'web');
    expect(denied.status).toBe(403);
    expect(denied.body.error.details).toMatchObject({ decidedBy: 'shop/deployers', rule: 1 });
  });

  it('filters the catalogue to what the caller may read', async () => {
    const alice = await call('GET', '/api/v1/services', TOKENS.alice);
    const names = (alice.body.services as { namespace: string; name: string }[]).map(
      (s) => `${s.namespace}/${s.name}`,
    );
    expect(names).toEqual(expect.arrayContaining(['shop/web', 'shop/orders']));
    expect(names).not.toContain('bank/ledger');
    expect((await call('GET', '/api/v1/services/bank/ledger', TOKENS.alice)).status).toBe(403);
    const root = await call('GET', '/api/v1/services', TOKENS.root);
    expect(root.body.services.map((s: { name: string }) => s.name)).toContain('ledger');
    const resources = await call('GET', '/api/v1/resources', TOKENS.alice);
    const kinds = (resources.body.items as { kind: string; namespace: string }[]).map(
      (r) => `${r.kind} ${r.namespace}`,
    );
    expect(kinds).not.toContain('MaxineACL shop');
    expect(kinds).not.toContain('MaxineService bank');
  });

  it('lets only the registrant side renew or remove an instance', async () => {
    const created = await register(TOKENS.root, 'web');
    const id = created.body.instance.id as string;
    const beat = await call('PUT', `/api/v1/instances/${id}/heartbeat`, TOKENS.alice);
    expect(beat.status).toBe(403);
    const removal = await call('DELETE', `/api/v1/instances/${id}`, TOKENS.alice);
    expect(removal.status).toBe(403);
    expect(op.operator.registry.getInstance(id)).toBeDefined();
    expect((await call('DELETE', `/api/v1/instances/${id}`, TOKENS.root)).status).toBe(204);
  });
});

describe('intentions', () => {
  it('refuses discovery by a denied source, naming the intention, and allows an allowed one', async () => {
    await register(TOKENS.root, 'orders');
    const denied = await call('GET', '/api/v1/discover/shop/orders', TOKENS.root, {
      headers: { 'x-maxine-source': 'shop/cart' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.details).toMatchObject({
      decidedBy: { intention: 'shop/orders', source: 'shop/*' },
      source: 'shop/cart',
    });
    const allowed = await call('GET', '/api/v1/discover/shop/orders', TOKENS.root, {
      headers: { 'x-maxine-source': 'shop/web' },
    });
    expect(allowed.status).toBe(200);
  });

  it('answers "may A call B" with the deciding permission', async () => {
    const q = (s: string) => call('GET', `/api/v1/intentions/check?${s}`, TOKENS.alice);
    const get = await q('source=shop/web&destination=shop/orders&method=GET&path=/api/orders/7');
    expect(get.body).toMatchObject({
      allowed: true,
      decidedBy: { intention: 'shop/orders', source: 'shop/web', permission: 0 },
    });
    const post = await q('source=shop/web&destination=shop/orders&method=POST&path=/api/orders');
    expect(post.body).toMatchObject({ allowed: false, decidedBy: { permission: 1 } });
    const other = await q('source=shop/cart&destination=shop/orders');
    expect(other.body).toMatchObject({ allowed: false, decidedBy: { source: 'shop/*' } });
    expect((await q('source=shop/web&destination=bank/ledger')).status).toBe(403);
    expect((await q('source=shop/web')).status).toBe(400);
  });
});

describe('blocked services', () => {
  it('refuses registration with the reason', async () => {
    const res = await register(TOKENS.root, 'legacy');
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: 'SERVICE_BLOCKED' });
    expect(res.body.error.message).toMatch(/being retired, see TICKET-42/);
  });

  it('announces a block and its end on the event stream', async () => {
    const sub = await subscribe(TOKENS.root, 'types=service_blocked,service_unblocked');
    await op.write(
      'blocked.yaml',
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: blockme, namespace: shop }\nspec:\n  blocked: { discovery: true, reason: incident 7 }\n',
    );
    await eventually(
      () => Promise.resolve(sub.events.some((e) => e.type === 'service_blocked')),
      5000,
    );
    expect(sub.events.find((e) => e.type === 'service_blocked')).toMatchObject({
      service: { namespace: 'shop', name: 'blockme' },
      data: { discovery: true, reason: 'incident 7' },
    });
    const discover = await call('GET', '/api/v1/discover/shop/blockme', TOKENS.root);
    expect(discover.status).toBe(403);
    expect(discover.body.error.message).toMatch(/incident 7/);
    await op.write(
      'blocked.yaml',
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: blockme, namespace: shop }\nspec: {}\n',
    );
    await eventually(
      () => Promise.resolve(sub.events.some((e) => e.type === 'service_unblocked')),
      5000,
    );
    sub.close();
  });
});

interface Subscription {
  events: MaxineEvent[];
  close(): void;
}

function subscribe(token: string, query = ''): Promise<Subscription> {
  const ws = new WebSocket(`${op.wsUrl}/api/v1/events?${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const events: MaxineEvent[] = [];
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as MaxineEvent));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ events, close: () => ws.close() }));
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`handshake refused: ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

describe('event stream', () => {
  it('shows a subscriber only the services it may read', async () => {
    const alice = await subscribe(TOKENS.alice, 'snapshot=true');
    const root = await subscribe(TOKENS.root);
    await eventually(
      () => Promise.resolve(alice.events.some((e) => e.type === 'resync_end')),
      5000,
    );
    const snapshot = alice.events
      .filter((e) => e.type === 'resync_chunk')
      .flatMap((e) => (e.data as { services: { namespace: string }[] }).services);
    expect(snapshot.map((s) => s.namespace)).not.toContain('bank');
    expect(snapshot.length).toBeGreaterThan(0);
    await register(TOKENS.root, 'ledger', 'bank');
    await register(TOKENS.root, 'web', 'shop');
    await eventually(
      () => Promise.resolve(root.events.filter((e) => e.type === 'service_registered').length >= 2),
      5000,
    );
    await eventually(
      () => Promise.resolve(alice.events.some((e) => e.service?.name === 'web')),
      5000,
    );
    expect(alice.events.some((e) => e.service?.namespace === 'bank')).toBe(false);
    expect(root.events.some((e) => e.service?.namespace === 'bank')).toBe(true);
    alice.close();
    root.close();
  });
});

describe('rate limits', () => {
  it("limits each caller's discovery of a service to its spec.rateLimit, then recovers", async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 6; i++) {
      const res = await call('GET', '/api/v1/discover/shop/orders', TOKENS.alice);
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Another caller has a bucket of its own.
    expect((await call('GET', '/api/v1/discover/shop/orders', TOKENS.root)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call('GET', '/api/v1/discover/shop/orders', TOKENS.alice)).status).toBe(200);
  });

  it('limits each identity across endpoints and counts it in metrics', async () => {
    let limited: { status: number; body: any; headers: Headers } | undefined;
    for (let i = 0; i < 60 && limited === undefined; i++) {
      const res = await call('GET', '/api/v1/services/shop/web', TOKENS.flood);
      if (res.status === 429) limited = res;
    }
    expect(limited?.body.error).toMatchObject({
      code: 'RATE_LIMITED',
      details: { scope: 'identity' },
    });
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const metrics = (await call('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/maxine_rate_limited_total\{scope="identity"\} [1-9]/);
    expect(metrics).toMatch(/maxine_rate_limited_total\{scope="service"\} [1-9]/);
    expect(metrics).toMatch(
      /maxine_rate_limit_requests_per_second\{scope="service",service="shop\/orders"\} 2/,
    );
    expect(metrics).toMatch(/maxine_access_denied_total\{reason="acl"\} [1-9]/);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await call('GET', '/api/v1/services/shop/web', TOKENS.flood)).status).toBe(200);
  });
});

describe('audit log', () => {
  it('is exported to administrators only', async () => {
    const res = await call('GET', '/api/v1/audit', TOKENS.alice);
    expect(res.status).toBe(403);
  });

  it('holds every decision above and no token', async () => {
    const lines = await eventually(async () => {
      const res = await call('GET', '/api/v1/audit', TOKENS.root);
      const records = (res.body as string)
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, string>);
      return records.some((r) => r.reason?.includes('TICKET-42')) ? records : false;
    }, 5000);
    const has = (match: Partial<Record<string, string | RegExp>>) =>
      lines.some((r) =>
        Object.entries(match).every(([k, v]) =>
          v instanceof RegExp ? v.test(r[k] ?? '') : r[k] === v,
        ),
      );
    expect(has({ outcome: 'unauthenticated', reason: /aud/ })).toBe(true);
    expect(has({ outcome: 'unauthenticated', reason: /signature/ })).toBe(true);
    expect(has({ outcome: 'denied', who: 'User token:alice', action: 'register' })).toBe(true);
    expect(has({ outcome: 'denied', action: 'discover', reason: /intention|shop\/\*/ })).toBe(true);
    expect(has({ outcome: 'denied', action: 'register', reason: /TICKET-42/ })).toBe(true);
    expect(has({ outcome: 'denied', reason: /exceeded/ })).toBe(true);
    expect(has({ outcome: 'allowed', who: 'User token:carol', action: 'register' })).toBe(true);
    expect(has({ outcome: 'allowed', who: 'User token:root', action: 'deregister' })).toBe(true);
    expect(lines.every((r) => typeof r.reqId === 'string' && typeof r.time === 'string')).toBe(
      true,
    );
    // A time range narrows the export.
    const future = await call('GET', '/api/v1/audit?from=2999-01-01T00:00:00Z', TOKENS.root);
    expect(future.status).toBe(200);
    expect(future.body ?? '').toBe('');
    // No token in the audit files or in the operator's log.
    const dir = join(work, 'audit');
    const files = await readdir(dir);
    const text =
      (await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')))).join('') +
      JSON.stringify(op.logs);
    for (const token of sent) expect(text.includes(token)).toBe(false);
  });
});
