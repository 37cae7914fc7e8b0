/**
 * A bound on TokenReviews in flight at once, shared by the sidecar-token and kubectl-user
 * reviewers. Tokens that pass the precheck (a JWT with our audience, not expired) still cost a
 * request to the API server each; without a bound a flood of distinct crafted tokens would queue
 * as many requests as it sends. Past the bound a new token is refused with 503 NOT_READY (retry
 * later, as when the API server is unreachable); tokens already cached or in flight are not
 * affected.
 */
import { MaxineError } from '../../common/errors.js';

export const DEFAULT_MAX_REVIEWS_IN_FLIGHT = 64;

export class ReviewSlots {
  private running = 0;
  private refusals = 0;

  constructor(readonly max: number = DEFAULT_MAX_REVIEWS_IN_FLIGHT) {}

  /** Reviews in flight now. */
  get inFlight(): number {
    return this.running;
  }

  /** Reviews refused at the bound since start. */
  get refused(): number {
    return this.refusals;
  }

  /** Runs `review` in a slot, or rejects with NOT_READY when every slot is taken. */
  async run<T>(review: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) {
      this.refusals += 1;
      throw new MaxineError(
        'NOT_READY',
        `Too many token reviews in flight (${this.max}); retry shortly`,
      );
    }
    this.running += 1;
    try {
      return await review();
    } finally {
      this.running -= 1;
    }
  }
}
