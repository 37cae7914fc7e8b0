/**
 * The leader writes the health Maxine decides into each gated pod's `maxine.io/healthy`
 * condition (the webhook adds it as a readiness gate), so every replica reads the same health
 * from its pod informer and Kubernetes itself (Endpoints, kube-proxy, meshes) routes by it.
 *
 * Write budget: a write only on a transition (the condition's status or reason differs from
 * what the pod carries), at most one in flight per pod, a newer verdict replacing a pending one
 * (latest wins), a client-side token bucket over all writes, and a bounded pending map. A
 * verdict dropped at the bound, or a failed write, is found again by the periodic resync.
 *
 * The pure core (what to write, whether it is a transition, the bucket, the pending map) is
 * apart from the class that owns the timer and the API calls.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import { HEALTH_CONDITION } from '../../common/injection.js';
import type { Logger } from '../../common/logger.js';
import type { Clock } from '../registry/clock.js';
import { systemClock } from '../registry/clock.js';
import { CONDITION_REASONS } from '../registry/instance.js';
import type { PodHealthCondition } from '../registry/instance.js';
import type { PodHealthGate, Registry, RegistryEventDraft } from '../registry/registry.js';
import { isKubeNotFound, kubeErrorFields } from './errors.js';
import { RepeatLimiter } from './repeat.js';

/** A condition message holds at most this much of a check's output. */
export const CONDITION_MESSAGE_MAX = 256;

export interface DesiredCondition {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

// ---- pure core ----

/**
 * The condition a gated pod should carry, from the leader's own view of it. Undefined when
 * there is nothing to write: the leader has no say yet (the sidecar has not reported), or the
 * sidecar deregistered (its pod is terminating, and Kubernetes takes it out of its Services).
 */
export function desiredCondition(own: PodHealthGate['own']): DesiredCondition | undefined {
  if (own === undefined || own.reason === 'deregistered') return undefined;
  const reason = CONDITION_REASONS[own.reason];
  const message = capMessage(own.output ?? defaultMessage(own.reason));
  return { status: own.status === 'critical' ? 'False' : 'True', reason, message };
}

function defaultMessage(reason: keyof typeof CONDITION_REASONS): string {
  switch (reason) {
    case 'lease-expired':
      return 'the sidecar stopped heartbeating: its lease lapsed';
    case 'no-sidecar':
      return 'the service has a health check and the pod has no sidecar to run it';
    case 'check':
      return 'the health check failed';
    default:
      return '';
  }
}

/** At most CONDITION_MESSAGE_MAX characters, trailing whitespace cut, marked when cut. */
export function capMessage(text: string): string {
  const trimmed = text.trimEnd();
  if (trimmed.length <= CONDITION_MESSAGE_MAX) return trimmed;
  return `${trimmed.slice(0, CONDITION_MESSAGE_MAX - 1)}…`;
}

/**
 * Whether `desired` is a transition from what the pod carries: its status or reason differ.
 * A changed message alone is not (a failing check's output may change on every run).
 */
export function isTransition(
  desired: DesiredCondition | undefined,
  current: Pick<PodHealthCondition, 'status' | 'reason'> | undefined,
): desired is DesiredCondition {
  if (desired === undefined) return false;
  return current?.status !== desired.status || current.reason !== desired.reason;
}

/** The strategic-merge patch of pods/status: conditions merge by `type`, others are kept. */
export function conditionPatch(
  desired: DesiredCondition,
  now: Date,
): { status: { conditions: Record<string, unknown>[] } } {
  return {
    status: {
      conditions: [
        {
          type: HEALTH_CONDITION,
          status: desired.status,
          reason: desired.reason,
          message: desired.message,
          lastProbeTime: null,
          lastTransitionTime: now.toISOString(),
        },
      ],
    },
  };
}

/** A token bucket on an injected clock: `rate` tokens a second, at most `burst` held. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes a token when one is there. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until the next token. */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }
}

export type Offer = 'queued' | 'coalesced' | 'dropped';

/** Verdicts waiting for a write, per pod, in arrival order; latest wins; bounded. */
export class PendingWrites<V> {
  private readonly items = new Map<string, V>();

  constructor(private readonly max: number) {}

  offer(key: string, value: V): Offer {
    if (this.items.has(key)) {
      this.items.set(key, value);
      return 'coalesced';
    }
    if (this.items.size >= this.max) return 'dropped';
    this.items.set(key, value);
    return 'queued';
  }

  /** The oldest key `skip` does not refuse (a pod with a write in flight), if any. */
  firstKey(skip: (key: string) => boolean): string | undefined {
    for (const key of this.items.keys()) if (!skip(key)) return key;
    return undefined;
  }

  /** Takes the oldest entry whose key `skip` does not refuse (a pod with a write in flight). */
  take(skip: (key: string) => boolean): [string, V] | undefined {
    for (const [key, value] of this.items) {
      if (skip(key)) continue;
      this.items.delete(key);
      return [key, value];
    }
    return undefined;
  }

  get(key: string): V | undefined {
    return this.items.get(key);
  }

  delete(key: string): void {
    this.items.delete(key);
  }

  get size(): number {
    return this.items.size;
  }
}

// ---- the writer (I/O) ----

export type ConditionPatcher = (
  namespace: string,
  pod: string,
  body: ReturnType<typeof conditionPatch>,
) => Promise<void>;

export interface HealthConditionWriterOptions {
  registry: Registry;
  logger: Logger;
  /** Only the leader writes. */
  isLeader: () => boolean;
  /** Writes a second over all pods, and the burst the bucket holds. */
  writesPerSecond: number;
  burst?: number;
  /** Verdicts waiting at most (one per pod); past it a verdict is dropped until the resync. */
  maxPending: number;
  /** How often every gated pod is compared again (a dropped or failed write, outside changes). */
  resyncMs: number;
  /** Writes at once, over different pods. */
  concurrency?: number;
  prom?: PromRegistry;
  clock?: Clock;
  /** Either the API (kubeConfig) or a patcher (tests). */
  kubeConfig?: KubeConfig;
  patch?: ConditionPatcher;
}

interface Pending {
  id: string;
  desired: DesiredCondition;
}

function writerMetrics(prom: PromRegistry | undefined) {
  const registers = prom === undefined ? [] : [prom];
  return {
    writes: new Counter({
      name: 'maxine_health_condition_writes_total',
      help: 'maxine.io/healthy pod condition writes by result (ok, failed, gone: the pod was deleted)',
      labelNames: ['result', 'status'] as const,
      registers,
    }),
    pending: new Gauge({
      name: 'maxine_health_condition_pending',
      help: 'Pods whose maxine.io/healthy condition waits for a write (bounded by --health-condition-max-pending)',
      registers,
    }),
    coalesced: new Counter({
      name: 'maxine_health_condition_coalesced_total',
      help: 'Verdicts that replaced a pending one for the same pod before it was written',
      registers,
    }),
    dropped: new Counter({
      name: 'maxine_health_condition_dropped_total',
      help: 'Verdicts dropped because the pending map was full (the resync finds them again)',
      registers,
    }),
  };
}

export class HealthConditionWriter {
  private readonly clock: Clock;
  private readonly bucket: TokenBucket;
  private readonly pending: PendingWrites<Pending>;
  /** Pod key → the condition being written. */
  private readonly inFlight = new Map<string, DesiredCondition>();
  /** Pod key → the condition written, until the informer shows it (cleared on each resync). */
  private readonly written = new Map<string, DesiredCondition>();
  private readonly patch: ConditionPatcher;
  private readonly metrics: ReturnType<typeof writerMetrics>;
  /** A full pending map and a failing API are each said once a minute, with the repeats. */
  private readonly dropLog: RepeatLimiter;
  private readonly failLog: RepeatLimiter;
  private wake: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: HealthConditionWriterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.bucket = new TokenBucket(
      opts.writesPerSecond,
      opts.burst ?? Math.max(1, opts.writesPerSecond),
      this.clock.now(),
    );
    this.pending = new PendingWrites(opts.maxPending);
    this.metrics = writerMetrics(opts.prom);
    this.patch = opts.patch ?? apiPatcher(opts.kubeConfig);
    this.dropLog = new RepeatLimiter(60_000, () => this.clock.now());
    this.failLog = new RepeatLimiter(60_000, () => this.clock.now());
  }

  start(): void {
    this.stopped = false;
    this.resync = setInterval(() => this.resyncAll(), this.opts.resyncMs);
    this.resync.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.resync !== undefined) clearInterval(this.resync);
    if (this.wake !== undefined) clearTimeout(this.wake);
    this.resync = undefined;
    this.wake = undefined;
  }

  /** An instance's health may have changed (a registry event names it). */
  notice(id: string): void {
    if (this.stopped || !this.opts.isLeader()) return;
    const gate = this.opts.registry.podHealthGate(id);
    if (gate !== undefined) this.consider(gate);
  }

  /** A registry event: an instance's health, or its sidecar's registration, may have changed. */
  noticeEvent(event: RegistryEventDraft): void {
    // A heartbeat can carry a sidecar's first check result without changing the health the
    // registry shows (passing before, passing now): the leader's say starts with it. The
    // comparison is a map lookup; a write only follows a transition.
    if (event.type === 'service_heartbeat') {
      this.notice(event.data.id);
      return;
    }
    if (
      (event.type === 'service_healthy' ||
        event.type === 'service_unhealthy' ||
        event.type === 'service_registered') &&
      event.instance.source === 'kubernetes'
    )
      this.notice(event.instance.id);
  }

  /** Compares every gated pod (on becoming leader, and every resyncMs). */
  resyncAll(): void {
    if (this.stopped || !this.opts.isLeader()) return;
    this.written.clear();
    for (const gate of this.opts.registry.podHealthGates()) this.consider(gate);
  }

  private consider(gate: PodHealthGate): void {
    const key = `${gate.namespace}/${gate.pod}`;
    const desired = desiredCondition(gate.own);
    // What the pod carries, or will once the write on its way lands.
    const base = this.inFlight.get(key) ?? this.written.get(key) ?? gate.observed;
    if (!isTransition(desired, base)) {
      // Back where the pod is (or no say): a pending write would only flip it twice.
      this.pending.delete(key);
      this.metrics.pending.set(this.pending.size);
      return;
    }
    if (!isTransition(desired, this.pending.get(key)?.desired)) return; // already pending
    const offer = this.pending.offer(key, { id: gate.id, desired });
    if (offer === 'coalesced') this.metrics.coalesced.inc();
    if (offer === 'dropped') {
      this.metrics.dropped.inc();
      const said = this.dropLog.check('dropped');
      if (said.log)
        this.opts.logger.warn(
          {
            pod: gate.pod,
            namespace: gate.namespace,
            maxPending: this.opts.maxPending,
            repeats: said.repeats,
          },
          'health condition write dropped: too many pods wait for a write (the resync retries it; raise --health-condition-max-pending or --health-condition-writes-per-second)',
        );
    }
    this.metrics.pending.set(this.pending.size);
    this.pump();
  }

  private pump(): void {
    if (this.stopped || this.wake !== undefined) return;
    const concurrency = this.opts.concurrency ?? 4;
    const busy = (key: string): boolean => this.inFlight.has(key);
    while (this.inFlight.size < concurrency && this.pending.firstKey(busy) !== undefined) {
      const now = this.clock.now();
      if (!this.bucket.take(now)) {
        this.wake = setTimeout(() => {
          this.wake = undefined;
          this.pump();
        }, this.bucket.waitMs(now));
        this.wake.unref();
        return;
      }
      const next = this.pending.take(busy);
      if (next === undefined) return;
      this.metrics.pending.set(this.pending.size);
      void this.write(next[0], next[1]);
    }
  }

  private async write(key: string, { id, desired }: Pending): Promise<void> {
    const [namespace, pod] = splitKey(key);
    this.inFlight.set(key, desired);
    try {
      await this.patch(namespace, pod, conditionPatch(desired, new Date(this.clock.now())));
      this.written.set(key, desired);
      this.failLog.reset();
      this.metrics.writes.inc({ result: 'ok', status: desired.status });
      this.opts.logger.info(
        {
          pod,
          namespace,
          instance: id,
          condition: HEALTH_CONDITION,
          status: desired.status,
          reason: desired.reason,
        },
        `pod health condition set ${desired.status} (${desired.reason})`,
      );
    } catch (err) {
      if (isKubeNotFound(err)) {
        this.metrics.writes.inc({ result: 'gone', status: desired.status });
      } else {
        this.metrics.writes.inc({ result: 'failed', status: desired.status });
        const fields = kubeErrorFields(err);
        const said = this.failLog.check(`${fields.status ?? ''}|${fields.message}`);
        if (said.log)
          this.opts.logger.warn(
            { pod, namespace, instance: id, error: fields, repeats: said.repeats },
            fields.status === 403
              ? 'health condition write refused: the operator may not patch pods/status (manifests/rbac.yaml grants it); the resync retries'
              : 'health condition write failed; the resync retries',
          );
      }
    } finally {
      this.inFlight.delete(key);
      this.pump();
    }
  }
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

function apiPatcher(kubeConfig: KubeConfig | undefined): ConditionPatcher {
  if (kubeConfig === undefined) throw new Error('HealthConditionWriter needs kubeConfig or patch');
  const api = kubeConfig.makeApiClient(CoreV1Api);
  return async (namespace, name, body) => {
    await api.patchNamespacedPodStatus(
      { name, namespace, body },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
  };
}
