import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * The chains of static value imports (what Node loads at start: `import type` is erased,
 * `import()` and `require()` are not followed) from `entry` to the module `target` (a package
 * or a built-in such as `node:http`), as paths from the root.
 */
export function chainsTo(entry: string, target: string): string[] {
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
