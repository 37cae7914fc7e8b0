import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { MaxineError } from '../../common/errors.js';
import type { ServiceRef } from '../../common/policy/acl.js';
import type { Authenticator } from '../auth/authenticator.js';
import { serviceAccountPrincipal, userPrincipal } from '../auth/authenticator.js';
import type { Principal } from '../auth/authenticator.js';
import { createLogger } from '../../common/logger.js';
import { AccessControl } from './access.js';
import type { AccessOptions, Caller } from './access.js';
import type { AuditEntry } from '../telemetry/audit.js';
import { PolicyStore } from './store.js';

const ORDERS: ServiceRef = { namespace: 'shop', name: 'orders' };
const WEB: ServiceRef = { namespace: 'shop', name: 'web' };
const CART: ServiceRef = { namespace: 'shop', name: 'cart' };
const principal = userPrincipal({ kind: 'User', name: 'ci', groups: [] }, { kind: 'token' });

/** AccessControl with ACLs open, intentions: web → orders allowed, cart → orders denied. */
function accessWith(
  known: readonly ServiceRef[],
  intentionDefault: 'allow' | 'deny',
  more: Partial<AccessOptions> = {},
) {
  const store = new PolicyStore(() => undefined);
  store.setIntention('shop', 'orders', {
    destination: { name: 'orders' },
    sources: [
      { name: 'web', action: 'allow' },
      { name: 'cart', action: 'deny' },
    ],
  });
  return new AccessControl({
    authenticator: {
      principal: () => principal,
      anonymousAllowed: false,
    } as unknown as Authenticator,
    store,
    aclDefault: 'allow',
    intentionDefault,
    policyNamespaces: ['maxine-system'],
    bootstrapAdmins: [],
    sidecarReadAll: false,
    sourcesOf: () => known,
    serviceLimit: () => undefined,
    logger: createLogger('silent', new Writable({ write: (_c, _e, done) => done() })),
    ...more,
  });
}

/** A caller as the policy layer sees it: plain data, no HTTP request. */
function callerOf(who: Principal, source?: string): Caller {
  return {
    principal: who,
    requestId: 'req-1',
    address: '10.0.0.7',
    ...(source !== undefined && { source }),
  };
}

function outcome(access: AccessControl, source?: string, caller: Principal = principal): string {
  try {
    access.discover(callerOf(caller, source), ORDERS);
    return 'allowed';
  } catch (err) {
    if (!(err instanceof MaxineError)) throw err;
    return err.code;
  }
}

describe('the source of a discovery', () => {
  // known sources of the caller, x-maxine-source, intention default → outcome
  it.each<[string, readonly ServiceRef[], string | undefined, 'allow' | 'deny', string]>([
    ['known, no header', [WEB], undefined, 'deny', 'allowed'],
    ['known, naming itself', [WEB], 'shop/web', 'deny', 'allowed'],
    ['known, naming another (allowed) service', [CART], 'shop/web', 'deny', 'SOURCE_MISMATCH'],
    ['known, naming another service, default allow', [WEB], 'shop/pay', 'allow', 'SOURCE_MISMATCH'],
    ['known and denied, no header', [CART], undefined, 'allow', 'FORBIDDEN'],
    ['known twice, naming the allowed one', [CART, WEB], 'shop/web', 'deny', 'allowed'],
    ['unknown, naming an allowed source', [], 'shop/web', 'deny', 'allowed'],
    ['unknown, naming a denied source', [], 'shop/cart', 'allow', 'FORBIDDEN'],
    ['unknown, no source, default deny', [], undefined, 'deny', 'SOURCE_REQUIRED'],
    ['unknown, no source, default allow', [], undefined, 'allow', 'allowed'],
    ['unknown, a malformed header', [], 'web', 'deny', 'VALIDATION_FAILED'],
  ])('%s', (_what, known, header, intentionDefault, expected) => {
    expect(outcome(accessWith(known, intentionDefault), header)).toBe(expected);
  });

  // A ServiceAccount no service names: its namespace bounds what it may name.
  it.each<[string, string, string | undefined, 'allow' | 'deny', string]>([
    [
      'of another namespace, naming an allowed source',
      'evil',
      'shop/web',
      'deny',
      'SOURCE_MISMATCH',
    ],
    ['of another namespace, default allow', 'evil', 'shop/web', 'allow', 'SOURCE_MISMATCH'],
    ['of the namespace, naming an allowed source', 'shop', 'shop/web', 'deny', 'allowed'],
    ['of another namespace, no source, default deny', 'evil', undefined, 'deny', 'SOURCE_REQUIRED'],
  ])('a ServiceAccount %s', (_what, namespace, header, intentionDefault, expected) => {
    const sa = serviceAccountPrincipal({ namespace, serviceAccount: 'app' });
    expect(outcome(accessWith([], intentionDefault), header, sa)).toBe(expected);
  });

  it('says a source identity is required, and how to give one', () => {
    expect(() => accessWith([], 'deny').discover(callerOf(principal), ORDERS)).toThrow(
      /A source identity is required.*x-maxine-source/,
    );
  });
});

/** The code of what `work` throws, or `allowed`. */
function codeOf(work: () => unknown): string {
  try {
    work();
    return 'allowed';
  } catch (err) {
    if (!(err instanceof MaxineError)) throw err;
    return err.code;
  }
}

describe('AccessControl without a transport', () => {
  it('audits a refusal with the caller’s request id and address', () => {
    const audit: AuditEntry[] = [];
    const access = accessWith([], 'allow', { aclDefault: 'deny', audit: (e) => audit.push(e) });
    expect(codeOf(() => access.authorize(callerOf(principal), 'read', ORDERS))).toBe('FORBIDDEN');
    expect(audit).toEqual([
      expect.objectContaining({
        who: principal.who,
        action: 'read',
        object: 'service shop/orders',
        outcome: 'denied',
        reqId: 'req-1',
        address: '10.0.0.7',
      }),
    ]);
  });

  it('audits an allowed change with the caller’s origin', () => {
    const audit: AuditEntry[] = [];
    const access = accessWith([], 'allow', { audit: (e) => audit.push(e) });
    access.allowed(callerOf(principal), 'register', 'instance shop.orders-0');
    expect(audit).toEqual([
      {
        who: principal.who,
        action: 'register',
        object: 'instance shop.orders-0',
        outcome: 'allowed',
        reqId: 'req-1',
        address: '10.0.0.7',
      },
    ]);
  });

  it('audits a failed authentication with the origin it was given', () => {
    const audit: AuditEntry[] = [];
    const access = accessWith([], 'allow', {
      authenticator: {
        principal: () => {
          throw new MaxineError('UNAUTHENTICATED', 'token expired');
        },
        anonymousAllowed: false,
      } as unknown as Authenticator,
      audit: (e) => audit.push(e),
    });
    const origin = { requestId: 'req-9', address: '192.0.2.1' };
    expect(codeOf(() => access.principal({} as never, 'discover', origin))).toBe('UNAUTHENTICATED');
    expect(audit).toEqual([
      {
        who: 'unknown',
        action: 'discover',
        outcome: 'unauthenticated',
        reason: 'token expired',
        reqId: 'req-9',
        address: '192.0.2.1',
      },
    ]);
  });

  it('limits an identity per principal and audits the refusal with its origin', () => {
    const audit: AuditEntry[] = [];
    const access = accessWith([], 'allow', {
      identityLimit: { requestsPerSecond: 1, burst: 1 },
      now: () => 1_000,
      audit: (e) => audit.push(e),
    });
    const origin = { requestId: 'req-2', address: '10.0.0.8' };
    expect(access.principal({} as never, 'discover', origin)).toBe(principal);
    expect(codeOf(() => access.principal({} as never, 'discover', origin))).toBe('RATE_LIMITED');
    expect(audit).toEqual([
      expect.objectContaining({ outcome: 'denied', reqId: 'req-2', address: '10.0.0.8' }),
    ]);
  });

  // own pod?, ACL default, an explicit ACL deny of register on shop/orders? → outcome
  it.each<[boolean, 'allow' | 'deny', boolean, string]>([
    [true, 'deny', false, 'allowed'],
    [true, 'deny', true, 'FORBIDDEN'],
    [true, 'allow', true, 'FORBIDDEN'],
    [false, 'deny', false, 'FORBIDDEN'],
    [false, 'allow', false, 'allowed'],
    [false, 'allow', true, 'FORBIDDEN'],
  ])(
    'a registration (own pod %s, ACL default %s, explicit deny %s) is %s',
    (ownPod, aclDefault, explicitDeny, expected) => {
      const store = new PolicyStore(() => undefined);
      if (explicitDeny) {
        store.setAcl('shop', 'no-orders', {
          subjects: [{ kind: 'User', name: 'ci' }],
          rules: [{ services: ['shop/orders'], verbs: ['register'], effect: 'deny' }],
        });
      }
      const access = accessWith([], 'allow', { aclDefault, store });
      expect(codeOf(() => access.authorizeRegistration(callerOf(principal), ORDERS, ownPod))).toBe(
        expected,
      );
    },
  );
});

describe('which intentions a principal may see (mayViewIntention)', () => {
  const store = new PolicyStore(() => undefined);
  store.setAcl('maxine-system', 'readers', {
    subjects: [{ kind: 'User', name: 'ci' }],
    rules: [
      { services: ['shop/orders', 'pay/*'], verbs: ['read'], effect: 'allow' },
      { services: ['pay/secret'], verbs: ['read'], effect: 'deny' },
    ],
  });
  const access = accessWith([], 'allow', { store, aclDefault: 'deny' });
  const registry = [
    { namespace: 'shop', name: 'orders' },
    { namespace: 'shop', name: 'web' },
    { namespace: 'hr', name: 'payroll' },
  ];
  it.each([
    ['an exact destination it may read', 'shop', 'orders', true],
    ['an exact destination it may not read', 'shop', 'web', false],
    ['an exact destination denied to it', 'pay', 'secret', false],
    ['a wildcard destination it may read as a pattern', 'pay', '*', true],
    ['a wildcard destination covering a service it may read', 'shop', '*', true],
    ['a wildcard destination covering none it may read', 'hr', '*', false],
    ['a wildcard destination over an empty namespace', 'empty', '*', false],
  ])('%s', (_name, namespace, name, expected) => {
    expect(access.mayViewIntention(principal, { namespace, name }, () => registry)).toBe(expected);
  });
});

describe('remembered discoveries (issue 17)', () => {
  /** ACLs default deny, one ACL granting `ci` discover on shop/*, intentions as above. */
  function secured(audit: AuditEntry[] = [], more: Partial<AccessOptions> = {}) {
    const store = new PolicyStore(() => undefined);
    store.setIntention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', action: 'allow' }],
    });
    store.setAcl('shop', 'ci', {
      subjects: [{ kind: 'User', name: 'token:ci' }],
      rules: [{ services: ['shop/*'], verbs: ['discover'], effect: 'allow' }],
    });
    const access = accessWith([], 'deny', {
      store,
      aclDefault: 'deny',
      audit: (e) => audit.push(e),
      ...more,
    });
    return { access, store };
  }

  it('is remembered once allowed, and a changed ACL decides the very next request', () => {
    const { access, store } = secured();
    expect(outcome(access, 'shop/web')).toBe('allowed');
    expect(access.discoveryCacheSize).toBe(1);
    expect(outcome(access, 'shop/web')).toBe('allowed');
    store.setAcl('shop', 'ci', {
      subjects: [{ kind: 'User', name: 'token:ci' }],
      rules: [{ services: ['shop/*'], verbs: ['discover'], effect: 'deny' }],
    });
    expect(outcome(access, 'shop/web')).toBe('FORBIDDEN');
    expect(access.discoveryCacheSize).toBe(0);
    store.deleteAcl('shop', 'ci');
    expect(outcome(access, 'shop/web')).toBe('FORBIDDEN'); // default deny
  });

  it('is forgotten when an intention changes', () => {
    const { access, store } = secured();
    expect(outcome(access, 'shop/web')).toBe('allowed');
    store.setIntention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', action: 'deny' }],
    });
    expect(outcome(access, 'shop/web')).toBe('FORBIDDEN');
    store.deleteIntention('shop', 'orders');
    expect(outcome(access, 'shop/web')).toBe('FORBIDDEN'); // intention default deny
  });

  it('never remembers a refusal: each one is decided and audited again', () => {
    const audit: AuditEntry[] = [];
    const { access } = secured(audit);
    for (let i = 0; i < 3; i++) expect(outcome(access, 'shop/cart')).toBe('FORBIDDEN');
    expect(access.discoveryCacheSize).toBe(0);
    expect(audit.filter((e) => e.outcome === 'denied')).toHaveLength(3);
  });

  it('keys by source header: an allowed one does not let another through', () => {
    const { access } = secured();
    expect(outcome(access, 'shop/web')).toBe('allowed');
    expect(outcome(access, 'shop/cart')).toBe('FORBIDDEN');
    expect(outcome(access, undefined)).toBe('SOURCE_REQUIRED');
  });

  it('follows a new answer of sourcesOf (a pod relabelled)', () => {
    let known: readonly ServiceRef[] = [WEB];
    const { access } = secured([], { sourcesOf: () => known });
    expect(outcome(access, undefined)).toBe('allowed');
    known = [CART];
    expect(outcome(access, undefined)).toBe('FORBIDDEN');
  });

  it('is bounded, and says when it overflowed', () => {
    let overflows = 0;
    const { access } = secured([], {
      discoveryCacheEntries: 2,
      intentionDefault: 'allow',
      metrics: {
        denied: () => undefined,
        rateLimited: () => undefined,
        discoveryCacheOverflow: () => void overflows++,
      },
    });
    for (const name of ['orders', 'web', 'cart']) {
      access.discover(callerOf(principal, 'shop/web'), { namespace: 'shop', name });
    }
    expect(access.discoveryCacheSize).toBe(1);
    expect(overflows).toBe(1);
  });

  it('caches ACL decisions per principal, verb and service, bounded, and drops them on a change', () => {
    const { access, store } = secured([], { decisionCacheEntries: 2 });
    const bob = userPrincipal({ kind: 'User', name: 'bob', groups: [] }, { kind: 'token' });
    expect(access.decide(principal, 'discover', ORDERS).allowed).toBe(true);
    expect(access.decide(principal, 'discover', ORDERS)).toBe(
      access.decide(principal, 'discover', ORDERS),
    );
    expect(access.decide(bob, 'discover', ORDERS).allowed).toBe(false);
    expect(access.decisionCacheSize).toBe(2);
    access.decide(principal, 'read', ORDERS); // a third: the cache is emptied first
    expect(access.decisionCacheSize).toBe(1);
    store.setAcl('shop', 'bob', {
      subjects: [{ kind: 'User', name: 'token:bob' }],
      rules: [{ services: ['shop/orders'], verbs: ['discover'], effect: 'allow' }],
    });
    expect(access.decide(bob, 'discover', ORDERS).allowed).toBe(true);
    expect(access.decisionCacheSize).toBe(1);
  });

  it('takes the service rate limit on every request, remembered or not', () => {
    const { access } = secured([], {
      serviceLimit: () => ({ requestsPerSecond: 1, burst: 2 }),
      now: () => 1000,
    });
    expect(outcome(access, 'shop/web')).toBe('allowed');
    expect(outcome(access, 'shop/web')).toBe('allowed');
    expect(outcome(access, 'shop/web')).toBe('RATE_LIMITED');
  });
});

describe('allowed reads in the audit log (--audit-allowed-reads)', () => {
  // every (0 none, 1 all, N sampled), allowed reads → records written, their `sampled`
  it.each<[number, number, number, number | undefined]>([
    [0, 7, 0, undefined],
    [1, 3, 3, undefined],
    [3, 7, 2, 3],
    [3, 2, 0, undefined],
  ])(
    'one record every %d: %d reads → %d records (sampled %s)',
    (every, reads, records, sampled) => {
      const audit: AuditEntry[] = [];
      const access = accessWith([], 'allow', {
        audit: (e) => audit.push(e),
        auditAllowedReads: every,
      });
      for (let i = 0; i < reads; i++) access.allowedRead(callerOf(principal), 'discover', ORDERS);
      expect(audit).toHaveLength(records);
      for (const r of audit) {
        expect(r).toMatchObject({
          outcome: 'allowed',
          action: 'discover',
          object: 'service shop/orders',
        });
        expect(r.sampled).toBe(sampled);
      }
    },
  );

  it('records every refusal whatever the sampling', () => {
    const audit: AuditEntry[] = [];
    const access = accessWith([], 'allow', {
      audit: (e) => audit.push(e),
      auditAllowedReads: 1000,
    });
    for (let i = 0; i < 5; i++) expect(outcome(access, 'shop/cart')).toBe('FORBIDDEN');
    expect(audit.filter((e) => e.outcome === 'denied')).toHaveLength(5);
  });
});
