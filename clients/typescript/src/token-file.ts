/**
 * A bearer token read from a file, e.g. a projected ServiceAccount token
 * (`/var/run/secrets/…/token`) that the kubelet rewrites before it expires: read again once
 * `refreshMs` has passed, so a rotated token is used without a restart.
 */
import { readFile } from 'node:fs/promises';

export function tokenFromFile(
  path: string,
  options: { refreshMs?: number; now?: () => number } = {},
): () => Promise<string> {
  const refreshMs = options.refreshMs ?? 10_000;
  const now = options.now ?? Date.now;
  let cached: { token: string; at: number } | undefined;
  return async () => {
    if (cached !== undefined && now() - cached.at < refreshMs) return cached.token;
    const token = (await readFile(path, 'utf8')).trim();
    if (token === '') throw new Error(`the token file ${path} is empty`);
    cached = { token, at: now() };
    return token;
  };
}
