import { describe, expect, it } from '@jest/globals';
import { parseMaxineResource, protoKeyPath } from './resources.js';

/** A MaxineService as the API server's JSON gives it (JSON.parse keeps `__proto__` as own). */
const service = (spec: string) =>
  JSON.parse(
    `{"apiVersion":"maxine.io/v1alpha1","kind":"MaxineService","metadata":{"name":"web","namespace":"shop"},"spec":${spec}}`,
  ) as unknown;

describe('protoKeyPath', () => {
  it.each([
    ['none', '{"a":{"b":[1,{"c":2}]}}', undefined],
    ['top level', '{"__proto__":1}', ['__proto__']],
    ['nested', '{"a":{"b":{"__proto__":"x"}}}', ['a', 'b', '__proto__']],
    ['in an array', '{"a":[{"ok":1},{"__proto__":{}}]}', ['a', 1, '__proto__']],
    ['constructor is a key like any other', '{"constructor":"c","prototype":"p"}', undefined],
  ])('%s', (_, json, path) => {
    expect(protoKeyPath(JSON.parse(json))).toEqual(path);
  });
});

describe('parseMaxineResource (the Kubernetes source parses watched objects with it)', () => {
  it('refuses spec.config.__proto__ with its path instead of dropping it', () => {
    const parsed = parseMaxineResource(service('{"config":{"__proto__":"evil","A":"1"}}'));
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues).toMatchObject([
      { path: ['spec', 'config', '__proto__'], message: expect.stringContaining('__proto__') },
    ]);
  });

  it('parses constructor and prototype config keys as data', () => {
    const parsed = parseMaxineResource(service('{"config":{"constructor":"c","prototype":"p"}}'));
    expect(
      parsed.success && parsed.data.kind === 'MaxineService' && parsed.data.spec.config,
    ).toEqual({ constructor: 'c', prototype: 'p' });
  });
});
