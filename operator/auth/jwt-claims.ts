/**
 * Reading a bearer token and a JWT's claims (unverified): what the authenticator needs of
 * tokens without the Kubernetes client, which operator/auth/tokenreview.ts (and so only
 * Kubernetes mode) loads (docs/decisions/0027-memory-per-instance-and-sidecar-footprint.md).
 */
import { Buffer } from 'node:buffer';

/** The claims of a JWT, decoded but not verified; undefined when there is no JSON payload. */
export function decodeClaims(
  token: string,
): { exp?: unknown; aud?: unknown; sub?: unknown; iss?: unknown } | undefined {
  const parts = token.split('.');
  const payload = parts[1];
  if (parts.length !== 3 || payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return claims !== null && typeof claims === 'object' ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** The bearer token of a request, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,8192})\s*$/i.exec(header);
  return match?.[1];
}
