/**
 * Kubernetes Events for what a person must act on (an invalid spec, a status that cannot be
 * written), so `kubectl describe msvc NAME` and `kubectl get events` tell the story.
 *
 * Like client-go's recorder: a repeat of the same reason and message on the same object
 * within `aggregateMs` bumps `count` and `lastTimestamp` of the existing Event instead of
 * creating a new one, and each object may create at most `burst` Events per `aggregateMs`
 * (further ones are dropped and logged), so a hot loop cannot flood etcd. Events are best
 * effort: a failure to record one is logged, never retried in a way that blocks reconciles.
 * Only the leader records, so replicas do not say everything twice.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CoreV1Event, KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { kubeErrorFields } from './errors.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Shown as the Event's source and reporting controller. */
  component?: string;
  /** This replica (pod name), shown as the reporting instance. */
  instance: string;
  isLeader?: () => boolean;
  aggregateMs?: number;
  burst?: number;
  now?: () => number;
}

interface Recorded {
  name: string;
  namespace: string;
  count: number;
  firstSeen: number;
}

const MAX_REMEMBERED = 4096;

export class EventRecorder {
  private readonly api: CoreV1Api;
  /** uid|type|reason|message → the Event that said it. */
  private readonly recorded = new Map<string, Recorded>();
  /** uid → creation times within the window, for the per-object burst limit. */
  private readonly created = new Map<string, number[]>();
  /** Writes run one at a time, so a repeat always finds the Event its first occurrence created. */
  private chain: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly component: string;
  private serial = 0;

  constructor(private readonly opts: EventRecorderOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.now = opts.now ?? Date.now;
    this.component = opts.component ?? 'maxine-operator';
  }

  /** Records an Event about `object` (asynchronously; `flush()` waits for it). */
  record(object: KubernetesObject, type: EventType, reason: string, message: string): void {
    if (this.opts.isLeader !== undefined && !this.opts.isLeader()) return;
    this.chain = this.chain.then(() =>
      this.write(object, type, reason, message).catch((err: unknown) =>
        this.opts.logger.warn(
          { error: kubeErrorFields(err), reason, object: refOf(object) },
          'could not record a Kubernetes Event',
        ),
      ),
    );
  }

  /** Resolves when every Event recorded so far has been written (or has failed). */
  async flush(): Promise<void> {
    await this.chain;
  }

  private async write(
    object: KubernetesObject,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const ref = refOf(object);
    const now = this.now();
    const window = this.opts.aggregateMs ?? 10 * 60_000;
    const uid = ref.uid ?? `${ref.namespace}/${ref.name}`;
    const key = `${uid}|${type}|${reason}|${message}`;
    const seen = this.recorded.get(key);
    if (seen !== undefined && now - seen.firstSeen < window) {
      seen.count += 1;
      await this.api.patchNamespacedEvent(
        {
          name: seen.name,
          namespace: seen.namespace,
          body: { count: seen.count, lastTimestamp: new Date(now) },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return;
    }
    const recent = (this.created.get(uid) ?? []).filter((t) => now - t < window);
    if (recent.length >= (this.opts.burst ?? 25)) {
      this.opts.logger.warn({ reason, object: ref }, 'event dropped: too many for this object');
      return;
    }
    this.created.set(uid, [...recent, now]);
    const namespace = ref.namespace ?? 'default';
    const body: CoreV1Event = {
      // Object names may be 253 characters; the suffix must fit too.
      metadata: {
        name: `${(ref.name ?? 'object').slice(0, 200)}.${(now * 1000 + (this.serial++ % 1000)).toString(16)}`,
      },
      involvedObject: ref,
      type,
      reason,
      message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
      count: 1,
      firstTimestamp: new Date(now),
      lastTimestamp: new Date(now),
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.opts.instance,
    };
    const created = await this.api.createNamespacedEvent({ namespace, body });
    this.remember(key, {
      name: created.metadata?.name ?? body.metadata.name ?? '',
      namespace,
      count: 1,
      firstSeen: now,
    });
  }

  private remember(key: string, recorded: Recorded): void {
    if (this.recorded.size >= MAX_REMEMBERED) {
      const oldest = this.recorded.keys().next().value;
      if (oldest !== undefined) this.recorded.delete(oldest);
    }
    this.recorded.set(key, recorded);
    if (this.created.size > MAX_REMEMBERED) this.created.clear();
  }
}

function refOf(object: KubernetesObject): NonNullable<CoreV1Event['involvedObject']> {
  const meta = object.metadata ?? {};
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    namespace: meta.namespace,
    name: meta.name,
    uid: meta.uid,
    resourceVersion: meta.resourceVersion,
  };
}
