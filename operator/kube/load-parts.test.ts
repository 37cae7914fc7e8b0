import { describe, expect, it } from '@jest/globals';
import { chainsTo } from '../../test/helpers/import-chains.js';

describe('the Kubernetes client is loaded only in Kubernetes mode', () => {
  it.each([['operator/main.ts'], ['operator/operator.ts']])(
    '%s reaches @kubernetes/client-node through no static import',
    (entry) => {
      expect(chainsTo(entry, '@kubernetes/client-node')).toEqual([]);
    },
  );

  it('the lazily loaded parts do reach it (the walk finds what is there)', () => {
    expect(chainsTo('operator/kube/parts.ts', '@kubernetes/client-node').length).toBeGreaterThan(0);
  });

  it('loadKubeParts() loads the parts once; kubePartsLoaded() then returns them', async () => {
    const { kubePartsLoaded, loadKubeParts } = await import('./load-parts.js');
    const parts = await loadKubeParts();
    expect(await loadKubeParts()).toBe(parts);
    expect(kubePartsLoaded()).toBe(parts);
    expect(typeof parts.KubeConfig).toBe('function');
  });
});

describe('node:http is required, not imported (common/node-http.ts, decision 0027)', () => {
  it('operator/main.ts reaches node:http through no static import (an ESM import loads undici on Node 24+)', () => {
    expect(chainsTo('operator/main.ts', 'node:http')).toEqual([]);
  });
});
