/**
 * The kubectl user's own identity, forwarded through the API server's service proxy
 * (docs/decisions/0036-kubectl-identity-through-the-service-proxy.md).
 *
 * The API server removes `Authorization` once it has authenticated a request, so a call through
 * `/api/v1/namespaces/NS/services/SVC:PORT/proxy/...` reaches the operator with no credential.
 * `kubectl maxine` therefore also sends the bearer token of the user's kubeconfig in
 * `X-Maxine-Kubernetes-Authorization`, and the operator asks the API server who it belongs to
 * with a TokenReview for the API server's own audiences (the token was made for the API
 * server, not for `maxine.io`). The answer is a ServiceAccount (never a sidecar: a pod
 * binding is ignored, the header is for people and tools) or a Kubernetes user,
 * `User kubernetes:<name>` with the groups the API server reports.
 *
 * Pure apart from the review call, which is passed in (operator/kube/parts.ts builds it, so the
 * authenticator needs no Kubernetes client; decision 0027).
 */
import type { V1TokenReviewStatus } from '@kubernetes/client-node';
import { MaxineError } from '../../common/errors.js';
import type { AclIdentity } from '../../common/policy/acl.js';
import { describeIdentity, principalName } from '../../common/policy/acl.js';
import type { Principal } from './authenticator.js';
import { ExpiringCache } from './expiring-cache.js';
import { decodeClaims } from './jwt-claims.js';
import { ReviewSlots } from './review-slots.js';

/** The header `kubectl maxine` forwards the kubeconfig user's token in: `Bearer <token>`. */
export { KUBE_USER_HEADER } from '../../common/wire.js';

const SA_PREFIX = 'system:serviceaccount:';
/** Groups only Maxine hands out (`maxine:sidecars`): the API server's answer cannot claim them. */
const MAXINE_GROUP = /^maxine:/;

/** What the reviewer vouches for, and until when the answer may be kept (ms). */
export interface ReviewedUser {
  principal: Principal;
  until: number;
}

/** The principal a successful TokenReview of a forwarded token stands for, or why none (pure). */
export function kubeUserPrincipal(status: V1TokenReviewStatus | undefined): Principal | string {
  if (status?.authenticated !== true)
    return `The forwarded Kubernetes token was not accepted: ${status?.error ?? 'not authenticated'}`;
  const username = status.user?.username ?? '';
  if (username === '') return 'The TokenReview named no user';
  if (username.startsWith(SA_PREFIX)) {
    const [namespace = '', name = ''] = username.slice(SA_PREFIX.length).split(':');
    if (namespace === '' || name === '') return `"${username}" is not a ServiceAccount name`;
    const identity: AclIdentity = { kind: 'ServiceAccount', namespace, name, groups: [] };
    return {
      identity,
      who: describeIdentity(identity),
      key: `ServiceAccount\0${namespace}/${name}\0`,
      id: principalName(identity),
    };
  }
  const groups = (status.user?.groups ?? []).filter((g) => !MAXINE_GROUP.test(g));
  const identity: AclIdentity = {
    kind: 'User',
    name: username,
    groups,
    source: { kind: 'kubernetes' },
  };
  const id = principalName(identity);
  return {
    identity,
    who: describeIdentity(identity),
    key: `User\0${id}\0${[...new Set(groups)].sort().join('\0')}`,
    id,
  };
}

export interface KubeUserReviewerOptions {
  /** Sends a TokenReview without audiences (the API server's own) and returns its status. */
  ask(token: string): Promise<V1TokenReviewStatus | undefined>;
  /** How long an accepted token's principal is kept (never past the token's `exp`). */
  cacheMs?: number;
  negativeCacheMs?: number;
  maxEntries?: number;
  /** The bound on reviews in flight (shared with the sidecar-token reviewer). */
  slots?: ReviewSlots;
  now?: () => number;
}

interface Refusal {
  until: number;
  reason: string;
}

/**
 * Reviews forwarded tokens. Refusals are kept a few seconds (keyed by the token's digest, given
 * by the caller) so that a client repeating a bad token costs no TokenReview storm; accepted
 * answers are cached by the authenticator. Concurrent reviews of one token share one request.
 */
export class KubeUserReviewer {
  private readonly refused: ExpiringCache<Refusal>;
  private readonly inFlight = new Map<string, Promise<ReviewedUser>>();
  private readonly now: () => number;
  private readonly slots: ReviewSlots;

  constructor(private readonly opts: KubeUserReviewerOptions) {
    this.now = opts.now ?? Date.now;
    this.slots = opts.slots ?? new ReviewSlots();
    this.refused = new ExpiringCache(Math.ceil((opts.maxEntries ?? 10_000) / 10));
  }

  review(token: string, digest: string): Promise<ReviewedUser> {
    const refusal = this.refused.get(digest, this.now());
    if (refusal !== undefined)
      return Promise.reject(new MaxineError('UNAUTHENTICATED', refusal.reason));
    let pending = this.inFlight.get(digest);
    if (pending === undefined) {
      pending = this.slots
        .run(() => this.ask(token, digest))
        .finally(() => this.inFlight.delete(digest));
      this.inFlight.set(digest, pending);
    }
    return pending;
  }

  private async ask(token: string, digest: string): Promise<ReviewedUser> {
    let status: V1TokenReviewStatus | undefined;
    try {
      status = await this.opts.ask(token);
    } catch (err) {
      throw new MaxineError(
        'NOT_READY',
        `Cannot check the forwarded Kubernetes token now: the TokenReview failed (${(err as Error).message.slice(0, 200)})`,
      );
    }
    const now = this.now();
    const principal = kubeUserPrincipal(status);
    if (typeof principal === 'string') {
      this.refused.set(digest, {
        until: now + (this.opts.negativeCacheMs ?? 5_000),
        reason: principal,
      });
      throw new MaxineError('UNAUTHENTICATED', principal);
    }
    const exp = decodeClaims(token)?.exp;
    const expiresAt = typeof exp === 'number' ? exp * 1000 : undefined;
    const until = Math.min(now + (this.opts.cacheMs ?? 60_000), expiresAt ?? Infinity);
    return {
      principal: {
        ...principal,
        ...(expiresAt !== undefined && { expiresAt }),
        revalidateAt: until,
      },
      until,
    };
  }
}
