// kubectl reads YAML 1.1, where a bare `on`, `off`, `yes`, `no`, `y`, `n`, `true` or `false`
// is a boolean: a field named so becomes the key "true" or "false" and the object is refused
// or silently different (spec.retries.on was). No property of the three CRDs may be named so.
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const YAML11_BOOLEANS = new Set(['y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false']);

interface Schema {
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  not?: Schema;
}

/** Paths of every property whose name YAML 1.1 reads as a boolean (in any letter case). */
function yaml11BooleanNames(schema: Schema, path = ''): string[] {
  const found: string[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const at = path === '' ? name : `${path}.${name}`;
    if (YAML11_BOOLEANS.has(name.toLowerCase())) found.push(at);
    found.push(...yaml11BooleanNames(child, at));
  }
  if (schema.items !== undefined) found.push(...yaml11BooleanNames(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object')
    found.push(...yaml11BooleanNames(schema.additionalProperties, `${path}{}`));
  for (const list of [schema.allOf, schema.anyOf, schema.oneOf])
    for (const s of list ?? []) found.push(...yaml11BooleanNames(s, path));
  if (schema.not !== undefined) found.push(...yaml11BooleanNames(schema.not, path));
  return found;
}

const obj = (properties: Record<string, Schema>): Schema => ({ properties });

describe('yaml11BooleanNames', () => {
  it.each<[string, Schema, string[]]>([
    ['plain names', obj({ retryOn: {}, attempts: {} }), []],
    ['a nested on', obj({ spec: obj({ retries: obj({ on: {} }) }) }), ['spec.retries.on']],
    [
      'every spelling and case',
      obj({ Y: {}, n: {}, YES: {}, No: {}, oN: {}, OFF: {}, True: {}, false: {} }),
      ['Y', 'n', 'YES', 'No', 'oN', 'OFF', 'True', 'false'],
    ],
    ['inside array items', obj({ list: { items: obj({ off: {} }) } }), ['list[].off']],
    [
      'inside additionalProperties',
      obj({ map: { additionalProperties: obj({ yes: {} }) } }),
      ['map{}.yes'],
    ],
    ['inside anyOf', obj({ a: { anyOf: [obj({ y: {} })] } }), ['a.y']],
    ['words that only start like one', obj({ only: {}, node: {}, yesterday: {}, on_: {} }), []],
  ])('%s', (_what, schema, expected) => {
    expect(yaml11BooleanNames(schema)).toEqual(expected);
  });
});

const CRD_DIR = fileURLToPath(new URL('.', import.meta.url));
const files = readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'));

describe('the committed CRDs', () => {
  it('are the four resources', () => {
    expect(files.sort()).toEqual([
      'maxineacls.yaml',
      'maxineintentions.yaml',
      'maxineregistrations.yaml',
      'maxineservices.yaml',
    ]);
  });

  it.each(files)('%s has no property named like a YAML 1.1 boolean', (file) => {
    const crd = parse(readFileSync(join(CRD_DIR, file), 'utf8')) as {
      spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
    };
    expect(crd.spec.versions.length).toBeGreaterThan(0);
    for (const version of crd.spec.versions) {
      const schema = version.schema.openAPIV3Schema;
      // The walk reaches the spec's leaves (a broken walk would pass vacuously).
      expect(Object.keys(schema.properties ?? {})).toContain('spec');
      expect(yaml11BooleanNames(schema)).toEqual([]);
    }
  });
});
