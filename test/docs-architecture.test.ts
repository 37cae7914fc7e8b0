/**
 * docs/architecture.md is a map of the tree: every repository path it names (in backticks, in
 * its diagram, or as a relative link) must exist, so a move or a rename that forgets the map
 * fails here instead of sending a newcomer to a file that is gone.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const ROOT = join(import.meta.dirname, '..');
const DOC = 'docs/architecture.md';

/** Top-level folders of the repository (the first segment of a path worth checking). */
const TOP = readdirSync(ROOT, { withFileTypes: true })
  .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
  .map((e) => e.name);

/**
 * The repository paths a markdown text names, relative to the root: backticked tokens that look
 * like paths (a slash or a file extension, no spaces, no glob, not a URL path), bare words
 * starting with a top-level folder, and relative link targets (resolved from `docFile`).
 */
function pathsIn(text: string, docFile: string, top: readonly string[]): Set<string> {
  const found = new Set<string>();
  for (const [, token = ''] of text.matchAll(/`([^`\s]+)`/g)) {
    if (token.startsWith('/') || token.includes('*') || token.includes(':')) continue;
    if (
      /^[\w.-]+(\/[\w.-]*)+$/.test(token) ||
      /^[\w-]+(\.[\w-]+)*\.(ts|js|md|json|ya?ml)$/.test(token)
    )
      found.add(token);
  }
  const bare = new RegExp(`(?<![\\w./-])(?:${top.join('|')})/[\\w./-]*[\\w/]`, 'g');
  for (const [match] of text.matchAll(bare)) found.add(match);
  for (const [, target = ''] of text.matchAll(/\]\(([^)\s#]+)(#[^)]*)?\)/g)) {
    if (/^[a-z]+:/i.test(target)) continue;
    found.add(normalize(join(dirname(docFile), target)).replace(/\\/g, '/'));
  }
  return found;
}

describe('docs/architecture.md', () => {
  const text = readFileSync(join(ROOT, DOC), 'utf8');
  const paths = [...pathsIn(text, DOC, TOP)].sort();

  it('names the places a newcomer looks for', () => {
    // The one-hop answers the map exists for.
    for (const expected of [
      'operator/reconciler.ts',
      'operator/http/fast-path.ts',
      'sidecar/server.ts',
      'sidecar/health/checks.ts',
      'common/mesh/istio-traffic.ts',
      'operator/auth/authenticator.ts',
      'operator/policy/access.ts',
      'operator/http/address-limit.ts',
      'operator/telemetry/audit.ts',
    ])
      expect(paths).toContain(expected);
  });

  it.each(paths.map((p) => [p]))('%s exists', (path) => {
    expect(existsSync(join(ROOT, path))).toBe(true);
  });
});

describe('pathsIn', () => {
  it.each([
    ['`operator/reconciler.ts`', ['operator/reconciler.ts']],
    ['`README.md` and `pino`', ['README.md']],
    ['`GET /api/v1/resources`, `*.test.ts`, `localhost:7711`', []],
    ['diagram: sidecar/mirror.ts ─▶ sidecar/server.ts', ['sidecar/mirror.ts', 'sidecar/server.ts']],
    [
      '[decision](decisions/0002-x.md#why) [site](https://example.com/a)',
      ['docs/decisions/0002-x.md'],
    ],
    ['`operator/gone.ts`', ['operator/gone.ts']],
  ])('%s', (text, expected) => {
    expect([...pathsIn(text, DOC, ['operator', 'sidecar', 'common'])].sort()).toEqual(
      [...expected].sort(),
    );
  });
});
