/**
 * Every producer's events parse with the wire schema (common/wire.ts), losslessly: a scripted
 * scenario drives the reconciler (services, intentions, ACLs), the registry (registrations,
 * heartbeats, health changes, pods, sidecars, lease expiry) and the snapshot writer, and each
 * message, as the stream sends it, is parsed with `maxineEventSchema`.
 */
import { describe, expect, it } from '@jest/globals';
import { maxineResourceSchema } from '../../common/resources.js';
import {
  callReportSchema,
  EVENT_TYPES,
  maxineEventSchema,
  registerRequestSchema,
} from '../../common/wire.js';
import type { RegistryEventDraft } from '../../common/wire.js';
import { PolicyStore } from '../policy/store.js';
import { Reconciler } from '../reconciler.js';
import { ManualClock } from '../registry/clock.js';
import { Registry } from '../registry/registry.js';
import { planReport } from '../graph/reports.js';
import { EventLog } from './log.js';
import { snapshotMessages } from './snapshot.js';

function scenario(): { texts: string[]; registry: Registry; log: EventLog; clock: ManualClock } {
  const clock = new ManualClock(1_700_000_000_000);
  const log = new EventLog({ events: 10_000, bytes: 1e8 }, clock);
  const texts: string[] = [];
  log.subscribe((event) => texts.push(log.serialized(event)));
  const emit = (draft: Parameters<EventLog['append']>[0]): void => void log.append(draft);
  const registry = new Registry({
    clock,
    emit,
    allowUndeclared: true,
    defaultTtlSeconds: 10,
    defaultRemoveAfterSeconds: 20,
    massExpiryThreshold: 0.99,
    massExpiryMinInstances: 1000,
  });
  const reconciler = new Reconciler(registry, new PolicyStore(emit), clock);
  const apply = (resource: unknown): void => {
    reconciler.upsert(maxineResourceSchema.parse(resource), 'test');
  };
  const service = (spec: Record<string, unknown>) => ({
    apiVersion: 'maxine.io/v1alpha1',
    kind: 'MaxineService',
    metadata: { name: 'orders', namespace: 'shop' },
    spec,
  });

  apply(service({ selector: { app: 'orders' }, config: { A: '1' } }));
  apply(
    service({
      selector: { app: 'orders' },
      config: { A: '2' },
      loadBalancing: { strategy: 'least-connections' },
      blocked: { registration: false, discovery: true, reason: 'maintenance' },
    }),
  );
  apply(service({ selector: { app: 'orders' } })); // config deleted, unblocked
  apply({
    apiVersion: 'maxine.io/v1alpha1',
    kind: 'MaxineIntention',
    metadata: { name: 'orders', namespace: 'shop' },
    spec: { destination: { name: 'orders' }, sources: [{ name: 'web', action: 'allow' }] },
  });
  apply({
    apiVersion: 'maxine.io/v1alpha1',
    kind: 'MaxineACL',
    metadata: { name: 'shop-workloads', namespace: 'shop' },
    spec: {
      subjects: [{ kind: 'ServiceAccount', name: 'web', namespace: 'shop' }],
      rules: [{ services: ['shop/*'], verbs: ['discover'] }],
    },
  });

  // Registrations: an undeclared service, renewals, heartbeats with health changes.
  const reg = (host: string, service = 'orders') =>
    registry.register(
      registerRequestSchema.parse({
        service,
        namespace: 'shop',
        host,
        port: 8080,
        ports: { admin: 9090 },
        version: 'v1',
        zone: 'a',
        metadata: { team: 'x' },
      }),
      'alice',
    );
  const a = reg('10.0.0.1').instance.id;
  reg('10.0.0.1');
  reg('10.0.0.9', 'undeclared');
  registry.heartbeat(a, { status: 'critical', output: 'down' });
  registry.heartbeat(a, { status: 'warning', connections: 3 });
  reg('10.0.0.1'); // healthy again by re-registration

  // A caller's sidecar reports circuit transitions (POST /api/v1/reports): per instance, for
  // an instance gone, and for the whole service.
  const orders = { namespace: 'shop', name: 'orders' };
  const report = callReportSchema.parse({
    source: { namespace: 'shop', name: 'web' },
    edges: [],
    circuits: [
      { destination: orders, instanceId: a, from: 'closed', to: 'open', openMs: 5000, at: 1 },
      { destination: orders, instanceId: 'gone-1', from: 'open', to: 'half-open', at: 2 },
      { destination: orders, from: 'half-open', to: 'closed', at: 3 },
    ],
  });
  const plan = planReport(report, {
    knows: (s) => registry.counts(s.namespace, s.name) !== undefined,
    instance: (id) => registry.getInstance(id),
    pod: 'web-1',
  });
  for (const event of plan.events) emit(event);

  // Pods and their sidecars.
  const pod = {
    id: 'orders-pod-1',
    host: '10.1.0.1',
    port: 8080,
    weight: 1,
    metadata: { pod: 'orders-pod-1' },
    ready: true,
  };
  registry.syncPodInstances('shop', 'orders', [pod]);
  registry.attachSidecar('orders-pod-1', { ttlSeconds: 5 });
  registry.syncPodInstances('shop', 'orders', [{ ...pod, host: '10.1.0.2', ready: false }]);
  registry.deregister('orders-pod-1');
  registry.syncPodInstances('shop', 'orders', []);

  // Lease expiry: critical, then removed, and the undeclared service goes with its last one.
  clock.advance(60_000);
  registry.sweep();
  reg('10.0.0.2');
  registry.deregister(reg('10.0.0.3').instance.id);

  reconciler.delete('MaxineIntention/shop/orders');
  reconciler.delete('MaxineACL/shop/shop-workloads');
  reconciler.delete('MaxineService/shop/orders');
  return { texts, registry, log, clock };
}

describe('the event envelope schema', () => {
  it('parses every event the registry, the policy store and the reconciler produce, losslessly', () => {
    const { texts } = scenario();
    const seen = new Set<string>();
    for (const text of texts) {
      const sent: unknown = JSON.parse(text);
      const parsed = maxineEventSchema.safeParse(sent);
      expect(parsed.error?.issues ?? []).toEqual([]);
      // Nothing is dropped or added by the schema: what the sidecar applies is what was sent.
      expect(JSON.parse(JSON.stringify(parsed.data))).toEqual(sent);
      seen.add((sent as { type: string }).type);
    }
    // Every type has a producer here but the snapshot's (below).
    const produced = EVENT_TYPES.filter((t) => !t.startsWith('resync_'));
    expect([...seen].sort()).toEqual([...produced].sort());
  });

  it('parses every message of a chunked snapshot, losslessly', () => {
    const { registry, log, clock } = scenario();
    registry.upsertService('shop', 'web', {
      selector: { app: 'web' },
      blocked: { registration: true, discovery: false, reason: 'frozen' },
      config: { B: '1' },
    });
    for (let i = 0; i < 50; i++)
      registry.register(
        registerRequestSchema.parse({
          service: 'api',
          namespace: 'shop',
          host: `10.2.0.${i}`,
          port: 80,
        }),
      );
    const messages = [
      ...snapshotMessages({
        seq: log.lastSeq,
        time: new Date(clock.now()).toISOString(),
        services: registry.serviceRefs(),
        detail: (namespace, name) => registry.snapshotOf(namespace, name),
        maxBytes: 2048,
      }),
    ];
    expect(messages.length).toBeGreaterThan(4);
    for (const text of messages) {
      const sent: unknown = JSON.parse(text);
      const parsed = maxineEventSchema.safeParse(sent);
      expect(parsed.error?.issues ?? []).toEqual([]);
      expect(JSON.parse(JSON.stringify(parsed.data))).toEqual(sent);
    }
  });

  it.each<[string, Record<string, unknown>]>([
    ['an unknown type', { type: 'service_exploded', service: { namespace: 'a', name: 'b' } }],
    [
      'a registration without its instance',
      { type: 'service_registered', service: { namespace: 'a', name: 'b' }, data: {} },
    ],
    [
      'a declared update without its spec',
      {
        type: 'service_updated',
        service: { namespace: 'a', name: 'b' },
        data: { declared: true, generation: 1, blocked: null },
      },
    ],
    [
      'a spec the resource schema refuses',
      {
        type: 'service_updated',
        service: { namespace: 'a', name: 'b' },
        data: {
          declared: true,
          generation: 1,
          blocked: null,
          spec: { versions: [{ name: 'v1', weight: 50 }] },
        },
      },
    ],
    [
      'a config value that is not a string',
      {
        type: 'config_changed',
        service: { namespace: 'a', name: 'b' },
        data: { config: { A: 1 } },
      },
    ],
    [
      'a snapshot message naming a service',
      { type: 'resync_begin', service: { namespace: 'a', name: 'b' }, data: { services: 1 } },
    ],
    [
      'a chunk whose instance has no port',
      {
        type: 'resync_chunk',
        data: { services: [{ namespace: 'a', name: 'b', items: [{ id: 'x' }] }] },
      },
    ],
  ])('refuses %s', (_name, message) => {
    expect(maxineEventSchema.safeParse({ seq: 1, time: '', ...message }).success).toBe(false);
  });

  it('makes a producer that states a case wrongly fail the type check', () => {
    const service = { namespace: 'shop', name: 'orders' };
    const drafts: RegistryEventDraft[] = [];
    // @ts-expect-error config values are strings
    drafts.push({ type: 'config_changed', service, data: { config: { A: 1 } } });
    // @ts-expect-error a registration carries its instance
    drafts.push({ type: 'service_registered', service, data: { renewed: true } });
    // @ts-expect-error a declared service_updated carries its spec
    drafts.push({
      type: 'service_updated',
      service,
      data: { declared: true, generation: 1, blocked: null },
    });
    // @ts-expect-error a change is applied or deleted
    drafts.push({ type: 'acl_changed', service, data: { acl: service, change: 'edited' } });
    // What the type check refuses, the schema refuses too.
    for (const draft of drafts)
      expect(maxineEventSchema.safeParse({ seq: 1, time: '', ...draft }).success).toBe(false);
  });
});
