import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { MaxineError } from '../../common/errors.js';
import type { ServiceRef } from '../../common/policy/acl.js';
import type { Authenticator } from '../auth/authenticator.js';
import { serviceAccountPrincipal, userPrincipal } from '../auth/authenticator.js';
import type { Principal } from '../auth/authenticator.js';
import { createLogger } from '../../common/logger.js';
import { AccessControl } from './access.js';
import { PolicyStore } from './store.js';

const ORDERS: ServiceRef = { namespace: 'shop', name: 'orders' };
const WEB: ServiceRef = { namespace: 'shop', name: 'web' };
const CART: ServiceRef = { namespace: 'shop', name: 'cart' };
const principal = userPrincipal({ kind: 'User', name: 'ci', groups: [] }, { kind: 'token' });

/** AccessControl with ACLs open, intentions: web → orders allowed, cart → orders denied. */
function accessWith(known: readonly ServiceRef[], intentionDefault: 'allow' | 'deny') {
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
  });
}

function outcome(access: AccessControl, source?: string, caller: Principal = principal): string {
  const req = { headers: source === undefined ? {} : { 'x-maxine-source': source } };
  try {
    access.discover({ req: req as IncomingMessage, principal: caller }, ORDERS);
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
    expect(() =>
      accessWith([], 'deny').discover(
        { req: { headers: {} } as IncomingMessage, principal },
        ORDERS,
      ),
    ).toThrow(/A source identity is required.*x-maxine-source/);
  });
});
