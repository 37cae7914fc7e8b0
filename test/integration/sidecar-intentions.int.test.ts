/**
 * Intentions reach the caller's sidecar (issue 14): a real operator (port 0, tokens required,
 * ACL default deny, intention default deny) streams to a real sidecar mirror the intentions
 * in force that decide its calls — only those whose destination its principal may read, and
 * none that namespace confinement leaves without effect — and an intention created, changed
 * or deleted in the operator changes the call authorizer's decision without a restart.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/logger.js';
import type { IntentionSpec } from '../../common/resources.js';
import { RegistryMirror } from '../../sidecar/mirror.js';
import { IntentionAuthorizer } from '../../sidecar/proxy/authorizer.js';
import type { OutboundRequest } from '../../sidecar/proxy/hooks.js';
import { lockedDown, writeTokens } from '../helpers/auth.js';
import { eventually, logSink, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const SIDECAR_TOKEN = 'web-sidecar-token-0123456789';

const resource = (kind: string, namespace: string, name: string, spec: unknown): string =>
  JSON.stringify({ apiVersion: 'maxine.io/v1alpha1', kind, metadata: { namespace, name }, spec });

const service = (namespace: string, name: string): string =>
  resource('MaxineService', namespace, name, { selector: { app: name } });

const intention = (namespace: string, name: string, spec: IntentionSpec): string =>
  resource('MaxineIntention', namespace, name, spec);

/** What the sidecar of shop/web may read: its namespace and the one service it calls. */
const sidecarAcl = resource('MaxineACL', 'maxine-system', 'web-sidecar', {
  subjects: [{ kind: 'User', name: 'web-sidecar' }],
  rules: [{ services: ['shop/*', 'pay/api'], verbs: ['read', 'discover'] }],
});

const files: Record<string, string> = {
  'services.yaml': ['shop/web', 'shop/orders', 'pay/api', 'pay/secret', 'hr/payroll']
    .map((ref) => service(...(ref.split('/') as [string, string])))
    .join('\n---\n'),
  'acl.yaml': sidecarAcl,
  // Visible: read on the destination.
  'i-orders.yaml': intention('shop', 'orders-policy', {
    destination: { name: 'orders' },
    sources: [{ name: 'web', action: 'allow' }],
  }),
  'i-api.yaml': intention('pay', 'api-policy', {
    destination: { name: 'api' },
    sources: [{ namespace: 'shop', name: 'web', action: 'deny' }],
  }),
  // Visible: a wildcard destination covering a service the sidecar may read (pay/api),
  // though it may not read `pay/*` as such.
  'i-pay-all.yaml': intention('pay', 'pay-all', {
    destination: { name: '*' },
    sources: [{ namespace: 'shop', name: 'web', action: 'allow' }],
  }),
  // Visible: from the policy namespace, reaching into another namespace (any caller).
  'i-global.yaml': intention('maxine-system', 'global', {
    destination: { namespace: 'pay', name: '*' },
    sources: [{ namespace: '*', name: '*', action: 'deny' }],
  }),
  // Not visible: destinations the sidecar may not read.
  'i-secret.yaml': intention('pay', 'secret-policy', {
    destination: { name: 'secret' },
    sources: [{ namespace: 'shop', name: 'web', action: 'allow' }],
  }),
  'i-payroll.yaml': intention('hr', 'payroll-policy', {
    destination: { name: 'payroll' },
    sources: [{ namespace: 'shop', name: 'web', action: 'allow' }],
  }),
  // Not in force: an ordinary namespace naming another namespace's destination.
  'i-confined.yaml': intention('shop', 'confined', {
    destination: { namespace: 'pay', name: 'api' },
    sources: [{ name: 'web', action: 'allow' }],
  }),
};

let op: TestOperator;
let work: string;
let mirror: RegistryMirror | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-intentions-'));
  const staticTokensFile = await writeTokens(work, {
    root: 'root-token-0123456789',
    'web-sidecar': SIDECAR_TOKEN,
  });
  op = await startOperator({
    files,
    config: { ...lockedDown(staticTokensFile), intentionDefault: 'deny' },
  });
});
afterEach(() => {
  mirror?.stop();
  mirror = undefined;
});
afterAll(async () => {
  await op.stop();
  await rm(work, { recursive: true, force: true });
});

function startMirror(scope?: string[]): RegistryMirror {
  const { sink } = logSink();
  mirror = new RegistryMirror({
    operatorUrl: op.url,
    logger: createLogger('warn', sink, 'sidecar'),
    token: () => Promise.resolve(SIDECAR_TOKEN),
    ...(scope && { scope: () => scope }),
  });
  mirror.start();
  return mirror;
}

const held = (m: RegistryMirror): string[] =>
  [...m.state.intentions()].map((i) => `${i.namespace}/${i.name}`).sort();

const call = (destination: string, method = 'GET', path = '/'): OutboundRequest => {
  const [namespace, name] = destination.split('/') as [string, string];
  return { destination: { namespace, name }, method, path, headers: {} };
};

describe('intentions on the event stream, as a sidecar sees them', () => {
  it('a snapshot carries the default and exactly the visible intentions in force', async () => {
    const m = startMirror();
    await m.synchronised();
    expect(m.state.intentionDefault).toBe('deny');
    expect(held(m)).toEqual([
      'maxine-system/global',
      'pay/api-policy',
      'pay/pay-all',
      'shop/orders-policy',
    ]);
    // The services it may not read are not in its copy either.
    expect(m.state.has('pay', 'secret')).toBe(false);
    expect(m.state.has('pay', 'api')).toBe(true);
  });

  it('changes to intentions it may not see never reach it; visible ones do, in order', async () => {
    const m = startMirror(['shop/*', 'pay/api']);
    await m.synchronised();
    await op.write(
      'i-payroll.yaml',
      intention('hr', 'payroll-policy', {
        destination: { name: 'payroll' },
        sources: [{ namespace: 'shop', name: 'web', action: 'deny' }],
      }),
    );
    await op.write(
      'i-secret.yaml',
      intention('pay', 'secret-policy', {
        destination: { name: 'secret' },
        sources: [{ namespace: 'shop', name: 'web', action: 'deny' }],
      }),
    );
    // A visible change written last: once it arrived, the others would have arrived before it.
    await op.write(
      'i-marker.yaml',
      intention('maxine-system', 'marker', {
        destination: { namespace: 'shop', name: 'web' },
        sources: [{ namespace: 'shop', name: 'orders', action: 'allow' }],
      }),
    );
    await eventually(
      () => Promise.resolve(held(m).includes('maxine-system/marker')),
      5000,
      'the visible intention',
    );
    expect(held(m)).toEqual([
      'maxine-system/global',
      'maxine-system/marker',
      'pay/api-policy',
      'pay/pay-all',
      'shop/orders-policy',
    ]);
    // The operator announced them, with their specs, to whoever may see them.
    const log = op.operator.events.since(op.operator.events.firstSeq - 1) ?? [];
    const announced = log.flatMap((e) =>
      e.type === 'intention_changed' && e.data.spec !== undefined ? [e.data.intention.name] : [],
    );
    expect(announced).toEqual(expect.arrayContaining(['payroll-policy', 'secret-policy']));
    // Moved to a destination it may neither read nor watch: it learns the intention left.
    await op.write(
      'i-marker.yaml',
      intention('maxine-system', 'marker', {
        destination: { namespace: 'pay', name: 'secret' },
        sources: [{ namespace: 'shop', name: 'orders', action: 'allow' }],
      }),
    );
    await eventually(
      () => Promise.resolve(!held(m).includes('maxine-system/marker')),
      5000,
      'the move',
    );
    await rm(join(op.dir, 'i-marker.yaml'));
  });

  it('an intention created, changed and deleted in the operator decides the next call', async () => {
    const m = startMirror(['shop/*', 'pay/api']);
    await m.synchronised();
    const authorizer = new IntentionAuthorizer({
      caller: { namespace: 'shop', name: 'web' },
      policy: m.state,
    });
    const decided = (destination: string, method?: string, path?: string) => {
      const d = authorizer.authorize(call(destination, method, path));
      const by = d.intention && `${d.intention.namespace}/${d.intention.name}`;
      return `${d.allowed ? 'allow' : 'deny'} by ${by ?? 'default'}`;
    };
    const becomes = (expected: string, ...args: [string, string?, string?]) =>
      eventually(() => Promise.resolve(decided(...args) === expected), 5000, expected);

    expect(decided('shop/orders')).toBe('allow by shop/orders-policy');
    // Exact destination beats the pay/* allow.
    expect(decided('pay/api')).toBe('deny by pay/api-policy');

    // Changed to L7 permissions: reads allowed, the rest falls to the default (deny).
    await op.write(
      'i-orders.yaml',
      intention('shop', 'orders-policy', {
        destination: { name: 'orders' },
        sources: [
          {
            name: 'web',
            permissions: [{ action: 'allow', http: { pathPrefix: '/orders', methods: ['GET'] } }],
          },
        ],
      }),
    );
    await becomes('deny by default', 'shop/orders', 'DELETE', '/orders/1');
    expect(decided('shop/orders', 'GET', '/orders/1')).toBe('allow by shop/orders-policy');

    // Deleted: the wildcard intention decides, then (deleted too) the cluster-wide one.
    await rm(join(op.dir, 'i-api.yaml'));
    await becomes('allow by pay/pay-all', 'pay/api');
    await rm(join(op.dir, 'i-pay-all.yaml'));
    await becomes('deny by maxine-system/global', 'pay/api');

    // Created: a new exact intention allows again.
    await op.write(
      'i-api-new.yaml',
      intention('pay', 'api-new', {
        destination: { name: 'api' },
        sources: [{ namespace: 'shop', name: 'web', action: 'allow' }],
      }),
    );
    await becomes('allow by pay/api-new', 'pay/api');
    // The refusal names what decided.
    await rm(join(op.dir, 'i-api-new.yaml'));
    await becomes('deny by maxine-system/global', 'pay/api');
    const refusal = authorizer.authorize(call('pay/api'));
    expect(refusal).toMatchObject({
      allowed: false,
      reason: expect.stringContaining('intention maxine-system/global'),
    });
  });
});
