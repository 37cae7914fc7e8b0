/**
 * Static bearer tokens for standalone mode (and for break-glass access): a YAML or JSON file
 * listing who each token is. Entries give the token's SHA-256 (hex), so the file holds no
 * secret; a plain `token` is accepted for a first try and hashed at load. Lookups hash the
 * presented token and compare digests, so timing says nothing about a near miss.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { MaxineError, validationError } from '../../common/errors.js';
import type { JwtIdentity } from './jwt.js';

const entrySchema = z
  .strictObject({
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be the hex SHA-256 of the token')
      .optional(),
    token: z.string().min(16, 'must be at least 16 characters').max(4096).optional(),
    user: z.string().min(1).max(253),
    groups: z.array(z.string().min(1).max(253)).max(64).default([]),
  })
  .refine((e) => (e.sha256 === undefined) !== (e.token === undefined), {
    message: 'give exactly one of sha256 or token',
  });

export const staticTokensFileSchema = z.strictObject({
  tokens: z.array(entrySchema).max(10_000),
});

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

export class StaticTokens {
  private constructor(private readonly entries: { digest: Buffer; identity: JwtIdentity }[]) {}

  static async load(file: string): Promise<StaticTokens> {
    return StaticTokens.parse(await readFile(file, 'utf8'), file);
  }

  /** Parses the file's text; `file` names it in errors. */
  static parse(text: string, file: string): StaticTokens {
    let raw: unknown;
    try {
      raw = parse(text);
    } catch (err) {
      throw new MaxineError('VALIDATION_FAILED', `${file}: not YAML: ${(err as Error).message}`);
    }
    const parsed = staticTokensFileSchema.safeParse(raw);
    if (!parsed.success) throw validationError(`static tokens file ${file}`, parsed.error);
    return new StaticTokens(
      parsed.data.tokens.map((e) => ({
        digest: e.sha256 !== undefined ? Buffer.from(e.sha256, 'hex') : digest(e.token ?? ''),
        identity: { kind: 'User', name: e.user, groups: e.groups },
      })),
    );
  }

  /** Who the token is, or UNAUTHENTICATED. */
  identify(token: string): JwtIdentity {
    const presented = digest(token);
    let found: JwtIdentity | undefined;
    // Every entry is compared, so the time taken does not say which one matched.
    for (const e of this.entries) if (timingSafeEqual(e.digest, presented)) found ??= e.identity;
    if (found === undefined) throw new MaxineError('UNAUTHENTICATED', 'Unknown token');
    return found;
  }

  get size(): number {
    return this.entries.length;
  }
}
