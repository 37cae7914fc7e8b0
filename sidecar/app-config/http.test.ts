import { describe, expect, it } from '@jest/globals';
import { MaxineError } from '../../common/errors.js';
import { matchesEtag, parseConfigQuery } from './http.js';
import type { ConfigQuery } from './http.js';

const ok: [string, ConfigQuery][] = [
  ['', {}],
  ['version=3', { version: 3 }],
  ['wait=30s&version=3', { waitMs: 30_000, version: 3 }],
  ['wait=500ms&version=0', { waitMs: 500, version: 0 }],
  ['wait=2&version=1', { waitMs: 2000, version: 1 }],
  ['wait=1m&version=1', { waitMs: 60_000, version: 1 }],
  ['wait=10m&version=1', { waitMs: 60_000, version: 1 }],
  ['other=x', {}],
];

const bad: [string, string][] = [
  ['wait=soon&version=1', 'wait'],
  ['wait=-1s&version=1', 'wait'],
  ['wait=1h&version=1', 'wait'],
  ['wait=1.5s&version=1', 'wait'],
  ['wait=30s', 'version'],
  ['wait=30s&version=-1', 'version'],
  ['wait=30s&version=x', 'version'],
  ['version=1e3', 'version'],
];

describe('parseConfigQuery', () => {
  it.each(ok)('%s', (search, expected) => {
    expect(parseConfigQuery(search, 60_000)).toEqual(expected);
  });

  it.each(bad)('%s is refused naming %s', (search, param) => {
    let caught: unknown;
    try {
      parseConfigQuery(search, 60_000);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MaxineError);
    const e = caught as MaxineError;
    expect(e.status).toBe(400);
    expect(e.toBody().error).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: { issues: [{ path: param }] },
    });
  });
});

describe('matchesEtag', () => {
  it.each([
    [undefined, false],
    ['"sha256:a"', true],
    ['W/"sha256:a"', true],
    ['"x", "sha256:a"', true],
    ['*', true],
    ['"sha256:b"', false],
    ['sha256:a', false],
  ])('%s → %s', (header, expected) => {
    expect(matchesEtag(header, '"sha256:a"')).toBe(expected);
  });
});
