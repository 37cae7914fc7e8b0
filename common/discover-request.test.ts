import { describe, expect, it } from '@jest/globals';
import { MaxineError } from './errors.js';
import { parsedQuery } from './discover-request.js';

describe('parsedQuery (operator and sidecar discovery)', () => {
  it.each([
    '__proto__=1',
    'zone=a&__proto__=x',
    'constructor=1',
    'toString=1',
    'hasOwnProperty=1',
    'meta=1',
    'meta.=1',
    'Zone=a',
  ])('refuses the unknown parameter of %s', (search) => {
    expect(() => parsedQuery(search)).toThrow(MaxineError);
    expect(() => parsedQuery(search)).toThrow(/Unknown query parameter/);
  });

  it.each([
    ['zone=a', { zone: 'a' }],
    ['meta.__proto__=x', { metadata: [['__proto__', 'x']] }],
    ['meta.team=core&version=v2', { version: 'v2', metadata: [['team', 'core']] }],
  ])('accepts %s', (search, filter) => {
    expect(parsedQuery(search).filter).toMatchObject(filter);
  });
});
