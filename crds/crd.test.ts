import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import {
  maxineAclSchema,
  maxineIntentionSchema,
  maxineServiceSchema,
} from '../common/resources.js';
import {
  GENERATED_HEADER,
  StructuralSchemaError,
  buildCrds,
  renderCrdFiles,
  toStructuralSchema,
  type CustomResourceDefinition,
  type JSONSchemaProps,
} from './crd.js';

const CRD_DIR = fileURLToPath(new URL('.', import.meta.url));
const crds = buildCrds();
const crdByKind = new Map(crds.map((c) => [c.spec.names.kind, c]));

function crdOf(kind: string): CustomResourceDefinition {
  const crd = crdByKind.get(kind);
  if (crd === undefined) throw new Error(`no CRD for ${kind}`);
  return crd;
}
function rootSchema(kind: string): JSONSchemaProps {
  return crdOf(kind).spec.versions[0]!.schema.openAPIV3Schema;
}
function specSchema(kind: string): JSONSchemaProps {
  return rootSchema(kind).properties!.spec!;
}

// ---- (a) the committed files are what the schemas generate ----

describe('committed CRD YAML', () => {
  const files = renderCrdFiles();

  test('there is one file per kind', () => {
    expect(files.map((f) => f.file).sort()).toEqual([
      'maxineacls.yaml',
      'maxineintentions.yaml',
      'maxineregistrations.yaml',
      'maxineservices.yaml',
    ]);
  });

  test.each(files.map((f) => [f.file, f.text] as const))(
    'crds/%s matches common/resources.ts',
    (file, generated) => {
      let committed: string | undefined;
      try {
        committed = readFileSync(join(CRD_DIR, file), 'utf8');
      } catch {
        committed = undefined;
      }
      if (committed !== generated) {
        throw new Error(
          `crds/${file} is ${committed === undefined ? 'missing' : 'out of date'}: the zod schemas ` +
            'in common/resources.ts changed. Run `npm run gen:crds` and commit the result.',
        );
      }
    },
  );

  test.each(files.map((f, i) => [f.file, f.text, crds[i]!] as const))(
    '%s starts with the generated-file header and parses back to the CRD object',
    (_file, text, crd) => {
      expect(text.split('\n')[0]).toBe(GENERATED_HEADER);
      expect(parse(text)).toEqual(crd);
    },
  );
});

// ---- (b) structural-schema rules, checked on every node ----

type RawNode = Record<string, unknown>;
interface VisitedNode {
  path: string;
  node: RawNode;
  /** Inside anyOf/allOf/oneOf/not, where Kubernetes forbids `type` and friends. */
  inJunctor: boolean;
}

function isRecord(v: unknown): v is RawNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function walk(node: RawNode, path: string, inJunctor: boolean, out: VisitedNode[]): void {
  out.push({ path, node, inJunctor });
  if (isRecord(node.properties)) {
    for (const [name, child] of Object.entries(node.properties)) {
      if (isRecord(child)) walk(child, `${path}.${name}`, inJunctor, out);
    }
  }
  if (isRecord(node.additionalProperties)) {
    walk(node.additionalProperties, `${path}[*]`, inJunctor, out);
  }
  if (isRecord(node.items)) walk(node.items, `${path}[]`, inJunctor, out);
  for (const junctor of ['anyOf', 'allOf', 'oneOf'] as const) {
    const branches = node[junctor];
    if (Array.isArray(branches)) {
      branches.forEach((b, i) => {
        if (isRecord(b)) walk(b, `${path}.${junctor}[${i}]`, true, out);
      });
    }
  }
  if (isRecord(node.not)) walk(node.not, `${path}.not`, true, out);
}

function allNodes(crd: CustomResourceDefinition): VisitedNode[] {
  const out: VisitedNode[] = [];
  walk(crd.spec.versions[0]!.schema.openAPIV3Schema as RawNode, '<root>', false, out);
  return out;
}

const JS_TYPE: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === 'string',
  integer: (v) => Number.isInteger(v),
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  object: isRecord,
  array: Array.isArray,
};

/** Each check returns a problem description, or undefined when the node is fine. */
const NODE_CHECKS: readonly [string, (n: VisitedNode) => string | undefined][] = [
  [
    'has a type (or int-or-string / preserve-unknown-fields)',
    ({ node, inJunctor }) =>
      inJunctor ||
      typeof node.type === 'string' ||
      node['x-kubernetes-int-or-string'] === true ||
      node['x-kubernetes-preserve-unknown-fields'] === true
        ? undefined
        : 'no type',
  ],
  [
    'does not have both properties and additionalProperties',
    ({ node }) =>
      node.properties !== undefined && node.additionalProperties !== undefined
        ? 'both properties and additionalProperties'
        : undefined,
  ],
  [
    'has no additionalProperties: false',
    ({ node }) => (node.additionalProperties === false ? 'additionalProperties: false' : undefined),
  ],
  [
    'has no $ref, $defs or $schema',
    ({ node }) =>
      ['$ref', '$defs', 'definitions', '$schema'].find((k) => k in node)?.concat(' present'),
  ],
  [
    'has no type inside anyOf/allOf/oneOf/not',
    ({ node, inJunctor }) =>
      inJunctor && ('type' in node || 'default' in node || 'description' in node)
        ? 'type/default/description inside a junctor'
        : undefined,
  ],
  [
    'is an array with items',
    ({ node }) =>
      node.type === 'array' && !isRecord(node.items) ? 'array without items' : undefined,
  ],
  [
    'has no uniqueItems: true',
    ({ node }) => (node.uniqueItems === true ? 'uniqueItems: true' : undefined),
  ],
  [
    'uses boolean exclusiveMinimum/Maximum next to minimum/maximum (OpenAPI v3.0)',
    ({ node }) => {
      for (const [ex, bound] of [
        ['exclusiveMinimum', 'minimum'],
        ['exclusiveMaximum', 'maximum'],
      ] as const) {
        if (node[ex] === undefined) continue;
        if (typeof node[ex] !== 'boolean') return `${ex} is not a boolean`;
        if (typeof node[bound] !== 'number') return `${ex} without ${bound}`;
      }
      return undefined;
    },
  ],
  [
    'has a default of its own type, within its enum',
    ({ node }) => {
      if (node.default === undefined) return undefined;
      const ok = typeof node.type === 'string' && JS_TYPE[node.type]?.(node.default);
      if (!ok) return `default ${JSON.stringify(node.default)} is not a ${String(node.type)}`;
      if (Array.isArray(node.enum) && !node.enum.includes(node.default)) {
        return `default ${JSON.stringify(node.default)} is not in the enum`;
      }
      return undefined;
    },
  ],
  [
    'lists only declared properties as required',
    ({ node }) => {
      if (!Array.isArray(node.required)) return undefined;
      const props = isRecord(node.properties) ? node.properties : {};
      const missing = node.required.filter((r) => typeof r !== 'string' || !(r in props));
      return missing.length > 0 ? `required but undeclared: ${missing.join(', ')}` : undefined;
    },
  ],
];

const KINDS = ['MaxineService', 'MaxineIntention', 'MaxineACL'] as const;

describe.each(KINDS)('%s openAPIV3Schema is structural', (kind) => {
  const nodes = allNodes(crdOf(kind));

  test('the walk sees the whole schema', () => {
    expect(nodes.length).toBeGreaterThan(20);
  });

  test.each(NODE_CHECKS)('every node: %s', (_name, check) => {
    const problems = nodes.flatMap((n) => {
      const problem = check(n);
      return problem === undefined ? [] : [`${n.path}: ${problem}`];
    });
    expect(problems).toEqual([]);
  });

  test('root has apiVersion, kind, metadata (type only), spec (required) and status', () => {
    const root = rootSchema(kind);
    expect(root.type).toBe('object');
    expect(root.required).toEqual(['spec']);
    expect(Object.keys(root.properties!)).toEqual([
      'apiVersion',
      'kind',
      'metadata',
      'spec',
      'status',
    ]);
    expect(root.properties!.apiVersion!.type).toBe('string');
    expect(root.properties!.kind!.type).toBe('string');
    expect(root.properties!.metadata).toEqual({ type: 'object' });
    expect(root.properties!.status!.properties!.conditions!.maxItems).toBe(16);
  });
});

// CEL names that must be written escaped (`__namespace__`) in rules.
const CEL_RESERVED = new Set(
  'true false null in as break const continue else for function if import let loop package namespace return var void while'.split(
    ' ',
  ),
);

interface CelRuleSite {
  path: string;
  node: RawNode;
  rule: string;
}

function celRuleSites(crd: CustomResourceDefinition): CelRuleSite[] {
  return allNodes(crd).flatMap(({ path, node }) => {
    const rules = node['x-kubernetes-validations'];
    if (!Array.isArray(rules)) return [];
    return rules.map((r: { rule: string }) => ({ path, node, rule: r.rule }));
  });
}

function unescapeCel(name: string): string {
  const reserved = /^__(.+)__$/.exec(name);
  if (reserved !== null && CEL_RESERVED.has(reserved[1]!)) return reserved[1]!;
  return name
    .replaceAll('__underscores__', '__')
    .replaceAll('__dot__', '.')
    .replaceAll('__dash__', '-')
    .replaceAll('__slash__', '/');
}

/** What the CEL cost estimator needs to bound a value, or undefined when it is bounded. */
function unbounded(node: RawNode): string | undefined {
  if (node.type === 'string' && node.maxLength === undefined && node.enum === undefined) {
    return 'string without maxLength';
  }
  if (node.type === 'array') {
    if (node.maxItems === undefined) return 'array without maxItems';
    return isRecord(node.items) ? unbounded(node.items) : undefined;
  }
  if (node.type === 'object' && isRecord(node.additionalProperties)) {
    if (node.maxProperties === undefined) return 'map without maxProperties';
  }
  return undefined;
}

describe.each(KINDS)('%s CEL rules', (kind) => {
  const sites = celRuleSites(crdOf(kind));

  test.each(sites.map((s) => [s.path, s.rule, s] as const))(
    '%s: %s — refers to declared, bounded fields with escaped names',
    (_path, _rule, { node, rule }) => {
      const props = isRecord(node.properties) ? node.properties : {};
      const problems: string[] = [];
      for (const [, name] of rule.matchAll(/\bself\.([A-Za-z_][A-Za-z0-9_]*)/g)) {
        if (CEL_RESERVED.has(name!)) problems.push(`"${name}" must be written __${name}__`);
        const field = props[unescapeCel(name!)];
        if (!isRecord(field)) {
          problems.push(`self.${name} is not a property`);
          continue;
        }
        const why = unbounded(field);
        if (why !== undefined) problems.push(`self.${name}: ${why}`);
      }
      expect(problems).toEqual([]);
    },
  );

  test('every rule has a message', () => {
    for (const { node } of sites) {
      for (const v of node['x-kubernetes-validations'] as { message?: string }[]) {
        expect(v.message).toEqual(expect.any(String));
      }
    }
  });
});

// ---- the converter fails loudly on what it cannot make structural ----

describe('toStructuralSchema', () => {
  test.each([
    ['a union', z.union([z.string(), z.int()]), /anyOf/],
    ['a tuple', z.tuple([z.string()]), /anyOf/],
    [
      'a loose object',
      z.looseObject({ a: z.string() }),
      /both properties and additionalProperties/,
    ],
    [
      'an object with catchall',
      z.object({ a: z.string() }).catchall(z.string()),
      /both properties and additionalProperties/,
    ],
    [
      'a discriminated union',
      z.discriminatedUnion('k', [
        z.object({ k: z.literal('a'), a: z.string() }),
        z.object({ k: z.literal('b'), b: z.string() }),
      ]),
      /oneOf|anyOf/,
    ],
    ['an untyped value', z.unknown(), /no type/],
  ] as const)('rejects %s', (_name, schema, message) => {
    expect(() => toStructuralSchema(schema)).toThrow(StructuralSchemaError);
    expect(() => toStructuralSchema(schema)).toThrow(message);
  });

  test('turns positive() into minimum + boolean exclusiveMinimum', () => {
    expect(toStructuralSchema(z.number().positive())).toEqual({
      type: 'number',
      minimum: 0,
      exclusiveMinimum: true,
    });
  });

  test('bounds enum strings by their longest value and drops zod safe-integer bounds', () => {
    expect(toStructuralSchema(z.enum(['a', 'abc']))).toEqual({
      type: 'string',
      enum: ['a', 'abc'],
      maxLength: 3,
    });
    expect(toStructuralSchema(z.int().min(0))).toEqual({ type: 'integer', minimum: 0 });
  });

  test('keeps maps as additionalProperties and drops additionalProperties: false', () => {
    const s = toStructuralSchema(
      z.strictObject({ m: z.record(z.string(), z.string().max(3)).optional() }),
    );
    expect(s).toEqual({
      type: 'object',
      properties: { m: { type: 'object', additionalProperties: { type: 'string', maxLength: 3 } } },
    });
  });
});

// ---- (c) spot checks ----

describe('CRD metadata', () => {
  test.each([
    ['MaxineService', 'maxineservices', 'maxineservice', 'msvc'],
    ['MaxineIntention', 'maxineintentions', 'maxineintention', 'mint'],
    ['MaxineACL', 'maxineacls', 'maxineacl', 'macl'],
  ])('%s: plural %s, singular %s, short name %s', (kind, plural, singular, shortName) => {
    const crd = crdOf(kind);
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.metadata.name).toBe(`${plural}.maxine.io`);
    expect(crd.spec.group).toBe('maxine.io');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toEqual({
      kind,
      listKind: `${kind}List`,
      plural,
      singular,
      shortNames: [shortName],
      categories: ['maxine'],
    });
    expect(crd.spec.versions).toHaveLength(1);
    const [version] = crd.spec.versions;
    expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true });
    expect(version!.subresources).toEqual({ status: {} });
  });

  const READY_CONDITION = '.status.conditions[?(@.type=="Ready")].status';
  test.each([
    [
      'MaxineService',
      [
        ['Ready', 'string', '.status.ready'],
        ['Instances', 'integer', '.status.instances.total'],
        ['Strategy', 'string', '.spec.loadBalancing.strategy'],
        ['Valid', 'string', READY_CONDITION],
        ['Age', 'date', '.metadata.creationTimestamp'],
      ],
    ],
    [
      'MaxineIntention',
      [
        ['Destination', 'string', '.spec.destination.name'],
        ['Ready', 'string', READY_CONDITION],
        ['Age', 'date', '.metadata.creationTimestamp'],
      ],
    ],
    [
      'MaxineACL',
      [
        ['Ready', 'string', READY_CONDITION],
        ['Age', 'date', '.metadata.creationTimestamp'],
      ],
    ],
  ])('%s printer columns', (kind, columns) => {
    const actual = crdOf(kind).spec.versions[0]!.additionalPrinterColumns.map((c) => [
      c.name,
      c.type,
      c.jsonPath,
    ]);
    expect(actual).toEqual(columns);
  });
});

describe('MaxineService schema details', () => {
  const spec = specSchema('MaxineService');

  test('spec.versions is bounded (maxItems) for the weight-sum CEL rule', () => {
    expect(spec.properties!.versions!.maxItems).toBe(16);
  });

  test('the weight-sum CEL rule is on spec', () => {
    const rules = spec['x-kubernetes-validations']!.map((v) => v.rule);
    expect(rules).toContainEqual(expect.stringContaining('.map(v, v.weight).sum() == 100'));
  });

  test('strategy defaults to round-robin', () => {
    const strategy = spec.properties!.loadBalancing!.properties!.strategy!;
    expect(strategy.default).toBe('round-robin');
    expect(strategy.enum).toContain('consistent-hash');
    const yamlText = renderCrdFiles().find((f) => f.file === 'maxineservices.yaml')!.text;
    expect(yamlText).toContain('default: round-robin');
  });

  test('requestsPerSecond is > 0 in OpenAPI v3.0 form', () => {
    expect(spec.properties!.rateLimit!.properties!.requestsPerSecond).toMatchObject({
      type: 'number',
      minimum: 0,
      exclusiveMinimum: true,
      maximum: 1_000_000,
    });
  });

  test('main spec fields have descriptions', () => {
    const undescribed = Object.entries(spec.properties!)
      .filter(([, s]) => !s.description)
      .map(([name]) => name);
    expect(undescribed).toEqual([]);
  });
});

// ---- the zod schemas reject bad objects with readable messages ----

const meta = { name: 'web', namespace: 'shop' };
const service = (spec: object) => ({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineService',
  metadata: meta,
  spec,
});
const intention = (spec: object) => ({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineIntention',
  metadata: meta,
  spec,
});
const acl = (spec: object) => ({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineACL',
  metadata: meta,
  spec,
});
const aclRules = [{ services: ['shop/*'], verbs: ['discover'] }];

describe('zod schemas', () => {
  test.each([
    [
      'weights summing to 90',
      maxineServiceSchema,
      service({
        versions: [
          { name: 'v1', weight: 50 },
          { name: 'v2', weight: 40 },
        ],
      }),
      'spec.versions',
      'sum to 100',
    ],
    [
      'consistent-hash without hashKey',
      maxineServiceSchema,
      service({ loadBalancing: { strategy: 'consistent-hash' } }),
      'spec.loadBalancing.hashKey',
      'needs a hashKey',
    ],
    [
      'a health check with http and tcp',
      maxineServiceSchema,
      service({ healthCheck: { http: { path: '/healthz' }, tcp: {} } }),
      'spec.healthCheck',
      'exactly one of exec, http or tcp',
    ],
    [
      'a timeout longer than the interval',
      maxineServiceSchema,
      service({ healthCheck: { tcp: {}, intervalSeconds: 2, timeoutSeconds: 3 } }),
      'spec.healthCheck.timeoutSeconds',
      'must not exceed intervalSeconds',
    ],
    [
      'openSeconds above maxOpenSeconds',
      maxineServiceSchema,
      service({ circuitBreaker: { openSeconds: 400, maxOpenSeconds: 300 } }),
      'spec.circuitBreaker.maxOpenSeconds',
      'at least openSeconds',
    ],
    [
      'blocked without registration or discovery',
      maxineServiceSchema,
      service({ blocked: { reason: 'incident 42' } }),
      'spec.blocked',
      'registration: true and/or discovery: true',
    ],
    [
      'a port listed twice',
      maxineServiceSchema,
      service({ ports: [{ port: 80 }, { port: 80 }] }),
      'spec.ports',
      'port 80 is listed twice',
    ],
    [
      'a source with action and permissions',
      maxineIntentionSchema,
      intention({
        destination: { name: 'web' },
        sources: [
          {
            name: 'a',
            action: 'allow',
            permissions: [{ action: 'deny', http: { pathPrefix: '/' } }],
          },
        ],
      }),
      'spec.sources.0',
      'exactly one of action or permissions',
    ],
    [
      'a ServiceAccount subject without namespace',
      maxineAclSchema,
      acl({ subjects: [{ kind: 'ServiceAccount', name: 'builder' }], rules: aclRules }),
      'spec.subjects.0.namespace',
      'needs a namespace',
    ],
    [
      'an unknown spec field',
      maxineServiceSchema,
      service({ replicas: 3 }),
      'spec',
      'Unrecognized key: "replicas"',
    ],
  ] as const)('rejects %s', (_name, schema, object, path, message) => {
    const result = (schema as z.ZodType).safeParse(object);
    expect(result.success).toBe(false);
    const issues = result.error!.issues.map((i) => ({
      path: i.path.join('.'),
      message: i.message,
    }));
    expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
    // What a user sees (in the Invalid condition, or on the CLI): the message and where.
    const pretty = z.prettifyError(result.error!);
    expect(pretty).toContain(message);
    expect(pretty.replace(/\[(\d+)\]/g, '.$1')).toContain(`→ at ${path}`);
  });

  test.each([
    ['an empty service', maxineServiceSchema, service({})],
    [
      'a service using most fields',
      maxineServiceSchema,
      service({
        selector: { app: 'web' },
        ports: [{ name: 'http', port: 8080 }],
        versions: [
          { name: 'v1', weight: 90 },
          { name: 'v2', weight: 10, labels: { version: 'v2' } },
        ],
        loadBalancing: { strategy: 'consistent-hash', hashKey: 'header:x-user-id' },
        healthCheck: { http: { path: '/healthz' } },
        circuitBreaker: { openSeconds: 10 },
        rateLimit: { requestsPerSecond: 0.5, burst: 1 },
        blocked: { discovery: true, reason: 'maintenance' },
      }),
    ],
    [
      'a short check interval with the default timeout (it shrinks to the interval)',
      maxineServiceSchema,
      service({ healthCheck: { tcp: {}, intervalSeconds: 3 } }),
    ],
    [
      'a long open time with the default maxOpenSeconds (it grows to the open time)',
      maxineServiceSchema,
      service({ circuitBreaker: { openSeconds: 600 } }),
    ],
    [
      'a heartbeat block without ttlSeconds (the operator default applies)',
      maxineServiceSchema,
      service({ heartbeat: { removeAfterSeconds: 60 } }),
    ],
    [
      'an intention',
      maxineIntentionSchema,
      intention({ destination: { name: '*' }, sources: [{ name: 'api', action: 'allow' }] }),
    ],
    [
      'an ACL',
      maxineAclSchema,
      acl({
        subjects: [{ kind: 'ServiceAccount', name: 'builder', namespace: 'ci' }],
        rules: aclRules,
      }),
    ],
  ] as const)('accepts %s', (_name, schema, object) => {
    const result = (schema as z.ZodType).safeParse(object);
    expect(result.success ? 'ok' : z.prettifyError(result.error)).toBe('ok');
  });
});
