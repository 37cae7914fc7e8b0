import { describe, expect, it } from '@jest/globals';
import { secretDigest } from '../../common/config-sources.js';
import { resolvedOf } from './config-sources.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('resolvedOf: what the operator keeps of a watched object', () => {
  const cases: {
    name: string;
    kind: 'ConfigMap' | 'Secret';
    object: { metadata: { uid: string }; data?: Record<string, string> };
    kept: unknown;
  }[] = [
    {
      name: 'a ConfigMap: its data',
      kind: 'ConfigMap',
      object: { metadata: { uid: 'u1' }, data: { a: '1' } },
      kept: { kind: 'ConfigMap', data: { a: '1' } },
    },
    {
      name: 'a ConfigMap without data: nothing',
      kind: 'ConfigMap',
      object: { metadata: { uid: 'u1' } },
      kept: { kind: 'ConfigMap', data: {} },
    },
    {
      name: 'a Secret: one uid-keyed digest per key, no value',
      kind: 'Secret',
      object: { metadata: { uid: 'u2' }, data: { password: b64('hunter2') } },
      kept: { kind: 'Secret', digests: { password: secretDigest('u2', 'hunter2') } },
    },
  ];
  it.each(cases)('$name', ({ kind, object, kept }) => {
    const got = resolvedOf(kind, object);
    expect(got).toEqual(kept);
    expect(JSON.stringify(got)).not.toContain('hunter2');
    expect(JSON.stringify(got)).not.toContain(b64('hunter2'));
  });
});
