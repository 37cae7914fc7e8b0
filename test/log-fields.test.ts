/**
 * One shape for log fields (docs/operations.md, "Log fields"): a resource is named by
 * `{ kind, namespace, name }`, never by a `service` field (`"ns/name"`, `{ namespace, name }` or
 * a bare name beside `namespace`). This reads the object literal of every pino call in the
 * programs' sources and checks its keys.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const ROOT = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** The first-argument object literals of `.trace/.debug/.info/.warn/.error/.fatal({ ... }` calls. */
function logObjects(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\.(?:trace|debug|info|warn|error|fatal)\(\s*\{/g)) {
    const start = m.index + m[0].length - 1;
    let depth = 0;
    for (let i = start; i < text.length; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}' && --depth === 0) {
        found.push(text.slice(start, i + 1));
        break;
      }
    }
  }
  return found;
}

/** Why a log object breaks the shape, or undefined. */
function violation(object: string): string | undefined {
  if (/(?<![\w.])service\s*[:,}]/.test(object)) return 'names a resource by a `service` field';
  return undefined;
}

describe('log fields', () => {
  it.each([
    ['{ service: `${a.namespace}/${a.name}`, mesh }', true],
    ['{ ...who, service: { namespace: b.namespace, name: b.service } }', true],
    ['{ namespace, service: name, added }', true],
    ['{ service, pods }', true],
    ["{ kind: 'MaxineService', namespace, name: body.service }", false],
    ['{ services: this.state.size, instances }', false],
    ['{ err, who: s.principal.who, services: s.query.services }', false],
  ])('%s breaks the shape: %s', (object, bad) => {
    expect(violation(object) !== undefined).toBe(bad);
  });

  it('finds the log calls it checks', () => {
    const text =
      "logger.info(\n  { kind, namespace, name: { nested: 1 } },\n  'x',\n); log.warn({ a }, 'y')";
    expect(logObjects(text)).toEqual(['{ kind, namespace, name: { nested: 1 } }', '{ a }']);
  });

  it('every log call of the operator and the sidecar names resources by { kind, namespace, name }', () => {
    const bad: string[] = [];
    for (const file of ['operator', 'sidecar', 'common'].flatMap((d) => sources(join(ROOT, d)))) {
      for (const object of logObjects(readFileSync(file, 'utf8'))) {
        const why = violation(object);
        if (why !== undefined) bad.push(`${relative(ROOT, file)}: ${why}: ${object}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
