// examples/ is both the default folder of standalone mode and what a newcomer applies with
// kubectl. Both readers must see the same, clean objects.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { parseResourceFile } from './parse.js';
import { yamlFiles } from '../../test/helpers/files.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = join(ROOT, 'examples');

interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
}

const files = yamlFiles(EXAMPLES);
const objectsOf = (file: string, version: '1.1' | '1.2' = '1.2'): K8sObject[] =>
  parseAllDocuments(readFileSync(file, 'utf8'), { version })
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
const name = (file: string) => relative(ROOT, file);

describe('examples/', () => {
  it('holds the files a newcomer applies, Namespaces first', () => {
    const top = files.filter((f) => dirname(f) === EXAMPLES).map(name);
    expect(top[0]).toBe('examples/00-namespaces.yaml');
    expect(top.length).toBeGreaterThanOrEqual(6);
  });

  it.each(files.map(name))('%s has no problem for the folder source', (file) => {
    const parsed = parseResourceFile(readFileSync(join(ROOT, file), 'utf8'));
    expect(parsed.issues).toEqual([]);
    expect(parsed.objects.length + parsed.skipped).toBeGreaterThan(0);
  });

  it.each(files.map(name))('%s reads the same in YAML 1.1 (kubectl) as in YAML 1.2', (file) => {
    // kubectl reads YAML 1.1: a bare on/off/yes/no becomes a boolean (spec.retries.on did).
    expect(objectsOf(join(ROOT, file), '1.1')).toEqual(objectsOf(join(ROOT, file)));
  });

  // kubectl apply -f DIR is not recursive: each folder declares the namespaces its objects use.
  it.each([...new Set(files.map(dirname))].map(name))(
    '%s declares every namespace its objects use',
    (dir) => {
      const objects = files
        .filter((f) => dirname(f) === join(ROOT, dir))
        .flatMap((f) => objectsOf(f));
      const declared = new Set(
        objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata?.name),
      );
      const used = new Set(
        objects.filter((o) => o.kind !== 'Namespace').map((o) => o.metadata?.namespace),
      );
      for (const ns of used) expect(declared).toContain(ns);
    },
  );

  it('writes maxine-system exactly as manifests/ does, so neither apply undoes the other', () => {
    const manifest = parse(
      readFileSync(join(ROOT, 'manifests', 'namespace.yaml'), 'utf8'),
    ) as K8sObject;
    const copies = files
      .flatMap((f) => objectsOf(f))
      .filter((o) => o.kind === 'Namespace' && o.metadata?.name === 'maxine-system');
    expect(copies.length).toBeGreaterThanOrEqual(1);
    for (const copy of copies) expect(copy).toEqual(manifest);
  });
});
