import { describe, expect, test } from '@jest/globals';
import type { z } from 'zod';
import { buildCrds, type JSONSchemaProps } from '../crds/crd.js';
import { INVALID_REGEX_MESSAGE, fullRegexMatch, regexSyntaxProblem } from './regex-safety.js';
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

// ---- 3. regular expressions: RE2 syntax, matched in linear time ----

/** Valid RE2. The nested or overlapping repetitions are fine: RE2 matches them in linear time. */
const VALID = [
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
  '[(?=]', // three characters inside a class
  '\\(?=', // an optional "(", then "="
  'a{,3}', // not a repetition in RE2: literal characters
  '(a+)+',
  '(a*)*',
  '(x|y+){2,}',
  '/(a|a)*b',
  '([a-z]+/)*',
];

/** Not RE2: lookaround, backreferences, and syntax errors. */
const INVALID: [string, string][] = [
  ['(?=a)b', 'invalid or unsupported Perl syntax'],
  ['a(?!b)', 'invalid or unsupported Perl syntax'],
  ['(?<=a)b', 'invalid named capture'],
  ['(?<!a)b', 'invalid named capture'],
  ['(a)\\1', 'invalid escape sequence'],
  ['(?<x>a)\\k<x>', 'invalid escape sequence'],
  ['[\\1]', 'invalid escape sequence'],
  ['a++', 'invalid nested repetition operator'],
  ['(', 'missing closing )'],
  ['[', 'missing closing ]'],
];

describe('regexSyntaxProblem', () => {
  test.each(VALID)('accepts %s', (pattern) => {
    expect(regexSyntaxProblem(pattern)).toBeUndefined();
  });

  test.each(INVALID)('rejects %s: %s', (pattern, problem) => {
    expect(regexSyntaxProblem(pattern)).toContain(problem);
  });
});

describe('fullRegexMatch', () => {
  test.each([
    ['/(a|a)*b', '/aab', true],
    ['/(a|a)*b', '/aa', false],
    ['/users/[0-9]+', '/users/42', true],
    ['/users/[0-9]+', '/users/42/x', false], // the whole value
    ['/users/[0-9]+', 'x/users/42', false],
    ['a|b', 'ab', false], // alternation inside the anchors
  ])('%s on %s: %s', (pattern, value, expected) => {
    expect(fullRegexMatch(pattern, value)).toBe(expected);
  });

  test('matches an exponential-in-backtracking pattern in linear time', () => {
    // Node's backtracking RegExp takes seconds on 28 characters of this input.
    for (const pattern of ['/(a|a)*b', '(a+)+$', '(a*)*b']) {
      const value = '/' + 'a'.repeat(2047);
      const started = performance.now();
      expect(fullRegexMatch(pattern, value)).toBe(false);
      expect(performance.now() - started).toBeLessThan(200);
    }
  });
});

describe('MaxineIntention regexes', () => {
  const where = [
    ['pathRegex', (p: string) => withHttp({ pathRegex: p }), `${HTTP}.pathRegex`],
    ['header regex', (p: string) => withHeader({ name: 'x-a', regex: p }), `${HEADER}.regex`],
  ] as const;

  describe.each(where)('%s', (_field, make, path) => {
    test.each(VALID)('accepts %s', (pattern) => {
      expectAccepted(maxineIntentionSchema, make(pattern));
    });

    test.each(INVALID)('rejects %s', (pattern, problem) => {
      expectRejected(maxineIntentionSchema, make(pattern), path, INVALID_REGEX_MESSAGE);
      expectRejected(maxineIntentionSchema, make(pattern), path, problem);
    });

    test('rejects a pattern longer than 1024 characters', () => {
      expectRejected(maxineIntentionSchema, make('a'.repeat(1025)), path, '<=1024');
    });
  });

  test('the message names the rule', () => {
    expect(INVALID_REGEX_MESSAGE).toBe(
      'must be an RE2 regular expression (no lookaround or backreferences)',
    );
  });

  test('the CRD documents the zod-only rule and bounds both fields', () => {
    for (const node of [httpMatch().properties!.pathRegex!, headerMatch().properties!.regex!]) {
      expect(node.maxLength).toBe(1024);
      expect(node.description).toContain('RE2 syntax (no lookaround or backreferences)');
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
