import { describe, expect, it } from '@jest/globals';
import type { MeshDifference, MeshObject } from '../../common/mesh/model.js';
import {
  applyReport,
  clip,
  crdsMissingReport,
  LIMITS,
  meshLabel,
  meshStatus,
  syncFailedReport,
} from './report.js';

const obj = (kind: string, name: string): MeshObject => ({
  apiVersion: 'networking.istio.io/v1',
  kind,
  metadata: { name, namespace: 'shop', labels: {} },
  spec: {},
});

describe('clip', () => {
  it.each([
    ['shorter than the limit', 'abc', 5, 'abc'],
    ['exactly the limit', 'abcde', 5, 'abcde'],
    ['one over the limit', 'abcdef', 5, 'abcd…'],
    ['far over the limit', 'x'.repeat(5000), 4096, `${'x'.repeat(4095)}…`],
    ['empty', '', 3, ''],
  ])('%s', (_name, text, max, want) => {
    const got = clip(text, max);
    expect(got).toBe(want);
    expect(got.length).toBeLessThanOrEqual(max);
  });
});

describe('mesh reports', () => {
  it.each([
    ['istio', 'Istio'],
    ['linkerd', 'Linkerd'],
  ] as const)('labels %s as %s', (mesh, label) => {
    expect(meshLabel(mesh)).toBe(label);
  });

  it.each([
    ['a short error', 'cannot list servers.policy.linkerd.io: forbidden', 48],
    ['an error over the limit', 'e'.repeat(5000), LIMITS.conditionMessage],
  ])('SyncFailed carries %s, clipped', (_name, error, length) => {
    const report = syncFailedReport(error);
    expect(report.condition).toMatchObject({ status: 'False', reason: 'SyncFailed' });
    expect(report.condition.message).toHaveLength(length);
    expect(report.status).toBeUndefined();
  });

  it.each([
    [
      'istio',
      ['ServiceEntry (networking.istio.io/v1)'],
      'Istio CRDs are not installed: ServiceEntry (networking.istio.io/v1); install Istio (or its CRDs) and the objects are applied on the next resync',
    ],
    [
      'linkerd',
      ['Server (policy.linkerd.io/v1beta3)', 'HTTPRoute (policy.linkerd.io/v1beta3)'],
      'Linkerd CRDs are not installed: Server (policy.linkerd.io/v1beta3), HTTPRoute (policy.linkerd.io/v1beta3); install Linkerd (or its CRDs) and the objects are applied on the next resync',
    ],
  ] as const)('CRDsMissing for %s names the missing kinds', (mesh, missing, message) => {
    expect(crdsMissingReport(mesh, [...missing])).toEqual({
      condition: { status: 'False', reason: 'CRDsMissing', message },
    });
  });

  const diff: MeshDifference = { object: 'VirtualService/cart', subject: 'spec.x', message: 'm' };
  it.each([
    [
      'no differences',
      'istio',
      [obj('VirtualService', 'cart')],
      [],
      [],
      'True',
      'Applied',
      '1 Istio objects applied',
    ],
    [
      'differences',
      'linkerd',
      [obj('Server', 'cart'), obj('HTTPRoute', 'cart')],
      [diff],
      [],
      'True',
      'Applied',
      '2 Linkerd objects applied; 1 differences from the intended behaviour, see status.mesh.linkerd',
    ],
    [
      'failures',
      'istio',
      [obj('VirtualService', 'cart')],
      [],
      ['VirtualService/cart: forbidden', 'DestinationRule/cart: conflict'],
      'False',
      'ApplyFailed',
      'VirtualService/cart: forbidden; DestinationRule/cart: conflict',
    ],
  ] as const)(
    'applyReport with %s',
    (_name, mesh, objects, differences, failures, status, reason, message) => {
      const report = applyReport(mesh, { objects: [...objects], differences: [...differences] }, [
        ...failures,
      ]);
      expect(report.condition).toEqual({ status, reason, message });
      expect(report.status?.objects).toEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    },
  );

  it('ApplyFailed message is cut to the condition limit', () => {
    const report = applyReport('istio', { objects: [], differences: [] }, ['f'.repeat(5000)]);
    expect(report.condition.message).toHaveLength(LIMITS.conditionMessage);
  });
});

describe('meshStatus', () => {
  it.each([
    ['empty render', 0, 0, 0, 0],
    ['within the bounds', 3, 2, 3, 2],
    ['over the bounds', 100, 70, LIMITS.objects, LIMITS.differences],
  ])('%s', (_name, nObjects, nDiffs, wantObjects, wantDiffs) => {
    const status = meshStatus({
      objects: Array.from({ length: nObjects }, (_, i) => obj('VirtualService', `s${i}`)),
      differences: Array.from({ length: nDiffs }, (_, i) => ({ subject: `s${i}`, message: 'm' })),
    });
    expect(status.objects).toHaveLength(wantObjects);
    expect(status.differences).toHaveLength(wantDiffs);
    if (wantObjects > 0) expect(status.objects[0]).toBe('VirtualService/s0');
  });

  it.each([
    [
      'keeps short texts',
      { object: 'A/b', subject: 's', message: 'm' },
      { object: 'A/b', subject: 's', message: 'm' },
    ],
    ['omits an absent object', { subject: 's', message: 'm' }, { subject: 's', message: 'm' }],
    [
      'clips each text to its CRD limit',
      { object: 'o'.repeat(600), subject: 's'.repeat(300), message: 'm'.repeat(3000) },
      {
        object: `${'o'.repeat(511)}…`,
        subject: `${'s'.repeat(255)}…`,
        message: `${'m'.repeat(2047)}…`,
      },
    ],
  ])('%s', (_name, difference: MeshDifference, want) => {
    expect(meshStatus({ objects: [], differences: [difference] }).differences).toEqual([want]);
  });
});
