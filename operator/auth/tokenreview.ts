/**
 * Who a bearer token belongs to, asked of the API server with a TokenReview (as kubelet and
 * every webhook do). A sidecar presents its pod's projected ServiceAccount token; the review
 * checks signature, expiry, audience and that the bound pod still exists, and answers with the
 * ServiceAccount and the pod (name and uid) the token is bound to.
 *
 * Answers are cached by the token's SHA-256 (never by the token itself) for `cacheMs`, and
 * never past the token's own expiry; refusals are cached briefly so a bad client cannot turn
 * into a review storm. A token bound to a pod is cached longer (`podCacheMs`) when the
 * operator's pod informer can vouch for the pod: each use checks that the pod is still there
 * with the same uid, and a deleted or replaced pod's token is reviewed again (and refused by
 * the API server). So 10,000 heartbeating sidecars cost a review per pod per token rotation
 * rather than 10,000 reviews a minute (bench/RESULTS-kubernetes.md measured the latter).
 */
import { createHash } from 'node:crypto';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import type { KubeConfig, V1TokenReviewStatus } from '@kubernetes/client-node';
import { MaxineError } from '../../common/errors.js';
import { ExpiringCache } from './expiring-cache.js';
import { decodeClaims } from './jwt-claims.js';
import { ReviewSlots } from './review-slots.js';

// In their own module, so the authenticator needs no Kubernetes client (decision 0027).
export { bearerToken, decodeClaims } from './jwt-claims.js';

export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
  /** Present for tokens bound to a pod (projected tokens are). */
  pod?: { name: string; uid: string };
}

export interface TokenReviewerOptions {
  kubeConfig: KubeConfig;
  audience: string;
  cacheMs?: number;
  /** How long a pod-bound identity is kept while `podUid` vouches for its pod. Default 15 min. */
  podCacheMs?: number;
  /**
   * The uid of pod `namespace/name` in the operator's informer cache, or undefined when the
   * cache does not hold it. Without it, pod-bound identities are kept `cacheMs` like others.
   */
  podUid?: (namespace: string, name: string) => string | undefined;
  negativeCacheMs?: number;
  maxEntries?: number;
  /** The bound on reviews in flight (shared with the kubectl-user reviewer). */
  slots?: ReviewSlots;
  now?: () => number;
}

interface Cached {
  until: number;
  /** When the API server answered. */
  reviewedAt?: number;
  identity?: PodIdentity;
  refusal?: string;
}

const SA_PREFIX = 'system:serviceaccount:';

export class TokenReviewer {
  private readonly api: AuthenticationV1Api;
  private readonly cache: ExpiringCache<Cached>;
  /** Refusals apart, so a flood of bad tokens cannot push out the identities of real pods. */
  private readonly refused: ExpiringCache<Cached>;
  private readonly now: () => number;
  /** Concurrent reviews of the same token share one request. */
  private readonly inFlight = new Map<string, Promise<Cached>>();
  private readonly slots: ReviewSlots;

  constructor(private readonly opts: TokenReviewerOptions) {
    this.slots = opts.slots ?? new ReviewSlots();
    this.api = opts.kubeConfig.makeApiClient(AuthenticationV1Api);
    this.now = opts.now ?? Date.now;
    const max = opts.maxEntries ?? 10_000;
    this.cache = new ExpiringCache(max);
    this.refused = new ExpiringCache(Math.ceil(max / 10));
  }

  /** The token's identity, or an UNAUTHENTICATED error saying why (never echoing the token). */
  async review(token: string): Promise<PodIdentity> {
    // What can be refused without asking the API server is refused here: a caller sending
    // random strings costs no TokenReview.
    const malformed = precheck(token, this.opts.audience, this.now());
    if (malformed !== undefined) throw new MaxineError('UNAUTHENTICATED', malformed);
    const key = createHash('sha256').update(token).digest('base64url');
    const now = this.now();
    let entry = this.cache.get(key, now) ?? this.refused.get(key, now);
    if (entry?.identity !== undefined && !this.podVouchedFor(entry, now)) {
      // Its pod is gone or replaced, or no longer known here: ask again (the API server decides).
      this.cache.delete(key);
      entry = undefined;
    }
    if (entry === undefined) {
      let pending = this.inFlight.get(key);
      if (pending === undefined) {
        pending = this.slots.run(() => this.ask(token)).finally(() => this.inFlight.delete(key));
        this.inFlight.set(key, pending);
      }
      entry = await pending;
      (entry.identity === undefined ? this.refused : this.cache).set(key, entry);
    }
    if (entry.identity === undefined)
      throw new MaxineError('UNAUTHENTICATED', entry.refusal ?? 'The token was not accepted');
    return entry.identity;
  }

  private async ask(token: string): Promise<Cached> {
    const now = this.now();
    let review: Awaited<ReturnType<AuthenticationV1Api['createTokenReview']>>;
    try {
      review = await this.api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [this.opts.audience] },
        },
      });
    } catch (err) {
      // Not the caller's fault: answer 503 so the sidecar retries with back-off.
      throw new MaxineError(
        'NOT_READY',
        `Cannot check the token now: the TokenReview failed (${(err as Error).message.slice(0, 200)})`,
      );
    }
    const verdict = this.judge(review.status);
    if (typeof verdict === 'string')
      return { until: now + (this.opts.negativeCacheMs ?? 5_000), refusal: verdict };
    const expiry = tokenExpiry(token);
    const keep =
      verdict.pod !== undefined && this.opts.podUid !== undefined
        ? (this.opts.podCacheMs ?? 15 * 60_000)
        : (this.opts.cacheMs ?? 60_000);
    return { until: Math.min(now + keep, expiry ?? Infinity), reviewedAt: now, identity: verdict };
  }

  /**
   * Whether a cached identity still holds: always for one not bound to a pod (its `until` is
   * short); for a pod's, while the informer holds that pod with that uid, and otherwise (a pod
   * the informer does not hold, or no longer) only `cacheMs` from the review, as before.
   */
  private podVouchedFor(entry: Cached, now: number): boolean {
    const identity = entry.identity;
    if (identity?.pod === undefined || this.opts.podUid === undefined) return true;
    const uid = this.opts.podUid(identity.namespace, identity.pod.name);
    if (uid !== undefined) return uid === identity.pod.uid;
    return now < (entry.reviewedAt ?? 0) + (this.opts.cacheMs ?? 60_000);
  }

  /** The identity a review vouches for, or why it does not. */
  private judge(status: V1TokenReviewStatus | undefined): PodIdentity | string {
    if (status?.authenticated !== true)
      return `The token was not accepted: ${status?.error ?? 'not authenticated'}`;
    if (status.audiences !== undefined && !status.audiences.includes(this.opts.audience))
      return `The token is not meant for audience "${this.opts.audience}"`;
    const username = status.user?.username ?? '';
    if (!username.startsWith(SA_PREFIX))
      return `"${username}" is not a ServiceAccount; sidecars present their pod's token`;
    const [namespace, serviceAccount] = username.slice(SA_PREFIX.length).split(':') as [
      string,
      string,
    ];
    const pod = boundPod(status.user?.extra);
    return { namespace, serviceAccount, ...(pod && { pod }) };
  }
}

/** The pod a projected token is bound to, from the review's extra user info. */
function boundPod(
  extra: Record<string, string[]> | undefined,
): { name: string; uid: string } | undefined {
  const name = extra?.['authentication.kubernetes.io/pod-name']?.[0];
  const uid = extra?.['authentication.kubernetes.io/pod-uid']?.[0];
  return name !== undefined && uid !== undefined ? { name, uid } : undefined;
}

/**
 * Why a token cannot be a projected ServiceAccount token for `audience`, judged from its
 * claims alone (not trusted: only a refusal is decided here, never an acceptance).
 */
export function precheck(token: string, audience: string, now: number): string | undefined {
  const claims = decodeClaims(token);
  if (claims === undefined) return 'The token is not a JWT';
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= now) return 'The token has expired';
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(audience)) return `The token is not meant for audience "${audience}"`;
  if (typeof claims.sub !== 'string' || !claims.sub.startsWith(SA_PREFIX))
    return 'The token is not a ServiceAccount token';
  return undefined;
}

/** The `exp` claim of a JWT in ms (read, not trusted: the review already verified it). */
export function tokenExpiry(token: string): number | undefined {
  const exp = decodeClaims(token)?.exp;
  return typeof exp === 'number' ? exp * 1000 : undefined;
}
