import { describe, expect, test } from '@jest/globals';
import type { z } from 'zod';
import { buildCrds, type JSONSchemaProps } from '../crds/crd.js';
import { UNSAFE_REGEX_MESSAGE, isSafeRegex, regexSafetyProblem } from './regex-safety.js';
import { maxineAclSchema, maxineIntentionSchema } from './resources.js';
import { expectAccepted, issuesOf } from '../test/helpers/schema.js';

// ---- helpers ----

const meta = { name: 'policy', namespace: 'shop' };
const acl = (subject: object) => ({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineACL',
  metadata: meta,
  spec: { subjects: [subject], rules: [{ services: ['shop/*'], verbs: ['discover'] }] },
});
const intention = (spec: object) => ({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineIntention',
  metadata: meta,
  spec,
});
/** An intention whose only source has one permission with this HTTP match. */
const withHttp = (http: object) =>
  intention({
    destination: { name: 'web' },
    sources: [{ name: 'api', permissions: [{ action: 'allow', http }] }],
  });
const withHeader = (header: object) => withHttp({ headers: [header] });

const HTTP = 'spec.sources.0.permissions.0.http';
const HEADER = `${HTTP}.headers.0`;

function expectRejected(schema: z.ZodType, object: unknown, path: string, message: string): void {
  expect(issuesOf(schema, object)).toContainEqual({
    path,
    message: expect.stringContaining(message),
  });
}

// The CRDs as the generator builds them, to check that each zod rule has its CEL twin.
const crds = buildCrds();
function spec(kind: string): JSONSchemaProps {
  const crd = crds.find((c) => c.spec.names.kind === kind);
  if (crd === undefined) throw new Error(`no CRD for ${kind}`);
  return crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
}
const aclSubject = (): JSONSchemaProps => spec('MaxineACL').properties!.subjects!.items!;
const source = (): JSONSchemaProps => spec('MaxineIntention').properties!.sources!.items!;
const httpMatch = (): JSONSchemaProps => source().properties!.permissions!.items!.properties!.http!;
const headerMatch = (): JSONSchemaProps => httpMatch().properties!.headers!.items!;
const celOf = (node: JSONSchemaProps) => node['x-kubernetes-validations'] ?? [];

// ---- 1. ACL subjects: namespace only on ServiceAccounts ----

describe('MaxineACL subject namespace', () => {
  const NOT_SA = 'namespace applies only to ServiceAccount subjects';
  const SA_NEEDS = 'a ServiceAccount subject needs a namespace';

  test.each([
    ['a ServiceAccount with a namespace', { kind: 'ServiceAccount', name: 'ci', namespace: 'x' }],
    ['a User without a namespace', { kind: 'User', name: 'alice' }],
    ['a Group without a namespace', { kind: 'Group', name: 'system:authenticated' }],
  ])('accepts %s', (_name, subject) => {
    expectAccepted(maxineAclSchema, acl(subject));
  });

  test.each([
    ['a User with a namespace', { kind: 'User', name: 'alice', namespace: 'shop' }, NOT_SA],
    ['a Group with a namespace', { kind: 'Group', name: 'devs', namespace: 'shop' }, NOT_SA],
    ['a ServiceAccount without a namespace', { kind: 'ServiceAccount', name: 'ci' }, SA_NEEDS],
  ])('rejects %s', (_name, subject, message) => {
    expectRejected(maxineAclSchema, acl(subject), 'spec.subjects.0.namespace', message);
  });

  test('the CRD carries both rules as CEL, with the same messages', () => {
    expect(celOf(aclSubject())).toEqual([
      { rule: "self.kind != 'ServiceAccount' || has(self.__namespace__)", message: SA_NEEDS },
      { rule: "self.kind == 'ServiceAccount' || !has(self.__namespace__)", message: NOT_SA },
    ]);
  });
});

// ---- 2. header matchers: at most one condition ----

describe('MaxineIntention header match conditions', () => {
  const ONE_OF = 'only one of present, exact, prefix, suffix, contains, regex may be set';

  test.each([
    ['no condition (the header is present)', { name: 'x-user' }],
    ['present: true', { name: 'x-user', present: true }],
    ['present: false (the header is absent)', { name: 'x-user', present: false }],
    ['exact', { name: 'x-user', exact: 'alice' }],
    ['prefix', { name: 'x-user', prefix: 'al' }],
    ['suffix', { name: 'x-user', suffix: 'ce' }],
    ['contains', { name: 'x-user', contains: 'lic' }],
    ['regex', { name: 'x-user', regex: '[a-z]+' }],
    ['an inverted condition', { name: 'x-user', exact: 'bob', invert: true }],
    ['an inverted empty condition (the header is absent)', { name: 'x-user', invert: true }],
  ])('accepts %s', (_name, header) => {
    expectAccepted(maxineIntentionSchema, withHeader(header));
  });

  test.each([
    ['exact and prefix', { name: 'x-a', exact: 'a', prefix: 'b' }],
    ['present and regex', { name: 'x-a', present: true, regex: 'a' }],
    ['suffix and contains', { name: 'x-a', suffix: 'a', contains: 'b' }],
    ['an empty exact and an empty prefix', { name: 'x-a', exact: '', prefix: '' }],
    [
      'all six',
      {
        name: 'x-a',
        present: true,
        exact: 'a',
        prefix: 'a',
        suffix: 'a',
        contains: 'a',
        regex: 'a',
      },
    ],
  ])('rejects %s', (_name, header) => {
    expectRejected(maxineIntentionSchema, withHeader(header), HEADER, ONE_OF);
  });

  test('the CRD carries the rule as CEL, counting the same six fields', () => {
    const fields = ['present', 'exact', 'prefix', 'suffix', 'contains', 'regex'];
    expect(celOf(headerMatch())).toEqual([
      {
        rule: fields.map((f) => `(has(self.${f}) ? 1 : 0)`).join(' + ') + ' <= 1',
        message: ONE_OF,
      },
    ]);
    for (const f of fields) expect(headerMatch().properties).toHaveProperty(f);
  });

  test('every field the CEL rule reads is bounded (maxLength, maxItems up the tree)', () => {
    for (const [name, prop] of Object.entries(headerMatch().properties!)) {
      if (prop.type === 'string')
        expect([name, prop.maxLength]).toEqual([name, expect.any(Number)]);
    }
    expect(source().properties!.permissions!.maxItems).toBe(64);
    expect(httpMatch().properties!.headers!.maxItems).toBe(32);
    expect(spec('MaxineIntention').properties!.sources!.maxItems).toBe(256);
  });
});

// ---- 3. regular expressions: RE2-compatible, no nested quantifiers ----

const SAFE = [
  '^/api/v[0-9]+/.*$',
  '[a-z]+',
  '(foo|bar)/[0-9]{1,4}',
  '\\d+',
  '/users/[0-9]+',
  'v[0-9]+',
  '.*',
  '(?:foo|bar)*',
  '(a{3})+',
  '(/v[0-9]+)?/users',
  '(/[a-z]+){1}',
  'a+?b*?',
  '(?<version>v[0-9]+)',
  '\\\\1', // an escaped backslash, then "1"
  '[\\1]', // an octal escape inside a class
  '[(?=]', // three characters inside a class
  '\\(?=', // an optional "(", then "="
  'a{,3}', // not a quantifier without the u flag: literal characters
];

const UNSAFE: [string, string][] = [
  ['(a+)+', 'nested quantifier "(a+)+" at 0'],
  ['(a*)*', 'nested quantifier "(a*)*" at 0'],
  ['(x|y+){2,}', 'nested quantifier "(x|y+){2,}" at 0'],
  ['(a?)+', 'nested quantifier "(a?)+" at 0'],
  ['(a{1,3})*', 'nested quantifier "(a{1,3})*" at 0'],
  ['(a{2,})+', 'nested quantifier "(a{2,})+" at 0'],
  ['(?:a+)+', 'nested quantifier "(?:a+)+" at 0'],
  ['^/x/((a)+)+$', 'nested quantifier "((a)+)+" at 4'],
  ['(a+){3}', 'nested quantifier "(a+){3}" at 0'],
  ['(a+?)+?', 'nested quantifier "(a+?)+?" at 0'],
  ['([a-z]+/)*', 'nested quantifier "([a-z]+/)*" at 0'],
  ['(?=a)b', 'lookahead "(?=" at 0'],
  ['a(?!b)', 'lookahead "(?!" at 1'],
  ['(?<=a)b', 'lookbehind "(?<=" at 0'],
  ['(?<!a)b', 'lookbehind "(?<!" at 0'],
  ['(a)\\1', 'backreference "\\1" at 3'],
  ['(a)(b)(c)(d)(e)(f)(g)(h)(i)\\9', 'backreference "\\9" at 27'],
  ['(?<x>a)\\k<x>', 'backreference "\\k<" at 7'],
];

describe('regexSafetyProblem', () => {
  test.each(SAFE)('accepts %s', (pattern) => {
    expect(new RegExp(pattern)).toBeInstanceOf(RegExp); // the fixture itself is valid JS
    expect(regexSafetyProblem(pattern)).toBeUndefined();
    expect(isSafeRegex(pattern)).toBe(true);
  });

  test.each(UNSAFE)('rejects %s: %s', (pattern, problem) => {
    expect(new RegExp(pattern)).toBeInstanceOf(RegExp);
    expect(regexSafetyProblem(pattern)).toBe(problem);
    expect(isSafeRegex(pattern)).toBe(false);
  });

  test.each(['(', ')', 'a)(', '[', '\\', '(?', '{1,'])(
    'answers without throwing on the malformed %s',
    (pattern) => {
      expect(() => regexSafetyProblem(pattern)).not.toThrow();
    },
  );

  test('is fast on a long hostile pattern', () => {
    const pattern = '('.repeat(500) + 'a+' + ')+'.repeat(500);
    const started = performance.now();
    expect(regexSafetyProblem(pattern)).toMatch(/^nested quantifier/);
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe('MaxineIntention regexes', () => {
  const where = [
    ['pathRegex', (p: string) => withHttp({ pathRegex: p }), `${HTTP}.pathRegex`],
    ['header regex', (p: string) => withHeader({ name: 'x-a', regex: p }), `${HEADER}.regex`],
  ] as const;

  describe.each(where)('%s', (_field, make, path) => {
    test.each(SAFE)('accepts %s', (pattern) => {
      expectAccepted(maxineIntentionSchema, make(pattern));
    });

    test.each(UNSAFE)('rejects %s', (pattern, problem) => {
      expectRejected(maxineIntentionSchema, make(pattern), path, UNSAFE_REGEX_MESSAGE);
      expectRejected(maxineIntentionSchema, make(pattern), path, problem);
    });

    test('rejects a pattern that does not compile (and only says so)', () => {
      expect(issuesOf(maxineIntentionSchema, make('('))).toEqual([
        { path, message: 'must be a valid regular expression' },
      ]);
    });

    test('rejects a pattern longer than 1024 characters', () => {
      expectRejected(maxineIntentionSchema, make('a'.repeat(1025)), path, '<=1024');
    });
  });

  test('the message names the rule', () => {
    expect(UNSAFE_REGEX_MESSAGE).toBe(
      'must be an RE2-compatible regular expression without nested quantifiers (no lookaround or backreferences)',
    );
  });

  test('the CRD documents the zod-only rule and bounds both fields', () => {
    for (const node of [httpMatch().properties!.pathRegex!, headerMatch().properties!.regex!]) {
      expect(node.maxLength).toBe(1024);
      expect(node.description).toContain(
        'without lookaround, backreferences or nested quantifiers',
      );
      expect(node.description).toContain('reports the object Invalid');
    }
  });
});

// ---- 4. intention namespaces ----

describe('MaxineIntention namespaces', () => {
  test.each([
    ['a destination in another namespace', { name: 'web', namespace: 'other' }, undefined],
    ['a source in any namespace', { name: 'web' }, { name: 'api', namespace: '*' }],
    ['a source and destination without namespaces', { name: 'web' }, { name: 'api' }],
  ])('accepts %s', (_name, destination, src) => {
    expectAccepted(
      maxineIntentionSchema,
      intention({ destination, sources: [{ ...(src ?? { name: 'api' }), action: 'allow' }] }),
    );
  });

  test('rejects "*" as the destination namespace', () => {
    expectRejected(
      maxineIntentionSchema,
      intention({
        destination: { name: 'web', namespace: '*' },
        sources: [{ name: 'api', action: 'allow' }],
      }),
      'spec.destination.namespace',
      '',
    );
  });

  test('the descriptions state the default namespace', () => {
    const props = spec('MaxineIntention').properties!;
    expect(props.destination!.properties!.namespace!.description).toBe(
      "Namespace of the destination service (default: the intention's own namespace).",
    );
    expect(source().properties!.namespace!.description).toBe(
      'Namespace of the caller, or "*" (default: the intention\'s own namespace).',
    );
  });
});
