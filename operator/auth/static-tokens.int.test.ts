import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MaxineError } from '../../common/errors.js';
import { StaticTokens } from './static-tokens.js';

let dir: string;
const alice = randomBytes(24).toString('base64url');
const ci = randomBytes(24).toString('base64url');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-tokens-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(text: string): Promise<StaticTokens> {
  const file = join(dir, `${randomBytes(4).toString('hex')}.yaml`);
  await writeFile(file, text);
  return StaticTokens.load(file);
}

async function problem(text: string): Promise<string> {
  try {
    await load(text);
    return 'loaded';
  } catch (e) {
    if (e instanceof MaxineError) return `${e.code}: ${e.message}`;
    throw e;
  }
}

describe('StaticTokens', () => {
  it('knows tokens given by hash or in plain, with their groups', async () => {
    const sha = createHash('sha256').update(ci).digest('hex');
    const tokens = await load(`tokens:
  - { sha256: ${sha}, user: ci, groups: [deployers] }
  - { token: ${alice}, user: alice, groups: [platform-team] }
`);
    expect(tokens.identify(ci)).toEqual({ kind: 'User', name: 'ci', groups: ['deployers'] });
    expect(tokens.identify(alice)).toEqual({
      kind: 'User',
      name: 'alice',
      groups: ['platform-team'],
    });
    expect(() => tokens.identify('nope')).toThrow('Unknown token');
    expect(() => tokens.identify(`${alice}x`)).toThrow(MaxineError);
  });

  it.each([
    ['not YAML', 'tokens: [', /not YAML/],
    [
      'both hash and token',
      `tokens: [{ sha256: ${'a'.repeat(64)}, token: ${alice}, user: x }]`,
      /exactly one of sha256 or token/,
    ],
    ['a short token', 'tokens: [{ token: short, user: x }]', /at least 16 characters/],
    ['a bad hash', 'tokens: [{ sha256: xyz, user: x }]', /hex SHA-256/],
    [
      'an unknown field',
      `tokens: [{ token: ${alice}, user: x, admin: true }]`,
      /admin|Unrecognized/,
    ],
  ])('refuses a file with %s, saying where', async (_what, text, reason) => {
    const message = await problem(text);
    expect(message).toMatch(/^VALIDATION_FAILED: /);
    expect(message).toMatch(reason);
  });
});
