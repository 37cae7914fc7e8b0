/**
 * untilCrdsEstablished (e2e/lib/crds.ts) against a scripted kubectl: the answers a fresh API
 * server gives right after `kubectl apply` (the CRD not found, then found without conditions,
 * then Established), which `kubectl wait` fails on at the first.
 */
import { describe, expect, it } from '@jest/globals';
import { applyCrds, notEstablished, untilCrdsEstablished } from './crds.js';
import type { KubectlRun } from './crds.js';

const crd = (name: string, established?: 'True' | 'False') => ({
  metadata: { name },
  ...(established !== undefined && {
    status: { conditions: [{ type: 'Established', status: established }] },
  }),
});
const ok = (v: unknown) => ({ code: 0, stdout: JSON.stringify(v), stderr: '' });
const notFound = {
  code: 1,
  stdout: '',
  stderr: 'Error from server (NotFound): customresourcedefinitions "a.maxine.io" not found',
};

/** A kubectl that answers `get` with `answers` in turn (the last one from then on). */
function scripted(answers: Awaited<ReturnType<KubectlRun>>[]) {
  const calls: string[][] = [];
  const run: KubectlRun = (args) => {
    calls.push(args);
    if (args[0] === 'apply')
      return Promise.resolve({
        code: 0,
        stdout:
          'customresourcedefinition.apiextensions.k8s.io/a.maxine.io\ncustomresourcedefinition.apiextensions.k8s.io/b.maxine.io\n',
        stderr: '',
      });
    const gets = calls.filter((c) => c[0] === 'get').length;
    return Promise.resolve(answers[Math.min(gets, answers.length) - 1]!);
  };
  return { run, calls };
}

describe('notEstablished', () => {
  it.each([
    ['one object, Established', crd('a', 'True'), []],
    ['one object, no conditions yet', crd('a'), ['a']],
    ['a list, one not yet', { items: [crd('a', 'True'), crd('b', 'False')] }, ['b']],
    ['a list, all Established', { items: [crd('a', 'True'), crd('b', 'True')] }, []],
  ])('%s', (_what, json, pending) => {
    expect(notEstablished(JSON.stringify(json))).toEqual(pending);
  });
});

describe('untilCrdsEstablished', () => {
  it('waits through "not found" and "no conditions yet" until every CRD named is Established', async () => {
    const k = scripted([
      notFound,
      ok({ items: [crd('a'), crd('b')] }),
      ok({ items: [crd('a', 'True'), crd('b')] }),
      ok({ items: [crd('a', 'True'), crd('b', 'True')] }),
    ]);
    await untilCrdsEstablished(k.run, ['crd/a', 'crd/b'], 5_000, 1);
    expect(k.calls).toHaveLength(4);
    expect(k.calls[0]).toEqual(['get', 'crd/a', 'crd/b', '-o', 'json']);
  });

  it.each([
    ['kubectl keeps failing', notFound, /within 50 ms \(Error from server \(NotFound\)/],
    ['a CRD never Established', ok({ items: [crd('a', 'True'), crd('b')] }), /not yet: b\)/],
  ])('gives up after its timeout, saying why: %s', async (_what, answer, message) => {
    const k = scripted([answer]);
    await expect(untilCrdsEstablished(k.run, ['crd/a', 'crd/b'], 50, 5)).rejects.toThrow(message);
  });

  it('applyCrds waits for exactly the CRDs kubectl apply named', async () => {
    const k = scripted([notFound, ok({ items: [crd('a', 'True'), crd('b', 'True')] })]);
    await applyCrds(k.run, '/crds', { serverSide: true, timeoutMs: 5_000 });
    expect(k.calls[0]).toEqual(['apply', '--server-side', '-f', '/crds', '-o', 'name']);
    expect(k.calls.at(-1)).toEqual([
      'get',
      'customresourcedefinition.apiextensions.k8s.io/a.maxine.io',
      'customresourcedefinition.apiextensions.k8s.io/b.maxine.io',
      '-o',
      'json',
    ]);
  });
});
