/**
 * docs/sidecar.md stays true to the sidecar: every setting it reads is in the configuration
 * table, the links to its call-path section resolve, and its "Not yet" section no longer calls
 * the outbound proxy later work.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { sidecarEnvSchema } from '../sidecar/config.js';

const doc = readFileSync(new URL('../docs/sidecar.md', import.meta.url), 'utf8');
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

const section = (title: string): string => {
  const start = doc.indexOf(`\n## ${title}\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
};

describe('docs/sidecar.md', () => {
  it.each(Object.keys(sidecarEnvSchema.shape))('the configuration table lists %s', (name) => {
    expect(section('Configuration (environment)')).toContain(`\`${name}\``);
  });

  it('"Not yet" says what the proxy still lacks, not that the proxy is later work', () => {
    const notYet = section('Not yet');
    expect(notYet).not.toMatch(/outbound proxy[^.]*later work/s);
    expect(notYet).toContain('[Calling other services](#calling-other-services)');
    expect(notYet).toMatch(/WebSocket/);
    expect(notYet).toMatch(/half-closes/);
  });

  it('the README points to "Calling other services" instead of listing missing enforcement', () => {
    expect(doc).toContain('\n## Calling other services\n');
    expect(readme).toContain('(docs/sidecar.md#calling-other-services)');
    expect(readme).not.toMatch(/Not yet here \(tracked as issues\): its enforcement/);
  });
});
