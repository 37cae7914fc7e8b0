import { describe, expect, it } from '@jest/globals';
import { discoveryScope } from './scope.js';

describe('discoveryScope', () => {
  it.each([
    {
      name: 'cluster scope filters nothing',
      scope: 'cluster',
      deps: [{ name: 'x', namespace: 'b' }],
      want: undefined,
    },
    {
      name: 'no spec yet: the own namespace',
      scope: 'namespace',
      deps: undefined,
      want: ['shop/*'],
    },
    {
      name: 'dependencies in the own namespace add nothing',
      scope: 'namespace',
      deps: [{ name: 'orders' }, { name: 'cart', namespace: 'shop' }],
      want: ['shop/*'],
    },
    {
      name: 'dependencies elsewhere are added once, sorted',
      scope: 'namespace',
      deps: [
        { name: 'ledger', namespace: 'pay' },
        { name: 'auth', namespace: 'iam' },
        { name: 'ledger', namespace: 'pay' },
      ],
      want: ['iam/auth', 'pay/ledger', 'shop/*'],
    },
    {
      name: 'a namespace that merely starts with the own name is another namespace',
      scope: 'namespace',
      deps: [{ name: 'x', namespace: 'shopping' }],
      want: ['shop/*', 'shopping/x'],
    },
  ] as const)('$name', ({ scope, deps, want }) => {
    const spec = deps === undefined ? undefined : { dependencies: [...deps] };
    expect(discoveryScope(scope, 'shop', spec)).toEqual(want);
  });
});
