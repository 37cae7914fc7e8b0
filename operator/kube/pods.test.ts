import { describe, expect, it } from '@jest/globals';
import { serviceSpecSchema } from '../../common/resources.js';
import type { PodLike } from './pods.js';
import {
  hasHealthGate,
  hasSidecar,
  healthConditionOf,
  isPodReady,
  lacksPort,
  lacksSidecar,
  noPortAdvice,
  noSidecarAdvice,
  podInstance,
  podInstanceId,
  selects,
  versionOf,
} from './pods.js';

const ready = {
  phase: 'Running',
  podIP: '10.244.0.5',
  conditions: [{ type: 'Ready', status: 'True' }],
};
const pod = (over: Partial<PodLike> = {}): PodLike => ({
  metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web', version: 'v2' } },
  spec: { nodeName: 'kwok-node', containers: [{ ports: [{ containerPort: 9000 }] }] },
  status: ready,
  ...over,
});
const spec = (s: unknown) => serviceSpecSchema.parse(s);

describe('selects', () => {
  it.each([
    ['all labels match', { app: 'web' }, { app: 'web', tier: 'fe' }, true],
    ['one label differs', { app: 'web', tier: 'be' }, { app: 'web', tier: 'fe' }, false],
    ['a label is missing', { app: 'web' }, {}, false],
    ['an empty selector selects nothing', {}, { app: 'web' }, false],
    ['no selector selects nothing', undefined, { app: 'web' }, false],
  ] as const)('%s', (_name, selector, labels, expected) => {
    expect(selects(selector, labels)).toBe(expected);
  });
});

describe('isPodReady', () => {
  it.each([
    ['running and ready', pod(), true],
    ['pending', pod({ status: { ...ready, phase: 'Pending' } }), false],
    [
      'not ready',
      pod({ status: { ...ready, conditions: [{ type: 'Ready', status: 'False' }] } }),
      false,
    ],
    [
      'terminating',
      pod({ metadata: { name: 'web-1', deletionTimestamp: '2026-01-01T00:00:00Z' } }),
      false,
    ],
  ])('%s', (_name, p, expected) => {
    expect(isPodReady(p)).toBe(expected);
  });
});

describe('the maxine.io/healthy gate', () => {
  const gates = { readinessGates: [{ conditionType: 'maxine.io/healthy' }] };
  const gated = (
    conditions: { type: string; status: string; reason?: string; message?: string }[],
  ) => pod({ spec: { ...pod().spec, ...gates }, status: { ...ready, conditions } });

  it.each([
    // Ready waits for the gate, i.e. for Maxine itself: containers ready is the pod's readiness.
    [
      'gated, containers ready, gate not yet True',
      gated([
        { type: 'Ready', status: 'False' },
        { type: 'ContainersReady', status: 'True' },
      ]),
      true,
    ],
    ['gated and Ready', gated([{ type: 'Ready', status: 'True' }]), true],
    [
      'gated, containers not ready',
      gated([
        { type: 'Ready', status: 'False' },
        { type: 'ContainersReady', status: 'False' },
      ]),
      false,
    ],
    // Without the gate, ContainersReady alone is not enough (another gate may hold Ready).
    [
      'not gated, only containers ready',
      pod({
        status: {
          ...ready,
          conditions: [
            { type: 'Ready', status: 'False' },
            { type: 'ContainersReady', status: 'True' },
          ],
        },
      }),
      false,
    ],
  ])('isPodReady: %s', (_name, p, expected) => {
    expect(isPodReady(p)).toBe(expected);
  });

  it.each([
    ['no condition', [], undefined],
    [
      'True',
      [{ type: 'maxine.io/healthy', status: 'True', reason: 'Passing', message: '' }],
      { status: 'True', reason: 'Passing' },
    ],
    [
      'False with a message',
      [{ type: 'maxine.io/healthy', status: 'False', reason: 'CheckFailed', message: 'boom' }],
      { status: 'False', reason: 'CheckFailed', message: 'boom' },
    ],
    ['Unknown', [{ type: 'maxine.io/healthy', status: 'Unknown' }], undefined],
  ])('healthConditionOf: %s', (_name, conditions, expected) => {
    expect(healthConditionOf(gated(conditions))).toEqual(expected);
  });

  it('podInstance carries the gate and the condition', () => {
    const p = gated([
      { type: 'ContainersReady', status: 'True' },
      { type: 'maxine.io/healthy', status: 'False', reason: 'CheckFailed', message: 'boom' },
    ]);
    expect(hasHealthGate(p)).toBe(true);
    expect(podInstance('shop', 'web', spec({}), p)).toMatchObject({
      ready: true,
      gated: true,
      condition: { status: 'False', reason: 'CheckFailed', message: 'boom' },
    });
    expect(podInstance('shop', 'web', spec({}), pod())).not.toHaveProperty('gated');
  });
});

describe('podInstance', () => {
  it('maps a ready pod to an instance with the service port, version and node', () => {
    const instance = podInstance(
      'shop',
      'web',
      spec({ ports: [{ name: 'http', port: 8080 }] }),
      pod(),
    );
    expect(instance).toEqual({
      id: 'shop.web-1.web',
      host: '10.244.0.5',
      port: 8080,
      ports: { http: 8080 },
      version: 'v2',
      weight: 1,
      metadata: { pod: 'web-1', node: 'kwok-node' },
      ready: true,
    });
  });

  it.each([
    ['no IP yet', pod({ status: { phase: 'Pending' } }), spec({})],
    ['no port anywhere', pod({ spec: { containers: [{}] } }), spec({})],
  ])('is undefined with %s', (_name, p, s) => {
    expect(podInstance('shop', 'web', s, p)).toBeUndefined();
  });

  it('falls back to the first container port, and keeps not-ready pods as not ready', () => {
    const instance = podInstance(
      'shop',
      'web',
      spec({}),
      pod({ status: { ...ready, conditions: [] } }),
    );
    expect(instance).toMatchObject({ port: 9000, ready: false });
  });
});

describe('versionOf', () => {
  const s = spec({
    versions: [
      { name: 'stable', labels: { track: 'stable' }, weight: 90 },
      { name: 'canary', weight: 10 },
    ],
  });
  it.each([
    ['by the version labels', { track: 'stable' }, 'stable'],
    ['by name when the version has no labels', { version: 'canary' }, 'canary'],
    ['by the version label when no version matches', { version: 'v9' }, 'v9'],
    ['none', {}, undefined],
  ])('%s', (_name, labels, expected) => {
    expect(versionOf(s, labels)).toBe(expected);
  });
});

describe('podInstanceId', () => {
  it('is unique across namespaces and bounded in length', () => {
    expect(podInstanceId('a', 'p', 's')).not.toBe(podInstanceId('b', 'p', 's'));
    expect(podInstanceId('a', 'p'.repeat(253), 's').length).toBeLessThanOrEqual(253);
  });
});

describe('pods without sidecar', () => {
  const checked = spec({ selector: { app: 'web' }, healthCheck: { http: { path: '/healthz' } } });
  const unchecked = spec({ selector: { app: 'web' } });
  const app = { name: 'web', ports: [{ containerPort: 9000 }] };
  const native = pod({ spec: { initContainers: [{ name: 'maxine-sidecar' }], containers: [app] } });
  const plain = pod({ spec: { containers: [app, { name: 'maxine-sidecar' }] } });
  const bare = pod({ spec: { containers: [app] } });
  const otherInit = pod({ spec: { initContainers: [{ name: 'migrate' }], containers: [app] } });

  it.each([
    ['a native sidecar (init container)', native, true],
    ['a sidecar as a plain container', plain, true],
    ['no sidecar', bare, false],
    ['another init container only', otherInit, false],
    ['no spec', pod({ spec: undefined }), false],
  ])('hasSidecar: %s', (_what, p, expected) => {
    expect(hasSidecar(p)).toBe(expected);
  });

  it.each([
    ['a healthCheck and no sidecar', checked, bare, true],
    ['a healthCheck and its sidecar', checked, native, false],
    ['no healthCheck: a pod is an instance as an Endpoint is', unchecked, bare, false],
  ])('lacksSidecar and the instance: %s', (_what, s, p, expected) => {
    expect(lacksSidecar(s, p)).toBe(expected);
    expect(podInstance('shop', 'web', s, p)?.noSidecar === true).toBe(expected);
  });

  const named = (name: string, annotations?: Record<string, string>) =>
    pod({ metadata: { name, labels: { app: 'web' }, ...(annotations && { annotations }) } });

  it.each([
    [
      'pods that did not ask',
      [named('web-1'), named('web-2')],
      ['pods web-1, web-2 did not ask for injection', 'maxine.io/inject: "true"', 'recreate them'],
    ],
    [
      'a pod that asked but was admitted without it',
      [named('web-1', { 'maxine.io/inject': 'true' })],
      ['pod web-1 asked for injection', "operator's webhook", 'failurePolicy Ignore'],
    ],
    [
      'both kinds',
      [named('a', { 'maxine.io/inject': 'true' }), named('b', { 'maxine.io/inject': 'false' })],
      ['pod a asked for injection', 'pod b did not ask for injection'],
    ],
    [
      'many pods, a few named',
      ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'].map((n) => named(n)),
      ['pods p1, p2, p3, p4, p5 and 2 more'],
    ],
  ])('noSidecarAdvice: %s', (_what, pods, says) => {
    const advice = noSidecarAdvice(pods);
    for (const text of says) expect(advice).toContain(text);
  });
});

describe('pods without a port', () => {
  const portless = pod({ spec: { containers: [{ name: 'app' }] } });
  const withPort = pod();
  it.each([
    ['no spec.ports and no containerPort', spec({ selector: { app: 'web' } }), portless, true],
    ['a containerPort', spec({ selector: { app: 'web' } }), withPort, false],
    [
      'spec.ports and no containerPort',
      spec({ selector: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] }),
      portless,
      false,
    ],
  ])('lacksPort and the instance: %s', (_what, s, p, expected) => {
    expect(lacksPort(s, p)).toBe(expected);
    expect(podInstance('shop', 'web', s, p) === undefined).toBe(expected);
  });

  it.each([
    [
      'one pod',
      [pod()],
      ['pod web-1 declares no containerPort', 'add spec.ports', 'its sidecar waits'],
    ],
    [
      'two pods',
      [pod(), pod({ metadata: { name: 'web-2' } })],
      ['pods web-1, web-2 declare', 'their sidecars wait'],
    ],
  ])('noPortAdvice: %s', (_what, pods, says) => {
    const advice = noPortAdvice(pods);
    for (const text of says) expect(advice).toContain(text);
  });
});
