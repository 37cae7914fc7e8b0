import { describe, expect, it } from '@jest/globals';
import { PodSelectorIndex, slimPod } from './pod-index.js';
import { isPodReady, podInstance, selects } from './pods.js';
import type { PodLike } from './pods.js';
import type { ServiceSpec } from '../../common/resources.js';

function indexOf(pods: [string, string, Record<string, string>][]): PodSelectorIndex {
  const index = new PodSelectorIndex();
  for (const [ns, name, labels] of pods) index.upsert(ns, name, labels);
  return index;
}

const PODS: [string, string, Record<string, string>][] = [
  ['shop', 'web-1', { app: 'web', version: 'v1' }],
  ['shop', 'web-2', { app: 'web', version: 'v2' }],
  ['shop', 'api-1', { app: 'api', version: 'v1' }],
  ['bank', 'web-1', { app: 'web', version: 'v1' }],
];

describe('PodSelectorIndex.selected', () => {
  it.each([
    ['one pair', 'shop', { app: 'web' }, ['web-1', 'web-2']],
    ['two pairs', 'shop', { app: 'web', version: 'v2' }, ['web-2']],
    ['another namespace', 'bank', { app: 'web' }, ['web-1']],
    ['a value nobody has', 'shop', { app: 'db' }, []],
    ['a pair of another pod', 'shop', { app: 'api', version: 'v2' }, []],
    ['an empty selector selects none', 'shop', {}, []],
    ['no selector selects none', 'shop', undefined, []],
  ])('%s', (_what, ns, selector, expected) => {
    expect(indexOf(PODS).selected(ns, selector).sort()).toEqual(expected);
  });

  it('agrees with a scan of every pod (selects) on random pods and selectors', () => {
    const index = new PodSelectorIndex();
    const all: [string, Record<string, string>][] = [];
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 500; i++) {
      const labels: Record<string, string> = {};
      for (const k of ['a', 'b', 'c']) if (rand(3) > 0) labels[k] = String(rand(4));
      all.push([`p${i}`, labels]);
      index.upsert('ns', `p${i}`, labels);
    }
    // Relabel and delete some, as updates and deletions do.
    for (let i = 0; i < 100; i++) {
      const n = rand(500);
      if (rand(2) === 0) {
        index.remove('ns', `p${n}`);
        all[n] = [`p${n}`, { gone: 'yes' }];
        index.upsert('ns', `p${n}`, { gone: 'yes' });
      } else {
        const labels = { a: String(rand(4)) };
        all[n] = [`p${n}`, labels];
        index.upsert('ns', `p${n}`, labels);
      }
    }
    for (let i = 0; i < 200; i++) {
      const selector: Record<string, string> = {};
      for (const k of ['a', 'b', 'c']) if (rand(2) === 0) selector[k] = String(rand(4));
      const scanned = all.filter(([, l]) => selects(selector, l)).map(([n]) => n);
      expect(index.selected('ns', selector).sort()).toEqual(scanned.sort());
    }
  });
});

describe('PodSelectorIndex.upsert and remove', () => {
  it('return the labels a pod had, so a relabelled pod leaves the services that selected it', () => {
    const index = indexOf(PODS);
    expect(index.upsert('shop', 'web-1', { app: 'api' })).toEqual({ app: 'web', version: 'v1' });
    expect(index.selected('shop', { app: 'web' })).toEqual(['web-2']);
    expect(index.selected('shop', { app: 'api' }).sort()).toEqual(['api-1', 'web-1']);
    expect(index.remove('shop', 'web-1')).toEqual({ app: 'api' });
    expect(index.remove('shop', 'web-1')).toBeUndefined();
    expect(index.upsert('shop', 'new', undefined)).toBeUndefined();
    expect(index.size).toBe(4);
  });
});

describe('slimPod', () => {
  const fat = () => ({
    metadata: {
      name: 'web-1',
      namespace: 'shop',
      uid: 'u1',
      resourceVersion: '42',
      labels: { app: 'web', version: 'v1', 'topology.kubernetes.io/zone': 'a' },
      annotations: { 'maxine.io/inject': 'true' },
      managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }],
    },
    spec: {
      nodeName: 'node-1',
      serviceAccountName: 'web',
      volumes: [{ name: 'data', emptyDir: {} }],
      readinessGates: [{ conditionType: 'maxine.io/healthy' }],
      initContainers: [{ name: 'maxine-sidecar', image: 'x', restartPolicy: 'Always', env: [] }],
      containers: [
        {
          name: 'app',
          image: 'web:1',
          env: [{ name: 'A', value: 'x'.repeat(1000) }],
          ports: [{ containerPort: 8080, name: 'http' }],
          resources: { limits: { memory: '1Gi' } },
        },
      ],
    },
    status: {
      phase: 'Running',
      podIP: '10.0.0.7',
      conditions: [
        { type: 'Ready', status: 'True' },
        { type: 'ContainersReady', status: 'True' },
        { type: 'maxine.io/healthy', status: 'True', reason: 'Passing' },
      ],
      containerStatuses: [{ name: 'app', ready: true, image: 'web:1', state: {} }],
    },
  });

  it('drops what the operator never reads', () => {
    const pod = fat();
    slimPod(pod);
    expect(pod.metadata).not.toHaveProperty('managedFields');
    expect(Object.keys(pod.spec).sort()).toEqual([
      'containers',
      'initContainers',
      'nodeName',
      'readinessGates',
      'serviceAccountName',
    ]);
    expect(pod.spec.containers[0]).toEqual({
      name: 'app',
      ports: [{ containerPort: 8080, name: 'http' }],
    });
    expect(pod.spec.initContainers[0]).toEqual({ name: 'maxine-sidecar', restartPolicy: 'Always' });
    expect(Object.keys(pod.status).sort()).toEqual(['conditions', 'phase', 'podIP']);
    expect(JSON.stringify(pod).length).toBeLessThan(JSON.stringify(fat()).length / 2);
  });

  it('changes nothing the instance mapping reads', () => {
    const spec = {
      selector: { app: 'web' },
      healthCheck: { http: { path: '/' } },
    } as unknown as ServiceSpec;
    const slim = fat();
    slimPod(slim);
    const before = fat() as unknown as PodLike;
    expect(podInstance('shop', 'web', spec, slim as unknown as PodLike)).toEqual(
      podInstance('shop', 'web', spec, before),
    );
    expect(isPodReady(slim as unknown as PodLike)).toBe(isPodReady(before));
    expect(slim.metadata.uid).toBe('u1');
    expect(slim.metadata.resourceVersion).toBe('42');
  });
});
