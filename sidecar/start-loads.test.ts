import { describe, expect, it } from '@jest/globals';
import { Server } from 'node:http';
import { chainsTo } from '../test/helpers/import-chains.js';
import { http } from '../common/node-http.js';
import { renderToYaml } from '../common/mesh/format.js';
import { regexSyntaxProblem, fullRegexMatch } from '../common/regex-safety.js';

/**
 * What the sidecar must not load at start (decision 0027): each of these is reached through
 * `require` on first use instead of a static ESM import.
 */
describe('the sidecar loads at start only what it uses at start', () => {
  it.each([
    // An ESM import of node:http reads its lazy WebSocket getters: undici, ~7 MB on Node 24+.
    ['node:http', 'common/node-http.ts'],
    // Only a YAML render of a mesh needs it.
    ['yaml', 'common/mesh/format.ts'],
    // Only a user regex (intentions' pathRegex / headers[].regex) needs it.
    ['re2js', 'common/regex-safety.ts'],
    // Only an https:// operator, API server or health probe needs it (and node:tls with it).
    ['node:https', 'common/node-http.ts'],
  ])('sidecar/main.ts reaches %s through no static import (it is required in %s)', (target) => {
    expect(chainsTo('sidecar/main.ts', target)).toEqual([]);
  });

  it('the walk finds what is there (sidecar/main.ts statically imports ws and zod)', () => {
    expect(chainsTo('sidecar/main.ts', 'ws').length).toBeGreaterThan(0);
    expect(chainsTo('sidecar/main.ts', 'zod').length).toBeGreaterThan(0);
  });

  it('the required node:http is the one ESM imports see (same classes)', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    expect(server).toBeInstanceOf(Server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/' }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(body).toBe('ok');
  });

  it.each([
    ['a+b', 'aab', true, undefined],
    ['a+b', 'aabc', false, undefined],
    ['(?=a)', 'a', false, 'lookahead'],
  ])('the lazily required RE2 engine: %s against %s', (pattern, value, matches, problem) => {
    if (problem === undefined) {
      expect(regexSyntaxProblem(pattern)).toBeUndefined();
      expect(fullRegexMatch(pattern, value)).toBe(matches);
    } else expect(regexSyntaxProblem(pattern)).toEqual(expect.any(String));
  });

  it('the lazily required yaml renders a mesh as a YAML stream', () => {
    const text = renderToYaml({
      mesh: 'istio',
      objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }],
      differences: [],
    } as unknown as Parameters<typeof renderToYaml>[0]);
    expect(text).toContain('---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n');
  });
});
