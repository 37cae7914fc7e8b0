/**
 * Findings of the hostile review on policy and identity (issue 12), each over real sockets:
 * the discovery cache key cannot be forged, instance endpoints do not reveal other tenants'
 * instances, static-token and JWT users do not share a name space, intentions hold callers to
 * their real identity, and an ACL deny takes away every verb it implies.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import { createLogger } from '../../common/logger.js';
import { instanceId } from '../../operator/registry/registry.js';
import { call, ISSUER, jwtIssuer, writeTokens, lockedDown } from '../helpers/auth.js';
import type { JwtIssuer } from '../helpers/auth.js';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

describe('discovery cache key', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({ config: { anonymous: true } });
  });
  afterAll(async () => {
    await op.stop();
  });

  it('a forged metadata value cannot poison the answer of another filter', async () => {
    const reg = await call(op.url, 'POST', '/api/v1/instances', {
      body: {
        service: 'web',
        namespace: 'shop',
        host: '10.0.0.1',
        port: 80,
        metadata: { a: 'x', b: 'y' },
      },
    });
    expect(reg.status).toBe(201);
    // The poisoning request: one metadata filter whose value carries the old separator.
    const forged = await call(op.url, 'GET', '/api/v1/discover/shop/web?meta.a=x%01b%3Dy');
    expect(forged.status).toBe(404);
    // Every other caller's honest query still finds the instance.
    const honest = await call(op.url, 'GET', '/api/v1/discover/shop/web?meta.a=x&meta.b=y');
    expect(honest.status).toBe(200);
    expect(honest.body.instance.metadata).toEqual({ a: 'x', b: 'y' });
    // And the other way round: the honest answer does not leak into the forged filter.
    expect((await call(op.url, 'GET', '/api/v1/discover/shop/web?meta.a=x%01b%3Dy')).status).toBe(
      404,
    );
  });

  it('nor on the sidecar, which shares the cache code', async () => {
    const sink = new Writable({ write: (_c, _e, done) => done() });
    const sidecar = createSidecar(
      loadSidecarConfig({
        // Written for a copy of the whole registry (the default scope is `pod` since issue 15).
        MAXINE_DISCOVERY_SCOPE: 'cluster',
        MAXINE_SERVICE: 'api',
        MAXINE_POD_NAMESPACE: 'shop',
        MAXINE_POD_NAME: 'api-0',
        MAXINE_POD_IP: '127.0.0.1',
        MAXINE_APP_PORT: '1',
        MAXINE_OPERATOR_URL: op.url,
        MAXINE_LISTEN_PORT: '0',
      }),
      createLogger('warn', sink, 'sidecar'),
    );
    const local = `http://127.0.0.1:${(await sidecar.start()).port}`;
    try {
      await sidecar.mirror.synchronised();
      const forged = await call(local, 'GET', '/v1/discover/shop/web?meta.a=x%01b%3Dy');
      expect(forged.status).toBe(404);
      const honest = await call(local, 'GET', '/v1/discover/shop/web?meta.a=x&meta.b=y');
      expect(honest.status).toBe(200);
      expect(honest.body.instance.metadata).toEqual({ a: 'x', b: 'y' });
    } finally {
      await sidecar.stop();
    }
  });
});

describe('with authentication and ACLs', () => {
  let op: TestOperator;
  let work: string;
  const TOKENS = {
    root: 'root-token-0123456789abcdef',
    sam: 'sam-token-0123456789abcdef', // writes shop/*
    rita: 'rita-token-0123456789abcdef', // reads shop/*
    eve: 'eve-token-0123456789abcdef', // writes bank/* only
    dan: 'dan-token-0123456789abcdef', // allow write and deny write on shop/*
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
metadata: { name: ledger, namespace: bank }
spec: {}
`,
    'acls.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: tenants, namespace: maxine-system }
spec:
  subjects: [{ kind: User, name: sam }]
  rules: [{ services: ['shop/*'], verbs: [write] }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: readers, namespace: maxine-system }
spec:
  subjects: [{ kind: User, name: rita }]
  rules: [{ services: ['shop/*'], verbs: [read] }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: bank, namespace: maxine-system }
spec:
  subjects: [{ kind: User, name: eve }]
  rules: [{ services: ['bank/*'], verbs: [write] }]
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: revoked, namespace: maxine-system }
spec:
  subjects: [{ kind: User, name: dan }]
  rules:
    - { services: ['shop/*'], verbs: [write] }
    - { services: ['shop/*'], verbs: [write], effect: deny }
`,
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'maxine-policy-'));
    const staticTokensFile = await writeTokens(work, TOKENS);
    op = await startOperator({
      files: RESOURCES,
      config: {
        ...lockedDown(staticTokensFile),
      },
    });
  });
  afterAll(async () => {
    await op.stop();
    await rm(work, { recursive: true, force: true });
  });

  const as = (user: keyof typeof TOKENS) => TOKENS[user];
  const registerAs = (
    user: keyof typeof TOKENS,
    body: { service: string; namespace: string; id?: string; port?: number },
  ) =>
    call(op.url, 'POST', '/api/v1/instances', {
      token: as(user),
      body: { host: '10.0.0.7', port: body.port ?? 8080, ttlSeconds: 3600, ...body },
    });

  describe('instance endpoints are no cross-namespace oracle', () => {
    let id: string;
    beforeAll(async () => {
      const reg = await registerAs('sam', { service: 'web', namespace: 'shop', id: 'web-a' });
      expect(reg.status).toBe(201);
      id = reg.body.instance.id;
    });

    const probes = (target: string): [string, string, string][] => [
      ['PUT', `/api/v1/instances/${target}/heartbeat`, 'heartbeat'],
      ['DELETE', `/api/v1/instances/${target}`, 'deregister'],
      ['GET', `/api/v1/instances/${target}`, 'read'],
    ];

    it.each(probes('{id}'))(
      '%s %s: a caller without a right on the service gets the 404 of an unknown id',
      async (method, path) => {
        const mine = await call(op.url, method, path.replace('{id}', id), { token: as('eve') });
        const none = await call(op.url, method, path.replace('{id}', 'no-such-id'), {
          token: as('eve'),
        });
        expect(none.status).toBe(404);
        expect(mine.status).toBe(404);
        expect(mine.body.error.code).toBe(none.body.error.code);
        expect(mine.body.error.message).toBe(none.body.error.message.replace('no-such-id', id));
        expect(JSON.stringify(mine.body)).not.toContain('shop');
        // and nothing changed
        const still = await call(op.url, 'GET', `/api/v1/instances/${id}`, { token: as('sam') });
        expect(still.status).toBe(200);
      },
    );

    it('a caller who may read the service still hears why it may not write (403)', async () => {
      const res = await call(op.url, 'PUT', `/api/v1/instances/${id}/heartbeat`, {
        token: as('rita'),
      });
      expect(res.status).toBe(403);
      expect(res.body.error.message).toMatch(/register on shop\/web/);
    });

    it('a registration naming another tenant’s instance id does not name its owner', async () => {
      const res = await registerAs('eve', { service: 'ledger', namespace: 'bank', id });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('INSTANCE_CONFLICT');
      expect(res.body.error.message).not.toContain('shop');
      // A caller who may know the owner hears it.
      const root = await registerAs('root', { service: 'ledger', namespace: 'bank', id });
      expect(root.status).toBe(409);
      expect(root.body.error.message).toContain('shop/web');
    });
  });

  it('another tenant’s computed id can be neither probed nor squatted', async () => {
    // sam's endpoint, registered without an id: its id is computable by anyone.
    const victim = await registerAs('sam', { service: 'web', namespace: 'shop', port: 8443 });
    expect(victim.status).toBe(201);
    const taken = victim.body.instance.id as string;
    const free = instanceId('shop', 'web', '10.0.0.7', 8444); // not registered (yet)
    const probe = (id: string) => registerAs('eve', { service: 'ledger', namespace: 'bank', id });
    const [onTaken, onFree] = [await probe(taken), await probe(free)];
    expect(onTaken.status).toBe(400);
    expect(onFree.status).toBe(400);
    expect(onTaken.body.error.code).toBe('VALIDATION_FAILED');
    expect(onTaken.body.error.message.replace(taken, '?')).toBe(
      onFree.body.error.message.replace(free, '?'),
    );
    // The owner registers that endpoint under its computed id, as always.
    const later = await registerAs('sam', { service: 'web', namespace: 'shop', port: 8444 });
    expect(later.status).toBe(201);
    expect(later.body.instance.id).toBe(free);
    // And may name its own computed id explicitly.
    const again = await registerAs('sam', {
      service: 'web',
      namespace: 'shop',
      port: 8444,
      id: free,
    });
    expect(again.status).toBe(200);
  });

  it.each([
    ['shop.web-7d9f-x2.web', 400], // a pod's instance id in another namespace
    ['bank.ledger-0.ledger', 201], // the form, in its own namespace
    ['ledger.primary', 201], // one dot: not the form
  ])('a pod-form id %s from bank answers %i', async (id, status) => {
    const res = await registerAs('eve', { service: 'ledger', namespace: 'bank', id });
    expect(res.status).toBe(status);
    if (status === 400) expect(res.body.error.message).toMatch(/pod's instance id/);
  });

  describe('an ACL deny takes away what its verb implies', () => {
    it.each([
      ['register', () => registerAs('dan', { service: 'web', namespace: 'shop', port: 9001 })],
      ['discover', () => call(op.url, 'GET', '/api/v1/discover/shop/web', { token: as('dan') })],
      ['read', () => call(op.url, 'GET', '/api/v1/services/shop/web', { token: as('dan') })],
    ])('deny [write] beside allow [write] refuses %s', async (verb, request) => {
      const res = await request();
      expect(res.status).toBe(403);
      expect(res.body.error.message).toContain(`denies ${verb} (implied by write)`);
    });
  });
});

describe('static-token and JWT users are different principals', () => {
  let op: TestOperator;
  let work: string;
  let issuer: JwtIssuer;
  const ROOT = 'ops-admin-token-0123456789abcdef';
  const jwt = (sub: string, groups: string[] = []) => issuer.sign({ sub, groups });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'maxine-identity-'));
    issuer = await jwtIssuer(work);
    const staticTokensFile = await writeTokens(work, { 'ops-admin': ROOT });
    op = await startOperator({
      files: {
        'services.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec: {}
`,
        'acls.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: jwt-readers, namespace: maxine-system }
spec:
  subjects: [{ kind: User, name: 'jwt:jen' }]
  rules: [{ services: ['shop/*'], verbs: [read] }]
`,
      },
      config: {
        anonymous: false,
        aclDefault: 'deny',
        bootstrapAdmins: ['User:ops-admin', 'User:jwt:oncall'],
        staticTokensFile,
        ...issuer.config,
        identityRateLimit: 1,
        identityRateBurst: 4,
      },
    });
  });
  afterAll(async () => {
    await op.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('a JWT whose sub is a static-token bootstrap admin gets no admin right', async () => {
    const posing = await jwt('ops-admin');
    const res = await call(op.url, 'GET', '/api/v1/services/shop/web', { token: posing });
    expect(res.status).toBe(403);
    expect(res.body.error.message).toContain(`for User jwt:${ISSUER}:ops-admin`);
    const admin = await call(op.url, 'GET', '/api/v1/services/shop/web', { token: ROOT });
    expect(admin.status).toBe(200);
  });

  it('a JWT user is named by a jwt: subject, in ACLs and --bootstrap-admins', async () => {
    const jen = await call(op.url, 'GET', '/api/v1/services/shop/web', { token: await jwt('jen') });
    expect(jen.status).toBe(200);
    const oncall = await call(op.url, 'GET', '/api/v1/services/shop/web', {
      token: await jwt('oncall'),
    });
    expect(oncall.status).toBe(200);
  });

  it('a JWT cannot name itself like another source', async () => {
    for (const sub of ['token:ops-admin', 'jwt:oncall']) {
      const res = await call(op.url, 'GET', '/api/v1/services/shop/web', { token: await jwt(sub) });
      expect(res.status).toBe(401);
    }
  });

  it('tokens of one user with different groups share one rate-limit budget', async () => {
    const tokens = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((g) => jwt('greedy', [g])));
    const statuses: number[] = [];
    for (let round = 0; round < 2; round++) {
      for (const token of tokens) {
        statuses.push((await call(op.url, 'GET', '/api/v1/services', { token })).status);
      }
    }
    // burst 4 at 1/s: ten requests in well under a second get at most 5 answers
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5);
    expect(statuses).toContain(429);
  });
});

describe('intentions with --intention-default deny', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({
      files: {
        'intentions.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders, namespace: shop }
spec:
  destination: { name: orders }
  sources: [{ name: web, action: allow }]
`,
      },
      config: { anonymous: true, intentionDefault: 'deny' },
    });
    const reg = await call(op.url, 'POST', '/api/v1/instances', {
      body: { service: 'orders', namespace: 'shop', host: '10.0.0.2', port: 80 },
    });
    expect(reg.status).toBe(201);
  });
  afterAll(async () => {
    await op.stop();
  });

  it.each(['GET', 'HEAD'])(
    '%s discovery without any source identity is refused, saying one is required',
    async (method) => {
      const res = await fetch(`${op.url}/api/v1/discover/shop/orders`, { method });
      expect(res.status).toBe(403);
      if (method === 'GET') {
        const body = (await res.json()) as any;
        expect(body.error.code).toBe('SOURCE_REQUIRED');
        expect(body.error.message).toMatch(/A source identity is required/);
      }
    },
  );

  it('a caller of unknown identity may still name its source', async () => {
    const allowed = await call(op.url, 'GET', '/api/v1/discover/shop/orders', {
      headers: { 'x-maxine-source': 'shop/web' },
    });
    expect(allowed.status).toBe(200);
    const denied = await call(op.url, 'GET', '/api/v1/discover/shop/orders', {
      headers: { 'x-maxine-source': 'shop/cart' },
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('FORBIDDEN');
  });
});

describe('user regexes run in linear time', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({
      files: {
        'intentions.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: files, namespace: shop }
spec:
  destination: { name: files }
  sources:
    - name: web
      permissions: [{ action: allow, http: { pathRegex: '/(a|a)*b' } }]
`,
      },
      config: { anonymous: true, intentionDefault: 'deny' },
    });
  });
  afterAll(async () => {
    await op.stop();
  });

  it('the intention check evaluates /(a|a)*b on a 2,048-character path and answers', async () => {
    // Node's backtracking RegExp took 2-3 s on a 28-character path; 2,048 would never end.
    const check = (path: string) =>
      call(
        op.url,
        'GET',
        `/api/v1/intentions/check?source=shop/web&destination=shop/files&path=${path}`,
      );
    const started = performance.now();
    const miss = await check('/' + 'a'.repeat(2047));
    const hit = await check('/' + 'a'.repeat(2046) + 'b');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(miss.status).toBe(200);
    expect(miss.body.allowed).toBe(false);
    expect(hit.body.allowed).toBe(true);
    // and the event loop is free: discovery answers at once
    expect((await call(op.url, 'GET', '/healthz')).status).toBe(200);
  });
});
