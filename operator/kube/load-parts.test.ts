import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * The chains of static value imports (what Node loads at start: `import type` is erased,
 * `import()` is not followed) from `entry` to the package `target`, as paths from the root.
 */
function chainsTo(entry: string, target: string): string[] {
  const parent = new Map<string, string | undefined>([[resolve(ROOT, entry), undefined]]);
  const queue = [resolve(ROOT, entry)];
  const hits: string[] = [];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(
      /^(import|export)\s([^;]*?)from\s+'([^']+)'|^import\s+'([^']+)'/gms,
    )) {
      if (/^(import|export)\s+type\s/.test(m[0])) continue;
      const spec = m[3] ?? m[4] ?? '';
      if (spec === target) hits.push(file);
      if (!spec.startsWith('.')) continue;
      const next = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      if (parent.has(next)) continue;
      parent.set(next, file);
      queue.push(next);
    }
  }
  return hits.map((hit) => {
    const chain: string[] = [];
    for (let f: string | undefined = hit; f !== undefined; f = parent.get(f))
      chain.unshift(relative(ROOT, f));
    return chain.join(' -> ');
  });
}

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
