import { describe, expect, it } from '@jest/globals';
import type { IntentionSpec } from '../../common/resources.js';
import { maxineEventSchema } from '../../common/wire.js';
import type { RegistryEventDraft } from '../../common/wire.js';
import { intentionInForce, PolicyStore } from './store.js';

const allowWeb = (destination: IntentionSpec['destination']): IntentionSpec => ({
  destination,
  sources: [{ name: 'web', action: 'allow' }],
});

function recorder(policyNamespaces?: string[]) {
  const events: RegistryEventDraft[] = [];
  const store = new PolicyStore(
    (e) => events.push(e),
    policyNamespaces === undefined ? {} : { policyNamespaces },
  );
  return { store, events };
}

describe('intentionInForce (namespace confinement)', () => {
  const policy = new Set(['maxine-system']);
  it.each([
    ['own namespace, destination implied', 'shop', {}, true],
    ['own namespace, destination named', 'shop', { namespace: 'shop' }, true],
    ['another namespace from an ordinary one', 'shop', { namespace: 'pay' }, false],
    ['another namespace from a policy namespace', 'maxine-system', { namespace: 'pay' }, true],
  ])('%s', (_name, namespace, destination, expected) => {
    const spec = allowWeb({ name: 'api', ...destination });
    expect(intentionInForce({ namespace, spec }, policy)).toBe(expected);
  });
});

describe('PolicyStore intention_changed events', () => {
  it('carry the spec of an intention in force, and parse with the wire schema', () => {
    const { store, events } = recorder();
    const spec = allowWeb({ name: 'orders' });
    store.setIntention('shop', 'orders', spec);
    expect(events).toEqual([
      {
        type: 'intention_changed',
        service: { namespace: 'shop', name: 'orders' },
        data: {
          intention: { namespace: 'shop', name: 'orders' },
          change: 'applied',
          inForce: true,
          spec,
        },
      },
    ]);
    const parsed = maxineEventSchema.parse({ seq: 1, time: 't', ...events[0] });
    expect(parsed).toMatchObject({ data: { spec } });
  });

  it.each([
    ['confined out: another namespace, ordinary one', 'shop', undefined, false],
    ['a configured policy namespace reaches it', 'platform', ['platform'], true],
  ])('%s', (_name, namespace, policyNamespaces, inForce) => {
    const { store, events } = recorder(policyNamespaces);
    store.setIntention(namespace, 'x', allowWeb({ name: 'api', namespace: 'pay' }));
    expect(events[0]?.service).toEqual({ namespace: 'pay', name: 'api' });
    expect(events[0]?.data).toMatchObject({ change: 'applied', inForce });
    expect(events[0]?.data !== undefined && 'spec' in events[0].data).toBe(inForce);
  });

  it('announce a moved destination as deleted on the old one first', () => {
    const { store, events } = recorder();
    store.setIntention('shop', 'i', allowWeb({ name: 'orders' }));
    store.setIntention('shop', 'i', allowWeb({ name: 'billing' }));
    store.setIntention('shop', 'i', allowWeb({ name: 'billing' })); // same destination: no delete
    expect(events.map((e) => [e.type, e.service, (e.data as { change: string }).change])).toEqual([
      ['intention_changed', { namespace: 'shop', name: 'orders' }, 'applied'],
      ['intention_changed', { namespace: 'shop', name: 'orders' }, 'deleted'],
      ['intention_changed', { namespace: 'shop', name: 'billing' }, 'applied'],
      ['intention_changed', { namespace: 'shop', name: 'billing' }, 'applied'],
    ]);
  });

  it('announce a deletion without a spec', () => {
    const { store, events } = recorder();
    store.setIntention('shop', 'i', allowWeb({ name: 'orders' }));
    store.deleteIntention('shop', 'i');
    expect(events[1]).toEqual({
      type: 'intention_changed',
      service: { namespace: 'shop', name: 'orders' },
      data: { intention: { namespace: 'shop', name: 'i' }, change: 'deleted' },
    });
  });
});
