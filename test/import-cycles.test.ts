/**
 * No import cycle spans two folders of operator/, common/ or sidecar/ (type imports count:
 * a cycle between folders means neither layer stands alone). A cycle inside one folder is a
 * module's own business. `madge --circular` says the same; this needs no extra dependency.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

const ROOTS = ['operator', 'common', 'sidecar'];
const IMPORT_RE = /(?:import|export)\s[^;]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/gs;

function sources(): string[] {
  return ROOTS.flatMap((root) =>
    readdirSync(root, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .map((f) => join(root, f)),
  );
}

/** The module graph: each file and the project files it imports. */
function graph(): Map<string, string[]> {
  const files = new Set(sources());
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const deps = [...readFileSync(file, 'utf8').matchAll(IMPORT_RE)]
      .map((m) => normalize(join(dirname(file), m[1] ?? m[2] ?? '')).replace(/\.js$/, '.ts'))
      .filter((dep) => files.has(dep));
    edges.set(file, deps);
  }
  return edges;
}

/** The strongly connected groups of more than one file (Tarjan). */
function cycles(edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) found.push(group.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('import cycles', () => {
  it('finds a cycle in a table graph', () => {
    const g = new Map([
      ['a/x.ts', ['b/y.ts']],
      ['b/y.ts', ['a/x.ts']],
      ['c/z.ts', ['a/x.ts']],
    ]);
    expect(cycles(g)).toEqual([['a/x.ts', 'b/y.ts']]);
  });

  it('none spans two folders', () => {
    const crossing = cycles(graph()).filter(
      (group) => new Set(group.map((f) => dirname(f))).size > 1,
    );
    expect(crossing).toEqual([]);
  });
});
