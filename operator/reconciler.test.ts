import { describe, expect, it } from '@jest/globals';
import { configHash } from '../common/config-version.js';
import { maxineServiceSchema } from '../common/resources.js';
import { PolicyStore } from './policy/store.js';
import { Reconciler } from './reconciler.js';
import { ManualClock } from './registry/clock.js';
import { testRegistry } from '../test/helpers/registry.js';

function reconciler(): { r: Reconciler; clock: ManualClock } {
  const { clock, registry } = testRegistry({ clock: new ManualClock(1_700_000_000_000) });
  return { r: new Reconciler(registry, new PolicyStore(() => undefined), clock), clock };
}

const STORED_ISTIO = {
  type: 'IstioSynced',
  status: 'True' as const,
  reason: 'Applied',
  message: '2 Istio objects applied',
  lastTransitionTime: '2026-01-01T00:00:00.000Z',
  observedGeneration: 3,
};

/** A MaxineService as read from the API server after an earlier operator reported on it. */
const stored = maxineServiceSchema.parse({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineService',
  metadata: { name: 'orders', namespace: 'shop', generation: 3 },
  spec: { selector: { app: 'orders' }, mesh: { istio: true } },
  status: {
    conditions: [
      { ...STORED_ISTIO, type: 'Ready', reason: 'Reconciled', message: 'old' },
      STORED_ISTIO,
      { ...STORED_ISTIO, type: 'Invalid', reason: 'SpecInvalid' },
    ],
    mesh: { istio: { objects: ['DestinationRule/orders'], differences: [] } },
  },
});

describe('Reconciler mesh reports', () => {
  it('keeps the mesh report an object already carries across an operator restart', () => {
    const { r } = reconciler();
    r.upsert(stored, 'kubernetes');
    const status = r.statusOf('MaxineService/shop/orders')!;
    expect(status.conditions?.find((c) => c.type === 'IstioSynced')).toEqual(STORED_ISTIO);
    expect(status.conditions?.map((c) => c.type)).toEqual(['IstioSynced', 'Ready']);
    expect(status.mesh).toEqual({
      istio: { objects: ['DestinationRule/orders'], differences: [] },
    });
  });

  it('replaces, keeps the place of, and removes a mesh condition', () => {
    const { r, clock } = reconciler();
    r.upsert(stored, 'kubernetes');
    const key = 'MaxineService/shop/orders';
    const same = { status: 'True' as const, reason: 'Applied', message: '2 Istio objects applied' };
    expect(r.setMeshReport(key, 'istio', { condition: same })).toBe(true); // observedGeneration
    expect(r.setMeshReport(key, 'istio', { condition: same })).toBe(false);
    clock.advance(1000);
    expect(
      r.setMeshReport(key, 'istio', {
        condition: { status: 'False', reason: 'CRDsMissing', message: 'gone' },
      }),
    ).toBe(true);
    const changed = r.statusOf(key)!;
    expect(changed.conditions?.map((c) => c.type)).toEqual(['IstioSynced', 'Ready']);
    expect(changed.conditions?.[0]?.lastTransitionTime).toBe(new Date(clock.now()).toISOString());
    expect(r.setMeshReport(key, 'istio', undefined)).toBe(true);
    expect(r.statusOf(key)!.conditions?.map((c) => c.type)).toEqual(['Ready']);
    expect(r.statusOf(key)!.mesh).toBeUndefined();
  });
});

describe('Reconciler config version in MaxineService status (Kubernetes restarts)', () => {
  const withConfig = (config: Record<string, string> | undefined, status?: unknown) =>
    maxineServiceSchema.parse({
      apiVersion: 'maxine.io/v1alpha1',
      kind: 'MaxineService',
      metadata: { name: 'cart', namespace: 'shop', generation: 1 },
      spec: config === undefined ? {} : { config },
      ...(status !== undefined && { status }),
    });

  /** One operator applies `steps`; the status it would write is what the next one reads. */
  function statusAfter(steps: (Record<string, string> | undefined)[], status?: unknown): unknown {
    const { r } = reconciler();
    for (const config of steps) r.upsert(withConfig(config, status), 'kubernetes');
    return r.statusOf('MaxineService/shop/cart')?.config;
  }

  it.each([
    ['same config after a restart: the same version', [{ A: '1' }], { A: '1' }, 2],
    ['another config after a restart: version + 1', [{ A: '1' }], { A: '2' }, 3],
    ['config deleted after a restart: version + 1', [{ A: '1' }], undefined, 3],
  ])('%s', (_, before, after, version) => {
    const written = statusAfter([{ A: '0' }, ...before]);
    expect(written).toMatchObject({ version: 2 });
    const next = statusAfter([after], { config: written });
    expect(next).toEqual({
      version,
      ...(after !== undefined && { hash: configHash(after) }),
    });
  });

  it('without a recorded version it starts at 1, as before', () => {
    expect(statusAfter([{ A: '1' }])).toEqual({ version: 1, hash: configHash({ A: '1' }) });
  });
});
