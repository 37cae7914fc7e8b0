/**
 * Who is calling: every request to the operator's API (and the event-stream handshake) is
 * resolved to a principal before anything else happens.
 *
 * A bearer token is tried, in order, as a static token (standalone files), as a JWT from the
 * configured issuer (users and groups from claims), and as a Kubernetes ServiceAccount token
 * (TokenReview; a pod-bound token makes the caller a sidecar). Without a token the caller is
 * `system:anonymous`, which only a configuration that allows it accepts (standalone's default).
 *
 * Resolved principals are cached by the SHA-256 of the `Authorization` header (`Bearer <token>`)
 * until the token expires (at most a minute), and parsed only on a miss. In front of that, the
 * headers used lately (at most `recentHeaders`, each at most RECENT_HEADER_MAX characters) are
 * kept by their exact text, so a repeating caller costs one map lookup and no hash: this holds
 * up to that many tokens in memory, as the requests carrying them do — an expired one until it
 * is looked up again or pushed out by newer callers (decision 26).
 */
import * as crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import type { AclIdentity, UserSource } from '../../common/policy/acl.js';
import { ANONYMOUS_USER, describeIdentity, principalName } from '../../common/policy/acl.js';
import { ExpiringCache } from './expiring-cache.js';
import { bearerToken, decodeClaims } from './jwt-claims.js';
import type { PodIdentity } from './tokenreview.js';
import type { JwtIdentity } from './jwt.js';
import { KUBE_USER_HEADER } from '../../common/wire.js';
import type { ReviewedUser } from './kube-user.js';

/** Group every pod-bound (sidecar) principal carries; no token can claim it. */
export const SIDECAR_GROUP = 'maxine:sidecars';

export interface Principal {
  identity: AclIdentity;
  /** For logs and audit records: `ServiceAccount shop/web`, `User alice`, `anonymous`. */
  who: string;
  /** Decision-cache key: one per identity and group set, never the token. */
  key: string;
  /**
   * Who the caller is, qualified by source and without its group set: `token:alice`,
   * `jwt:<issuer>:<sub>`, `system:serviceaccount:<ns>:<name>` (with `#<pod uid>` for a
   * pod-bound token: each sidecar is its own caller), `system:anonymous`. Rate limits are
   * keyed by it, so tokens of one user with different group sets share one budget.
   */
  id: string;
  /** The pod a projected token is bound to (sidecars). */
  pod?: PodIdentity;
  /**
   * When the credential stops being valid (ms): a JWT's `exp`, a projected token's `exp`;
   * none for static tokens. Event streams opened with it are closed then.
   */
  expiresAt?: number;
  /**
   * When what vouched for the credential must be asked again (ms): a TokenReview answer's
   * cache expiry. Event streams re-authenticate then, and close if it was revoked.
   */
  revalidateAt?: number;
}

export const ANONYMOUS: Principal = {
  identity: { kind: 'Anonymous' },
  who: 'anonymous',
  key: 'anonymous',
  id: ANONYMOUS_USER,
};

export interface AuthenticatorOptions {
  /** Serve callers without a token as `system:anonymous`. */
  anonymous: boolean;
  staticTokens?: { identify(token: string): JwtIdentity };
  jwt?: { issuer: string; verify(token: string): Promise<JwtIdentity> };
  reviewer?: { review(token: string): Promise<PodIdentity> };
  /**
   * Kubernetes mode: reviews the kubectl user's token forwarded in `X-Maxine-Kubernetes-Authorization`
   * (operator/auth/kube-user.ts), used only when a request has no `Authorization`.
   */
  kubeUsers?: { review(token: string, digest: string): Promise<ReviewedUser> };
  /** How the caller should authenticate, for the 401 message. */
  hint: string;
  now?: () => number;
  cacheMs?: number;
  maxEntries?: number;
  /** Headers kept by their text in front of the digest cache (default 1,000, at most maxEntries; 0: none). */
  recentHeaders?: number;
}

/** A longer header is looked up by its digest only: the recent-header cache stays small. */
export const RECENT_HEADER_MAX = 2048;

interface Cached {
  principal: Principal;
  until: number;
}

/**
 * The SHA-256 (base64url) of the header holding the token, the cache key: never the token itself, so a heap dump holds
 * no usable credential. `crypto.hash` (Node ≥ 20.12) is the one-shot form, about a third of
 * `createHash().update().digest()`'s CPU (no Hash object per request).
 */
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'base64url') => string }).hash;
export function tokenDigest(token: string): string {
  return oneShot !== undefined
    ? oneShot('sha256', token, 'base64url')
    : crypto.createHash('sha256').update(token).digest('base64url');
}

/** Groups with these prefixes are Kubernetes' and ours: a JWT or token file cannot claim them. */
const RESERVED = /^(system|maxine):/;
/** User names with these prefixes would pose as a ServiceAccount or another source's user. */
const RESERVED_USER = /^(system|maxine|jwt|token|kubernetes):/;

export class Authenticator {
  private readonly cache: ExpiringCache<Cached>;
  /** The same entries, by the exact `Authorization` header of their recent callers. */
  private readonly recent: ExpiringCache<Cached> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.now = opts.now ?? Date.now;
    this.cache = new ExpiringCache(opts.maxEntries ?? 10_000);
    // Never more than the token cache holds: it is the faster door to the same entries.
    const recent = Math.min(opts.recentHeaders ?? 1_000, opts.maxEntries ?? 10_000);
    this.recent = recent > 0 ? new ExpiringCache(recent) : undefined;
  }

  get anonymousAllowed(): boolean {
    return this.opts.anonymous;
  }

  /** Resolved tokens held (bounded by `maxEntries`; expired ones linger until pushed out). */
  get cachedTokens(): number {
    return this.cache.size;
  }

  /** Headers held by their text (bounded by `recentHeaders`). */
  get recentHeaders(): number {
    return this.recent?.size ?? 0;
  }

  /** Headers pushed out of the recent-header cache at its bound since start. */
  get recentHeaderEvictions(): number {
    return this.recent?.evictions ?? 0;
  }

  /**
   * The caller's principal: synchronously when the answer is known (no token, or a cached
   * one), else a promise. Fails with UNAUTHENTICATED, saying why without echoing the token.
   */
  principal(req: IncomingMessage): Principal | Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined) {
      const forwarded = req.headers[KUBE_USER_HEADER];
      if (forwarded !== undefined) return this.forwardedUser(forwarded);
      if (this.opts.anonymous) return ANONYMOUS;
      throw new MaxineError('UNAUTHENTICATED', `Authentication is required: ${this.opts.hint}`);
    }
    // A recent caller's exact header: no hash, no parsing (only headers that held a valid
    // token are ever kept, so a hit is that token's answer; its expiry is the entry's).
    const now = this.now();
    const recent = this.recent?.get(header, now);
    if (recent !== undefined) return recent.principal;
    // Else keyed by the whole header's digest: a hit needs no parsing either, and that key
    // holds no usable credential.
    const key = tokenDigest(header);
    const hit = this.cache.get(key, now);
    if (hit !== undefined) {
      this.keepRecent(header, hit);
      return hit.principal;
    }
    const token = bearerToken(header);
    if (token === undefined) {
      throw new MaxineError('UNAUTHENTICATED', 'The Authorization header must be `Bearer <token>`');
    }
    return this.resolve(token).then((resolved) => {
      this.cache.set(key, resolved);
      this.keepRecent(header, resolved);
      return resolved.principal;
    });
  }

  private keepRecent(header: string, entry: Cached): void {
    if (header.length <= RECENT_HEADER_MAX) this.recent?.set(header, entry);
  }

  /**
   * The kubectl user behind the API server's service proxy: the kubeconfig's token, forwarded by
   * `kubectl maxine` and reviewed for the API server's audiences (cached apart from
   * `Authorization` tokens: the same token is judged differently there).
   */
  private forwardedUser(header: string | string[]): Principal | Promise<Principal> {
    const token = typeof header === 'string' ? bearerToken(header) : undefined;
    if (token === undefined)
      throw new MaxineError(
        'UNAUTHENTICATED',
        'The X-Maxine-Kubernetes-Authorization header must be one `Bearer <token>`',
      );
    const users = this.opts.kubeUsers;
    if (users === undefined)
      throw new MaxineError(
        'UNAUTHENTICATED',
        'X-Maxine-Kubernetes-Authorization is accepted only by an operator in Kubernetes mode',
      );
    const digest = tokenDigest(token);
    const key = `kube\0${digest}`;
    const hit = this.cache.get(key, this.now());
    if (hit !== undefined) return hit.principal;
    return users.review(token, digest).then((reviewed) => {
      this.cache.set(key, reviewed);
      return reviewed.principal;
    });
  }

  private async resolve(token: string): Promise<Cached> {
    const max = this.now() + (this.opts.cacheMs ?? 60_000);
    const user = this.staticUser(token);
    if (user !== undefined)
      return { principal: userPrincipal(user, { kind: 'token' }), until: max };
    const claims = decodeClaims(token);
    if (claims === undefined) {
      throw new MaxineError('UNAUTHENTICATED', 'The token is neither known nor a JWT');
    }
    const expires = typeof claims.exp === 'number' ? claims.exp * 1000 : max;
    const until = Math.min(max, expires);
    const jwt = this.opts.jwt;
    const exp = typeof claims.exp === 'number' ? { expiresAt: claims.exp * 1000 } : {};
    if (jwt !== undefined && claims.iss === jwt.issuer) {
      const source = { kind: 'jwt', issuer: jwt.issuer } as const;
      return { principal: { ...userPrincipal(await jwt.verify(token), source), ...exp }, until };
    }
    if (this.opts.reviewer !== undefined) {
      const principal = serviceAccountPrincipal(await this.opts.reviewer.review(token));
      return { principal: { ...principal, ...exp, revalidateAt: until }, until };
    }
    throw new MaxineError(
      'UNAUTHENTICATED',
      `Tokens of issuer ${typeof claims.iss === 'string' ? `"${claims.iss.slice(0, 256)}"` : '(none)'} are not trusted here`,
    );
  }

  private staticUser(token: string): JwtIdentity | undefined {
    try {
      return this.opts.staticTokens?.identify(token);
    } catch {
      return undefined; // not a static token: the next kind is tried
    }
  }
}

/**
 * A user's principal, qualified by where it was authenticated (see `userNames` in
 * common/policy/acl.ts): static-token and JWT users never share a name.
 */
export function userPrincipal(user: JwtIdentity, source: UserSource): Principal {
  // A user named like a ServiceAccount would match that ServiceAccount's ACL subjects; one
  // named `jwt:…` or `token:…` would match the subjects of another source's user.
  if (RESERVED_USER.test(user.name)) {
    throw new MaxineError(
      'UNAUTHENTICATED',
      'User names starting with system:, maxine:, jwt:, token: or kubernetes: are reserved',
    );
  }
  // `jwt:<issuer>:<sub>` would read the same as the short name `jwt:<sub>` of a user whose
  // sub were `<issuer>:<sub>`: such a name would pose as another user of the issuer.
  if (source.kind === 'jwt' && user.name.startsWith(`${source.issuer}:`)) {
    throw new MaxineError(
      'UNAUTHENTICATED',
      "User names starting with the issuer and ':' are reserved (they would name another user)",
    );
  }
  const groups = user.groups.filter((g) => !RESERVED.test(g));
  const identity: AclIdentity = { kind: 'User', name: user.name, groups, source };
  const id = principalName(identity);
  // Decisions are cached by key: two tokens of one user may carry different groups.
  const key = `User\0${id}\0${[...new Set(groups)].sort().join('\0')}`;
  return { identity, who: describeIdentity(identity), key, id };
}

export function serviceAccountPrincipal(sa: PodIdentity): Principal {
  const identity: AclIdentity = {
    kind: 'ServiceAccount',
    namespace: sa.namespace,
    name: sa.serviceAccount,
    groups: sa.pod === undefined ? [] : [SIDECAR_GROUP],
  };
  const pod = sa.pod === undefined ? '' : ` (pod ${sa.pod.name})`;
  return {
    identity,
    who: `${describeIdentity(identity)}${pod}`,
    key: `ServiceAccount\0${sa.namespace}/${sa.serviceAccount}\0${sa.pod?.uid ?? ''}`,
    id: `${principalName(identity)}${sa.pod === undefined ? '' : `#${sa.pod.uid}`}`,
    ...(sa.pod !== undefined && { pod: sa }),
  };
}
