/**
 * Leader election over a coordination.k8s.io Lease, as client-go's leaderelection: a replica
 * takes the Lease when it is absent or has not been renewed within its duration, renews it
 * while it leads, and steps down when a renewal fails for longer than the duration. Writes
 * use the Lease's resourceVersion, so two replicas can never both win a race. Every replica
 * serves reads; only the leader writes status.
 *
 * The leader also advertises where it can be reached (`advertiseUrl`, an annotation of the
 * Lease), and every follower reads it on each renewal tick: that is where followers forward
 * registry writes (operator/http/forward.ts, docs/decisions/0018-writes-reach-the-leader.md).
 */
import { CoordinationV1Api, V1MicroTime } from '@kubernetes/client-node';
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { isKubeConflict, isKubeNotFound, kubeErrorFields } from './errors.js';
import type { KubeErrorFields } from './errors.js';
import { RepeatLimiter } from './repeat.js';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewSeconds: number;
  logger: Logger;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** A failure that repeats on every try is logged once, then once per this interval. Default 60 s. */
  repeatLogMs?: number;
  /** The URL other replicas reach this one at, written on the Lease while this one leads. */
  advertiseUrl?: string | undefined;
}

/** The Lease annotation carrying the leader's address. */
export const LEADER_URL_ANNOTATION = 'maxine.io/leader-url';

/** Who leads now, as this replica last read the Lease. */
export interface LeaderView {
  /** This replica leads. */
  leading: boolean;
  /** The holder of an unexpired Lease, when another replica holds it. */
  identity?: string;
  /** The address that holder advertises (none: it advertises none, or none leads). */
  url?: string;
}

/** The namespace manifests/ (and examples/) create for the operator. */
const DEFAULT_NAMESPACE = 'maxine-system';

/** What a failed election request means for a person: a one-line message and the error's fields. */
export function leaderElectionProblem(
  err: unknown,
  lease: { namespace: string; name: string },
): { key: string; message: string; error: KubeErrorFields } {
  const fields = kubeErrorFields(err);
  const key = `${fields.status ?? ''}|${fields.reason ?? ''}|${fields.message}`;
  const where = `${lease.namespace}/${lease.name}`;
  const missing = /^namespaces "([^"]+)" not found/.exec(fields.message)?.[1];
  if (isKubeNotFound(err) && missing !== undefined) {
    const create =
      missing === DEFAULT_NAMESPACE
        ? '`kubectl apply -k manifests/` (or `kubectl apply -f examples/`)'
        : `\`kubectl create namespace ${missing}\``;
    return {
      key,
      error: fields,
      message:
        `cannot lead: the lease namespace ${missing} does not exist, so no status is written; ` +
        `create it with ${create}, or name an existing one with --lease-namespace`,
    };
  }
  if (fields.status === 403) {
    return {
      key,
      error: fields,
      message: `cannot lead: not allowed to read and write the Lease ${where} (the Role in manifests/rbac.yaml grants it), so no status is written`,
    };
  }
  return { key, error: fields, message: `leader election request for the Lease ${where} failed` };
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  private readonly problems: RepeatLimiter;
  /** The other replica holding the Lease, as last read; undefined when none (or this one) does. */
  private other: { identity: string; url: string | undefined; seenAt: number } | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.problems = new RepeatLimiter(opts.repeatLogMs ?? 60_000);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Who leads, as of the last renewal tick (every `renewSeconds`). */
  get leader(): LeaderView {
    if (this.leading) return { leading: true };
    const other = this.other;
    // Seen longer ago than a lease lasts (the API server could not be read since): it may
    // have lost the Lease meanwhile, so this replica no longer claims to know.
    if (other === undefined || Date.now() - other.seenAt > this.opts.leaseDurationSeconds * 1000)
      return { leading: false };
    return {
      leading: false,
      identity: other.identity,
      ...(other.url !== undefined && { url: other.url }),
    };
  }

  start(): void {
    void this.tick();
  }

  /** Stops competing; a leader releases the Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity === this.opts.identity) {
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        // Followers stop forwarding here at their next tick.
        delete lease.metadata?.annotations?.[LEADER_URL_ANNOTATION];
        await this.api.replaceNamespacedLease({
          name: this.opts.name,
          namespace: this.opts.namespace,
          body: lease,
        });
      }
    } catch (err) {
      this.opts.logger.debug(
        { lease: `${this.opts.namespace}/${this.opts.name}`, error: kubeErrorFields(err) },
        'releasing the leader lease failed',
      );
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const won = await this.tryAcquireOrRenew();
      if (won) this.lastRenew = Date.now();
      this.problems.reset();
      this.setLeading(won);
    } catch (err) {
      // Who leads is kept as last read: an API server hiccup on this replica's side says
      // nothing about the leader, which `leader` stops naming once a lease has passed.
      this.report(err);
      // A leader that cannot renew for a whole lease duration must assume it lost.
      if (this.leading && Date.now() - this.lastRenew > this.opts.leaseDurationSeconds * 1000)
        this.setLeading(false);
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.tick(), this.opts.renewSeconds * 1000);
      this.timer.unref();
    }
  }

  /** One line per problem, repeated once a minute while it lasts: never a dump every renewal. */
  private report(err: unknown): void {
    const { namespace, name, renewSeconds } = this.opts;
    const problem = leaderElectionProblem(err, { namespace, name });
    const { log, repeats } = this.problems.check(problem.key);
    if (!log) return;
    this.opts.logger.warn(
      {
        lease: `${namespace}/${name}`,
        error: problem.error,
        retryInSeconds: renewSeconds,
        ...(repeats > 0 && { repeatsSinceLastLog: repeats }),
      },
      problem.message,
    );
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
      });
    } catch (err) {
      if (isKubeNotFound(err)) return undefined;
      throw err;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new V1MicroTime(Date.now());
    const { name, namespace, identity, leaseDurationSeconds } = this.opts;
    const lease = await this.read();
    if (lease === undefined) {
      this.seeOther(undefined);
      await this.api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace, annotations: this.annotations(undefined) },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime === undefined ? 0 : new Date(spec.renewTime).getTime();
    const expired =
      renewed + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000 < Date.now();
    const ours = spec.holderIdentity === identity;
    if (!ours && spec.holderIdentity !== undefined && !expired) {
      this.seeOther({
        identity: spec.holderIdentity,
        url: lease.metadata?.annotations?.[LEADER_URL_ANNOTATION],
        seenAt: Date.now(),
      });
      return false;
    }
    this.seeOther(undefined);
    lease.metadata = {
      ...lease.metadata,
      annotations: this.annotations(lease.metadata?.annotations),
    };
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      ...(!ours && { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      // resourceVersion from the read: a concurrent winner makes this a 409.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (isKubeConflict(err)) return false;
      throw err;
    }
  }

  /** The Lease's annotations with this replica's address (or without any, if it has none). */
  private annotations(current: Record<string, string> | undefined): Record<string, string> {
    const rest = { ...current };
    delete rest[LEADER_URL_ANNOTATION];
    const url = this.opts.advertiseUrl;
    return url === undefined ? rest : { ...rest, [LEADER_URL_ANNOTATION]: url };
  }

  /** Records who else leads; says so when that changes. */
  private seeOther(
    other: { identity: string; url: string | undefined; seenAt: number } | undefined,
  ): void {
    const before = this.other;
    this.other = other;
    if (other === undefined || (before?.identity === other.identity && before.url === other.url))
      return;
    this.opts.logger.info(
      {
        lease: `${this.opts.namespace}/${this.opts.name}`,
        leader: other.identity,
        leaderUrl: other.url ?? null,
      },
      other.url === undefined
        ? 'another replica leads and advertises no address: writes here are refused with 503 NO_LEADER'
        : 'another replica leads: writes here are forwarded to it',
    );
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.opts.logger.info(
      { lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity },
      leading ? 'became leader' : 'stopped leading',
    );
    if (leading) this.opts.onStartedLeading?.();
    else this.opts.onStoppedLeading?.();
  }
}
