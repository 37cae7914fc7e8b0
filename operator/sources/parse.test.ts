import { describe, expect, it } from '@jest/globals';
import { FolderState } from './folder-state.js';
import { parseResourceFile } from './parse.js';

const service = (name: string, extra = '') => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata:
  name: ${name}
  namespace: shop
spec:
  ports: [{ port: 8080 }]${extra}
`;

describe('parseResourceFile', () => {
  it.each([
    ['a valid service', service('web'), 1, []],
    ['several documents', `${service('web')}---\n${service('orders')}`, 2, []],
    ['an empty document', `---\n${service('web')}---\n`, 1, []],
    [
      'weights that do not sum to 100',
      service('web', '\n  versions: [{ name: v1, weight: 60 }, { name: v2, weight: 30 }]'),
      0,
      [{ path: 'spec.versions', message: 'version weights must sum to 100 (they sum to 90)' }],
    ],
    [
      'a hash strategy without key',
      service('web', '\n  loadBalancing: { strategy: consistent-hash }'),
      0,
      [{ path: 'spec.loadBalancing.hashKey' }],
    ],
    ['an unknown field', service('web', '\n  colour: blue'), 0, [{ path: 'spec' }]],
    ['a bad name', service('Web_1'), 0, [{ path: 'metadata.name' }]],
    ['a YAML syntax error', 'kind: [unclosed', 0, [{ path: '' }]],
    [
      'the same object twice',
      `${service('web')}---\n${service('web')}`,
      1,
      [{ object: 'MaxineService/shop/web' }],
    ],
    [
      'an unknown Maxine kind',
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineThing\nmetadata: { name: x }\n',
      0,
      [{ path: 'kind' }],
    ],
  ])('%s', (_name, text, objects, issues) => {
    const parsed = parseResourceFile(text);
    expect(parsed.objects).toHaveLength(objects);
    expect(parsed.issues).toHaveLength(issues.length);
    parsed.issues.forEach((issue, i) => expect(issue).toMatchObject(issues[i]!));
  });

  it('skips objects of other API groups', () => {
    const parsed = parseResourceFile(
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\n---\n${service('web')}`,
    );
    expect(parsed).toMatchObject({ skipped: 1, issues: [] });
    expect(parsed.objects).toHaveLength(1);
  });

  it('defaults the namespace to "default"', () => {
    const parsed = parseResourceFile(
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: web }\nspec: {}\n',
    );
    expect(parsed.objects[0]?.metadata.namespace).toBe('default');
  });
});

describe('FolderState', () => {
  it('keeps the last valid objects of a file that breaks, and drops them when the file goes', () => {
    const state = new FolderState();
    state.update('a.yaml', parseResourceFile(service('web')));
    const problem = state.update('a.yaml', parseResourceFile(service('web', '\n  colour: blue')));
    expect(problem?.keptPrevious).toBe(true);
    expect([...state.declared().objects.keys()]).toEqual(['MaxineService/shop/web']);
    expect(state.fileProblems()).toHaveLength(1);
    state.remove('a.yaml');
    expect(state.declared().objects.size).toBe(0);
    expect(state.fileProblems()).toHaveLength(0);
  });

  it('resolves an object declared in two files in favour of the first file by name', () => {
    const state = new FolderState();
    state.update('b.yaml', parseResourceFile(service('web', '\n  config: { from: b }')));
    state.update('a.yaml', parseResourceFile(service('web', '\n  config: { from: a }')));
    const { objects, conflicts } = state.declared();
    expect(objects.get('MaxineService/shop/web')?.file).toBe('a.yaml');
    expect(conflicts).toMatchObject([
      {
        file: 'b.yaml',
        issues: [{ message: 'MaxineService/shop/web is already declared in a.yaml' }],
      },
    ]);
  });
});

describe('parseResourceFile: ConfigMap documents (standalone configFrom sources)', () => {
  it.each([
    [
      'kept, namespace defaulted',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings }\ndata: { a: "1" }\n',
      [{ namespace: 'default', name: 'settings', data: { a: '1' } }],
      0,
    ],
    [
      'without data: an empty one',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: s, namespace: shop }\n',
      [{ namespace: 'shop', name: 's', data: {} }],
      0,
    ],
    [
      'a value that is not a string is reported',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: s }\ndata: { port: 8080 }\n',
      undefined,
      1,
    ],
  ])('%s', (_name, text, configMaps, issues) => {
    const parsed = parseResourceFile(text);
    expect(parsed.configMaps).toEqual(configMaps);
    expect(parsed.issues).toHaveLength(issues);
    expect(parsed.skipped).toBe(0);
  });
});

describe('FolderState: the same ConfigMap declared twice', () => {
  const cm = (data: string) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings, namespace: shop }\ndata: { from: ${data} }\n`;

  it.each([
    ['read a then b', ['a.yaml', 'b.yaml']],
    ['read b then a', ['b.yaml', 'a.yaml']],
  ])('the first file by name wins and the other is reported (%s)', (_, order) => {
    const state = new FolderState();
    for (const file of order) state.update(file, parseResourceFile(cm(file[0] ?? '')));
    const { maps, conflicts } = state.configMaps();
    expect(maps.get('shop/settings')).toEqual({ from: 'a' });
    expect(conflicts).toMatchObject([
      {
        file: 'b.yaml',
        keptPrevious: false,
        issues: [
          {
            object: 'ConfigMap/shop/settings',
            path: 'metadata.name',
            message: 'ConfigMap/shop/settings is already declared in a.yaml; that one is used',
          },
        ],
      },
    ]);
  });

  it('two documents of one file: the first document wins, the second is reported by index', () => {
    const state = new FolderState();
    state.update('a.yaml', parseResourceFile(`${cm('one')}---\n${cm('two')}`));
    const { maps, conflicts } = state.configMaps();
    expect(maps.get('shop/settings')).toEqual({ from: 'one' });
    expect(conflicts).toMatchObject([
      {
        file: 'a.yaml',
        issues: [{ document: 1, message: expect.stringContaining('an earlier document') }],
      },
    ]);
  });
});

describe('parseResourceFile: a `__proto__` key is refused, not dropped silently', () => {
  it.each([
    ['spec.config', 'spec:\n  config:\n    __proto__: evil\n    A: "1"\n', 'spec.config.__proto__'],
    ['metadata.labels', 'metadata:\n  labels: { __proto__: x }\n', 'metadata.labels.__proto__'],
  ])('in %s: the file is invalid, naming the key', (_, body, path) => {
    const text =
      `apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: web, namespace: shop }\n${body}`.replace(
        'metadata: { name: web, namespace: shop }\nmetadata:\n',
        'metadata:\n  name: web\n  namespace: shop\n',
      );
    const parsed = parseResourceFile(text);
    expect(parsed.objects).toEqual([]);
    expect(parsed.issues).toMatchObject([
      { path, message: expect.stringContaining('"__proto__" cannot be a key') },
    ]);
  });

  it('`constructor` and `prototype` stay ordinary config keys', () => {
    const parsed = parseResourceFile(
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: web, namespace: shop }\nspec:\n  config: { constructor: c, prototype: p }\n',
    );
    expect(parsed.issues).toEqual([]);
    const resource = parsed.objects[0];
    expect(resource?.kind === 'MaxineService' && resource.spec.config).toEqual({
      constructor: 'c',
      prototype: 'p',
    });
  });
});
