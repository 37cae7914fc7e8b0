/**
 * Kubernetes as a source of resources: an informer per custom resource feeds keys into the
 * per-key work queue; a reconcile reads the current object from the informer cache,
 * validates it with the same zod schema as the folder source, and hands it to the shared
 * reconciler (docs/decisions/0002). Informers restart themselves with back-off after any
 * error (client-node's list-watch relists on 410 Gone and stops on other errors).
 */
import type { ResourceSource } from './source.js';
import {
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type {
  Informer,
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  ObjectCache,
} from '@kubernetes/client-node';
import { formatPath } from '../../common/errors.js';
import { API_GROUP, API_VERSION, parseMaxineResource } from '../../common/resources.js';
import type { ResourceKind, ResourceStatus } from '../../common/resources.js';
import {
  portsMissingCondition,
  setCondition,
  sidecarsMissingCondition,
  statusWriteFailedConditions,
} from '../status.js';
import type { Reconciler } from '../reconciler.js';
import type { Registry } from '../registry/registry.js';
import {
  lacksPort,
  lacksSidecar,
  noPortAdvice,
  noSidecarAdvice,
  podInstance,
  selects,
} from '../kube/pods.js';
import type { PodLike } from '../kube/pods.js';
import { PodSelectorIndex, slimPod } from '../kube/pod-index.js';
import type { Logger } from '../../common/logger.js';
import type { EventRecorder } from '../kube/event-recorder.js';
import { WorkQueue } from '../kube/queue.js';
import { invalidStatus, statusDiffers, withDeletions } from '../kube/status-patch.js';
import { systemClock } from '../registry/clock.js';
import type { Clock } from '../registry/clock.js';
import { describeKubeError, isKubeNotFound, kubeErrorFields } from '../kube/errors.js';
import { ConfigSourceWatcher } from '../kube/config-sources.js';
import { sourceOf } from '../../common/config-sources.js';
import type { Registry as PromRegistry } from 'prom-client';

export const PLURALS: Record<ResourceKind, string> = {
  MaxineService: 'maxineservices',
  MaxineIntention: 'maxineintentions',
  MaxineACL: 'maxineacls',
};

type Watched = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  reconciler: Reconciler;
  registry: Registry;
  logger: Logger;
  restartBaseMs?: number;
  restartMaxMs?: number;
  /** How often MaxineService statuses are refreshed (instance counts change without events). */
  statusResyncMs?: number;
  /** Only the leader writes status; every replica keeps its registry in sync. */
  isLeader?: () => boolean;
  /** Kubernetes Events for failures a person must act on. */
  events?: EventRecorder;
  /** Stamps condition transition times (the operator's clock; the system clock by default). */
  clock?: Clock;
  /** ConfigMaps and Secrets named by configFrom watched at most (default 1000). */
  configFromMaxObjects?: number;
}

/** Status-write attempts after which the failure is also told as a Kubernetes Event. */
const STATUS_FAILURE_EVENT_AFTER = 3;

export interface InvalidObject {
  key: string;
  issues: { path: string; message: string }[];
  message: string;
  generation: number;
}

/** Ways selected pods fail their MaxineService; each has a status condition and a Warning Event. */
const POD_PROBLEMS = {
  sidecar: {
    applies: lacksSidecar,
    advice: noSidecarAdvice,
    condition: sidecarsMissingCondition,
    reason: 'NoSidecar',
    log: 'pods without sidecar: their health check cannot run (health reason no-sidecar)',
    event: (advice: string) =>
      `No maxine-sidecar container, so spec.healthCheck cannot run and the instance stays critical: ${advice}`,
  },
  port: {
    applies: lacksPort,
    advice: noPortAdvice,
    condition: portsMissingCondition,
    reason: 'NoPort',
    log: 'pods without a port: they are no instances until the MaxineService or the pod names one',
    event: (advice: string) => `No port to route to: ${advice}`,
  },
} as const;
type PodProblem = keyof typeof POD_PROBLEMS;
const POD_PROBLEM_KINDS = Object.keys(POD_PROBLEMS) as PodProblem[];

export class KubeSource implements ResourceSource {
  private readonly informers = new Map<ResourceKind, Watched>();
  private pods: Watched | undefined;
  /** Which pods each selector picks, kept by the pod informer's callbacks. */
  private readonly podIndex = new PodSelectorIndex();
  private podsSynced = false;
  private readonly queue: WorkQueue;
  /** Status writes run apart, so readiness and registry updates never wait on them. */
  private readonly statusQueue: WorkQueue;
  private readonly synced = new Set<ResourceKind>();
  private readonly invalid = new Map<string, InvalidObject>();
  private readonly restarts = new Map<ResourceKind | 'Pod', number>();
  /** Per problem: MaxineService key → its selected pods that have it. */
  private readonly podProblems: Record<
    PodProblem,
    Map<string, { pods: string[]; advice: string }>
  > = { sidecar: new Map(), port: new Map() };
  private stopped = false;
  /** Whether pod instances were last seen beyond the registry's total limit. */
  private overLimit = false;
  private api: CustomObjectsApi | undefined;
  /** Key → the refusal last reported for its status write, so a resync does not repeat it. */
  private readonly refusedStatus = new Map<string, string>();
  private resync: NodeJS.Timeout | undefined;
  private readonly clock: Clock;
  /** The ConfigMaps and Secrets MaxineServices name in configFrom (only those). */
  private readonly configSources: ConfigSourceWatcher;

  constructor(private readonly opts: KubeSourceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.configSources = new ConfigSourceWatcher({
      kubeConfig: opts.kubeConfig,
      logger: opts.logger,
      maxObjects: opts.configFromMaxObjects ?? 1000,
      onChange: (namespace, kind, name) => {
        for (const service of this.configSources.usersOf(namespace, kind, name))
          this.queue.add(`ConfigSync/${service}`);
      },
      // A MaxineService reconciled again tracks its references again; the object's first list
      // then re-resolves its config (onChange).
      onRoom: (namespace, service) => this.queue.add(`MaxineService/${namespace}/${service}`),
      ...(opts.restartBaseMs !== undefined && { restartBaseMs: opts.restartBaseMs }),
      ...(opts.restartMaxMs !== undefined && { restartMaxMs: opts.restartMaxMs }),
    });
    opts.reconciler.setConfigSources((namespace, kind, name) =>
      this.configSources.lookup(namespace, kind, name),
    );
    this.queue = new WorkQueue({
      reconcile: (key) => this.reconcile(key),
      workers: 4,
      onError: (key, err, attempt, retryInMs) =>
        opts.logger.warn({ key, err, attempt, retryInMs }, 'reconcile failed; retrying'),
      onPermanentError: (key, err, attempt) =>
        opts.logger.error(
          { key, error: kubeErrorFields(err), attempt },
          'reconcile failed permanently; not retried until the object changes',
        ),
    });
    this.statusQueue = new WorkQueue({
      reconcile: (key) => this.writeStatusOf(key),
      workers: 4,
      onError: (key, err, attempt, retryInMs) => {
        opts.logger.warn(
          { key, error: kubeErrorFields(err), attempt, retryInMs },
          'status write failed; retrying',
        );
        if (attempt === STATUS_FAILURE_EVENT_AFTER) {
          this.event(
            key,
            'Warning',
            'StatusWriteFailed',
            `Could not write the status: ${describeKubeError(err)}`,
          );
        }
      },
      onPermanentError: (key, err, attempt) => this.statusRefused(key, err, attempt),
    });
  }

  /** The configFrom watcher's metrics (the registry exists only after the source). */
  registerMetrics(prom: PromRegistry): void {
    this.configSources.registerMetrics(prom);
  }

  /** True once every informer has listed its objects and the queue has applied them. */
  get ready(): boolean {
    return this.synced.size === this.informers.size && this.informers.size > 0 && this.podsSynced;
  }

  /** A pod from the informer cache (sidecar identity checks read it). */
  pod(namespace: string, name: string): PodLike | undefined {
    return this.pods?.get(name, namespace);
  }

  /** The uid of MaxineService `namespace/name` from the informer cache (an owner for objects). */
  serviceUid(namespace: string, name: string): string | undefined {
    return this.informers.get('MaxineService')?.get(name, namespace)?.metadata?.uid;
  }

  /** Objects the API server stored but whose semantics the schema rejects. */
  problems(): InvalidObject[] {
    return [...this.invalid.values()];
  }

  async start(): Promise<void> {
    const api = this.opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.api = api;
    for (const [kind, plural] of Object.entries(PLURALS) as [ResourceKind, string][]) {
      const list = () =>
        api.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural }) as Promise<
          KubernetesListObject<KubernetesObject>
        >;
      const informer = makeInformer(
        this.opts.kubeConfig,
        `/apis/${API_GROUP}/${API_VERSION}/${plural}`,
        list,
      );
      const enqueue = (obj: KubernetesObject): void => this.queue.add(keyOf(kind, obj));
      informer.on('add', enqueue);
      informer.on('update', enqueue);
      informer.on('delete', enqueue);
      informer.on('error', (err: unknown) => this.restartLater(kind, informer, err));
      informer.on('connect', () => this.restarts.delete(kind));
      this.informers.set(kind, informer);
    }
    // Pods: every Ready pod a MaxineService selects is an instance (as Endpoints are).
    const core = this.opts.kubeConfig.makeApiClient(CoreV1Api);
    const pods = makeInformer(
      this.opts.kubeConfig,
      '/api/v1/pods',
      () => core.listPodForAllNamespaces() as Promise<KubernetesListObject<KubernetesObject>>,
    );
    // The informer keeps the object it hands to these callbacks: slimmed here, slim in the cache.
    const podChanged = (pod: KubernetesObject): void => {
      slimPod(pod);
      const namespace = pod.metadata?.namespace ?? 'default';
      const labels = pod.metadata?.labels;
      const before = this.podIndex.upsert(namespace, pod.metadata?.name ?? '', labels);
      this.syncServicesSelecting(namespace, before, labels);
    };
    const podDeleted = (pod: KubernetesObject): void => {
      const namespace = pod.metadata?.namespace ?? 'default';
      const before = this.podIndex.remove(namespace, pod.metadata?.name ?? '');
      this.syncServicesSelecting(namespace, before ?? pod.metadata?.labels, undefined);
    };
    pods.on('add', podChanged);
    pods.on('update', podChanged);
    pods.on('delete', podDeleted);
    pods.on('error', (err: unknown) => this.restartLater('Pod', pods, err));
    pods.on('connect', () => this.restarts.delete('Pod'));
    this.pods = pods;
    await Promise.all([
      ...[...this.informers.entries()].map(async ([kind, informer]) => {
        await informer.start();
        this.synced.add(kind);
      }),
      pods.start().then(() => {
        this.podsSynced = true;
      }),
    ]);
    // Pods may have listed before their services: sync every service once.
    for (const svc of this.informers.get('MaxineService')?.list() ?? [])
      this.queue.add(podSyncKey(svc));
    await this.queue.idle();
    this.resync = setInterval(() => {
      for (const obj of this.informers.get('MaxineService')?.list() ?? [])
        this.statusQueue.add(keyOf('MaxineService', obj));
    }, this.opts.statusResyncMs ?? 15_000);
    this.resync.unref();
    this.opts.logger.info(
      { objects: this.opts.reconciler.list().length },
      'kubernetes resources synced',
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    await Promise.all([
      ...[...this.informers.values(), ...(this.pods ? [this.pods] : [])].map((i) => i.stop()),
      this.configSources.stop(),
    ]);
    await this.queue.shutdown();
    await this.statusQueue.shutdown();
  }

  /** Reconciles every object again (a new leader writes the statuses it now owns). */
  resyncAll(): void {
    for (const [kind, informer] of this.informers) {
      for (const obj of informer.list()) this.statusQueue.add(keyOf(kind, obj));
    }
  }

  /** Resolves when every queued change has been applied and its status written. */
  async idle(): Promise<void> {
    await this.queue.idle();
    await this.statusQueue.idle();
    await this.opts.events?.flush();
  }

  private restartLater(kind: ResourceKind | 'Pod', informer: Watched, err: unknown): void {
    if (this.stopped) return;
    const attempt = (this.restarts.get(kind) ?? 0) + 1;
    this.restarts.set(kind, attempt);
    const delay = Math.min(
      this.opts.restartMaxMs ?? 30_000,
      (this.opts.restartBaseMs ?? 500) * 2 ** (attempt - 1),
    );
    this.opts.logger.warn(
      { kind, error: kubeErrorFields(err), attempt, retryInMs: delay },
      'informer failed; restarting',
    );
    setTimeout(() => {
      if (this.stopped) return;
      informer.start().catch((e: unknown) => this.restartLater(kind, informer, e));
    }, delay).unref();
  }

  /**
   * A pod changed: re-derive the instances of the services of its namespace that selected it
   * (its labels before) or select it now. O(services of the namespace), not O(services × pods).
   */
  private syncServicesSelecting(
    namespace: string,
    before: Readonly<Record<string, string>> | undefined,
    now: Readonly<Record<string, string>> | undefined,
  ): void {
    for (const svc of this.informers.get('MaxineService')?.list(namespace) ?? []) {
      const selector = this.opts.reconciler.serviceSpec(
        namespace,
        svc.metadata?.name ?? '',
      )?.selector;
      if (selects(selector, before) || selects(selector, now)) this.queue.add(podSyncKey(svc));
    }
  }

  private syncPods(namespace: string, name: string): void {
    const spec = this.opts.reconciler.serviceSpec(namespace, name);
    if (spec === undefined) return;
    const selected = this.podIndex
      .selected(namespace, spec.selector)
      .map((pod) => this.pods?.get(pod, namespace))
      .filter((pod) => pod !== undefined) as PodLike[];
    const instances = selected
      .map((pod) => podInstance(namespace, name, spec, pod))
      .filter((i) => i !== undefined);
    for (const problem of POD_PROBLEM_KINDS)
      this.notePodProblem(
        problem,
        `MaxineService/${namespace}/${name}`,
        selected.filter((pod) => POD_PROBLEMS[problem].applies(spec, pod)),
      );
    const { added, removed, overLimit } = this.opts.registry.syncPodInstances(
      namespace,
      name,
      instances,
    );
    if (added + removed > 0) {
      this.opts.logger.info(
        { kind: 'MaxineService', namespace, name, added, removed, pods: instances.length },
        'pod instances synced',
      );
    }
    this.reportOverLimit(overLimit, { kind: 'MaxineService', namespace, name });
  }

  /**
   * Pods are never refused by the registry's limits (a selected Ready pod stays discoverable);
   * when they alone pass --max-instances, say so once, and again when it is over.
   */
  private reportOverLimit(
    overLimit: number,
    where: { kind: 'MaxineService'; namespace: string; name: string },
  ): void {
    if (overLimit > 0 === this.overLimit) return;
    this.overLimit = overLimit > 0;
    const limit = this.opts.registry.limits.instances;
    if (this.overLimit) {
      this.opts.logger.warn(
        { ...where, overLimit, limit },
        'pod instances exceed --max-instances: pods are kept, registrations are refused; raise the limit',
      );
    } else this.opts.logger.info({ limit }, 'instances are within --max-instances again');
  }

  /**
   * Selected pods with a problem (POD_PROBLEMS): said in the status (a condition while any pod
   * has it) and, when new ones appear, in a Warning Event.
   */
  private notePodProblem(problem: PodProblem, key: string, pods: PodLike[]): void {
    const what = POD_PROBLEMS[problem];
    const known = this.podProblems[problem];
    const names = pods.map((p) => p.metadata?.name ?? '').sort();
    const before = known.get(key)?.pods ?? [];
    if (names.join('/') === before.join('/')) return;
    if (pods.length === 0) known.delete(key);
    else known.set(key, { pods: names, advice: what.advice(pods) });
    this.statusQueue.add(key);
    const fresh = pods.filter((p) => !before.includes(p.metadata?.name ?? ''));
    if (fresh.length > 0) {
      this.opts.logger.warn(
        { ...fieldsOfKey(key), pods: fresh.map((p) => p.metadata?.name) },
        what.log,
      );
      this.event(key, 'Warning', what.reason, what.event(what.advice(fresh)));
    }
  }

  /** An object a MaxineService names in configFrom changed: its config is resolved again. */
  private syncConfig(namespace: string, name: string): void {
    if (!this.opts.reconciler.refreshConfig(namespace, name)) return;
    const problem = this.opts.reconciler.configProblem(namespace, name);
    // Names only: a Secret's values never reach the log.
    this.opts.logger.info(
      { kind: 'MaxineService', namespace, name, ...(problem !== undefined && { problem }) },
      problem === undefined
        ? 'config re-resolved from configFrom'
        : 'configFrom incomplete; the last complete config stays in force',
    );
    this.statusQueue.add(`MaxineService/${namespace}/${name}`);
  }

  private async reconcile(key: string): Promise<void> {
    const [kind, namespace, name] = key.split('/') as [
      ResourceKind | 'PodSync' | 'ConfigSync',
      string,
      string,
    ];
    if (kind === 'PodSync') this.syncPods(namespace, name);
    else if (kind === 'ConfigSync') this.syncConfig(namespace, name);
    else await this.reconcileResource(key, kind, namespace, name);
  }

  /** The resource is gone: whatever was noted about it goes too. */
  private forget(key: string, kind: ResourceKind, namespace: string, name: string): void {
    this.invalid.delete(key);
    for (const problem of POD_PROBLEM_KINDS) this.podProblems[problem].delete(key);
    this.refusedStatus.delete(key);
    if (this.opts.reconciler.delete(key))
      this.opts.logger.info({ kind, namespace, name }, 'resource deleted');
  }

  private async reconcileResource(
    key: string,
    kind: ResourceKind,
    namespace: string,
    name: string,
  ): Promise<void> {
    const object = this.informers.get(kind)?.get(name, namespace);
    if (kind === 'MaxineService') await this.trackConfigSources(namespace, name, object);
    if (object === undefined) {
      this.forget(key, kind, namespace, name);
      return;
    }
    const generation = object.metadata?.generation ?? 0;
    const parsed = parseMaxineResource(object);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({
        path: formatPath(i.path),
        message: i.message,
      }));
      const message = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
      const known = this.invalid.get(key);
      if (known?.message !== message || known.generation !== generation) {
        this.opts.logger.warn(
          { kind, namespace, name, generation, issues },
          `invalid ${kind} ${namespace}/${name}: ${message}`,
        );
        const inForce = this.opts.reconciler.resourceOf(key) !== undefined;
        this.event(
          key,
          'Warning',
          'InvalidSpec',
          `${message} (not applied${inForce ? '; the last valid spec stays in force' : ''})`,
        );
      }
      this.invalid.set(key, { key, issues, message, generation });
      // The last valid version stays in force, as with a broken file in standalone mode.
      this.opts.reconciler.markInvalid([key], message);
      this.statusQueue.add(key);
      return;
    }
    if (this.invalid.delete(key))
      this.event(key, 'Normal', 'SpecValid', `Generation ${generation} is valid and applied`);
    this.opts.reconciler.clearInvalid([key]);
    if (this.opts.reconciler.upsert(parsed.data, 'kubernetes')) {
      this.opts.logger.info({ kind, namespace, name, generation }, 'resource applied');
      if (kind === 'MaxineService') this.queue.add(`PodSync/${namespace}/${name}`);
    }
    this.statusQueue.add(key);
  }

  /** Watches what the object's configFrom names (nothing when it is gone or invalid). */
  private async trackConfigSources(
    namespace: string,
    name: string,
    object: KubernetesObject | undefined,
  ): Promise<void> {
    const parsed = object && parseMaxineResource(object);
    const refs =
      parsed?.success === true && parsed.data.kind === 'MaxineService'
        ? (parsed.data.spec.configFrom ?? []).map(sourceOf)
        : [];
    // An invalid object keeps its last valid spec in force, and with it what that one names.
    if (
      parsed?.success === false &&
      this.opts.reconciler.resourceOf(keyOf('MaxineService', object ?? {})) !== undefined
    )
      return;
    await this.configSources.track(namespace, name, refs);
  }

  private event(key: string, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const [kind, namespace, name] = key.split('/') as [ResourceKind, string, string];
    const object = this.informers.get(kind)?.get(name, namespace);
    if (object === undefined || this.opts.events === undefined) return;
    this.opts.events.record(
      { ...object, apiVersion: `${API_GROUP}/${API_VERSION}`, kind },
      type,
      reason,
      message,
    );
  }

  /** Queues a status write for `Kind/namespace/name` (the mesh controller's reports). */
  requestStatus(key: string): void {
    this.statusQueue.add(key);
  }

  /**
   * The API server refused a status write for good (400, 403, 422): the queue does not retry
   * it. Said once per distinct refusal in a log line, a Warning Event and a StatusWriteFailed
   * condition (best effort: a 403 refuses that write too); tried again when the object
   * changes or is resynced.
   */
  private statusRefused(key: string, err: unknown, attempt: number): void {
    const [kind, namespace, name] = key.split('/') as [ResourceKind, string, string];
    const error = kubeErrorFields(err);
    const problem = describeKubeError(err);
    if (this.refusedStatus.get(key) === problem) {
      this.opts.logger.debug(
        { kind, namespace, name, error, attempt },
        'status write refused again',
      );
      return;
    }
    this.refusedStatus.set(key, problem);
    this.opts.logger.error(
      { kind, namespace, name, error, attempt },
      'status write refused; not retried until the object changes or is resynced',
    );
    this.event(
      key,
      'Warning',
      'StatusWriteFailed',
      `The API server refused the status write (not retried until the object changes): ${problem}`,
    );
    void this.writeRefusalCondition(key, problem).catch((e: unknown) =>
      this.opts.logger.warn(
        { kind, namespace, name, error: kubeErrorFields(e) },
        'could not write the StatusWriteFailed condition either',
      ),
    );
  }

  private async writeRefusalCondition(key: string, problem: string): Promise<void> {
    const [kind, namespace, name] = key.split('/') as [ResourceKind, string, string];
    const object = this.informers.get(kind)?.get(name, namespace);
    if (object === undefined || this.api === undefined) return;
    if (this.opts.isLeader !== undefined && !this.opts.isLeader()) return;
    const stored = (object as { status?: ResourceStatus }).status?.conditions ?? [];
    const conditions = statusWriteFailedConditions(
      stored,
      problem,
      object.metadata?.generation ?? 0,
      this.clock.now(),
    );
    await mergeStatus(this.api, key, { conditions });
  }

  /** The status an object should have now, written when it differs from the stored one. */
  private async writeStatusOf(key: string): Promise<void> {
    const [kind, namespace, name] = key.split('/') as [ResourceKind, string, string];
    const object = this.informers.get(kind)?.get(name, namespace);
    if (object === undefined) {
      this.refusedStatus.delete(key);
      return;
    }
    const invalid = this.invalid.get(key);
    const status =
      invalid === undefined
        ? this.opts.reconciler.statusOf(key)
        : invalidStatus(
            this.opts.reconciler.statusOf(key),
            invalid.generation,
            invalid.message,
            this.clock.now(),
          );
    if (status !== undefined)
      await this.writeStatus(key, object, this.withPodProblems(key, object, status));
    this.refusedStatus.delete(key);
  }

  /**
   * Adds a condition per problem selected pods have (SidecarsMissing, PortsMissing), keeping
   * its transition time.
   */
  private withPodProblems(
    key: string,
    object: KubernetesObject,
    status: ResourceStatus,
  ): ResourceStatus {
    const stored = (object as { status?: ResourceStatus }).status?.conditions ?? [];
    const added = [];
    for (const problem of POD_PROBLEM_KINDS) {
      const found = this.podProblems[problem].get(key);
      if (found === undefined) continue;
      const condition = POD_PROBLEMS[problem].condition(
        found.pods.length,
        found.advice,
        object.metadata?.generation ?? 0,
      );
      const carried = setCondition(stored, condition, this.clock.now()).find(
        (c) => c.type === condition.type,
      );
      if (carried !== undefined) added.push(carried);
    }
    if (added.length === 0) return status;
    return { ...status, conditions: [...(status.conditions ?? []), ...added] };
  }

  /** Writes the status subresource when it differs from what the object has (no write loops). */
  private async writeStatus(
    key: string,
    object: KubernetesObject,
    status: ResourceStatus,
  ): Promise<void> {
    if (this.opts.isLeader !== undefined && !this.opts.isLeader()) return;
    const current = (object as { status?: unknown }).status;
    if (this.api === undefined || !statusDiffers(current, status)) return;
    try {
      await mergeStatus(this.api, key, withDeletions(current, status));
    } catch (err) {
      // Deleted meanwhile: its delete event follows; nothing to write.
      if (isKubeNotFound(err)) return;
      throw err;
    }
  }
}

/** A JSON merge patch of the status subresource of the object `Kind/namespace/name`. */
async function mergeStatus(api: CustomObjectsApi, key: string, status: unknown): Promise<void> {
  const [kind, namespace, name] = key.split('/') as [ResourceKind, string, string];
  await api.patchNamespacedCustomObjectStatus(
    {
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: PLURALS[kind],
      name,
      body: { status },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

function keyOf(kind: ResourceKind, obj: KubernetesObject): string {
  return `${kind}/${obj.metadata?.namespace ?? 'default'}/${obj.metadata?.name ?? ''}`;
}

function podSyncKey(svc: KubernetesObject): string {
  return `PodSync/${svc.metadata?.namespace ?? 'default'}/${svc.metadata?.name ?? ''}`;
}

/** The log fields of `Kind/namespace/name`: `{ kind, namespace, name }` (docs/operations.md). */
function fieldsOfKey(key: string): { kind: string; namespace: string; name: string } {
  const [kind = '', namespace = '', name = ''] = key.split('/');
  return { kind, namespace, name };
}
