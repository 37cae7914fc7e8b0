/**
 * When an event stream must look at its credential again (pure). A stream outlives the
 * handshake that authenticated it, so it is closed when its credential expires (a JWT's or a
 * projected token's `exp`) and re-authenticated when what vouched for it must be asked again
 * (a TokenReview answer's cache expiry: the pod may be gone, the token revoked).
 */
export interface CredentialTimes {
  expiresAt?: number | undefined;
  revalidateAt?: number | undefined;
}

export type AuthCheck = { at: number; action: 'close' | 'revalidate' } | undefined;

/** The next check a stream holding `credential` needs; undefined: none (static tokens). */
export function nextAuthCheck(credential: CredentialTimes): AuthCheck {
  const { expiresAt, revalidateAt } = credential;
  if (expiresAt !== undefined && (revalidateAt === undefined || expiresAt <= revalidateAt))
    return { at: expiresAt, action: 'close' };
  if (revalidateAt !== undefined) return { at: revalidateAt, action: 'revalidate' };
  return undefined;
}

/** setTimeout takes at most 2^31-1 ms; a later check is re-armed when that one fires. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
