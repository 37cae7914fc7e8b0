/**
 * Registrations from outside the cluster, kept in the API server as MaxineRegistration objects
 * (docs/decisions/0019). Every replica watches them and mirrors them into its registry; the
 * leader writes them: before answering a registration (an acknowledged registration is in the
 * API server), on health and lease transitions, and deletes them on deregistration and expiry.
 * A heartbeat never writes: leases live in the leader's memory, and a new leader restarts
 * each one from its takeover (a full TTL of grace).
 *
 * The leader's writes come back through its own informer; an EchoFilter tells them from
 * changes someone else made (a hand edit, a delete, garbage collection with the
 * MaxineService), which every replica applies, the leader too.
 */
import {
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
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { MaxineError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { API_GROUP, API_VERSION } from '../../common/resources.js';
import { REGISTRATION_PLURAL } from '../../common/resources-registration.js';
import type { RegistrationStatus } from '../../common/resources-registration.js';
import type { EventLog } from '../events/log.js';
import type { KeptRegistration, Registry } from '../registry/registry.js';
import { describeKubeError, isKubeConflict, isKubeNotFound, kubeErrorFields } from './errors.js';
import { WorkQueue } from './queue.js';
import {
  contentOf,
  DEFAULT_STATUS,
  DELETED,
  EchoFilter,
  objectNameOf,
  objectOf,
  readObject,
  statusOf,
} from './registration-object.js';

type Watched = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export interface KubeRegistrationsOptions {
  kubeConfig: KubeConfig;
  registry: Registry;
  events: EventLog;
  logger: Logger;
  isLeader: () => boolean;
  /** The uid of MaxineService `namespace/name`, when declared (the objects' owner). */
  serviceUid: (namespace: string, name: string) => string | undefined;
  restartBaseMs?: number;
  restartMaxMs?: number;
  /** How long start waits for a first successful list (default 15 s). */
  initialListTimeoutMs?: number;
}

/** What this replica knows the API server holds of each registration: its content. */
type Known = Map<string, string>;

const GROUP = { group: API_GROUP, version: API_VERSION, plural: REGISTRATION_PLURAL };

export class KubeRegistrations {
  private readonly api: CustomObjectsApi;
  private informer: Watched | undefined;
  private readonly known: Known = new Map();
  private readonly echoes = new EchoFilter();
  /** Object `namespace/name` → why it is not applied (invalid, or refused by the registry). */
  private readonly refused = new Map<string, string>();
  /** Per registration id: the write in progress, so writes of one object never overlap. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly queue: WorkQueue;
  private unsubscribe: (() => void) | undefined;
  private restarts = 0;
  private stopped = false;
  private listed = false;
  /** Whether the informer reported an error since it was last started. */
  private failed = false;
  private writes: Counter<'op' | 'result'> | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: KubeRegistrationsOptions) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.log = opts.logger.child({ component: 'registrations' });
    this.queue = new WorkQueue({
      reconcile: (id) => this.sync(id),
      workers: 4,
      onError: (id, err, attempt, retryInMs) =>
        this.log.warn(
          { instance: id, error: kubeErrorFields(err), attempt, retryInMs },
          'registration write failed; retrying',
        ),
      onPermanentError: (id, err, attempt) =>
        this.log.error(
          { instance: id, error: kubeErrorFields(err), attempt },
          'registration write refused by the API server; retried on its next change',
        ),
    });
  }

  /** The module's metrics, in the operator's prom-client registry. */
  registerMetrics(prom: PromRegistry): void {
    const registers = [prom];
    this.writes = new Counter({
      name: 'maxine_registration_writes_total',
      help: 'MaxineRegistration writes by the leader (create, spec, status, delete) and their result',
      labelNames: ['op', 'result'],
      registers,
    });
    const refused = this.refused;
    const echoes = this.echoes;
    new Gauge({
      name: 'maxine_registration_objects_refused',
      help: 'MaxineRegistration objects not applied: invalid, or refused by a registry limit',
      registers,
      collect() {
        this.set(refused.size);
      },
    });
    new Gauge({
      name: 'maxine_registration_echoes_awaited',
      help: "Registrations whose written objects have not come back through the leader's informer yet",
      registers,
      collect() {
        this.set(echoes.size);
      },
    });
  }

  /** True once the objects have been listed and mirrored. */
  get synced(): boolean {
    return this.listed;
  }

  /** Lists and watches the objects (mirroring them), then follows the registry's changes. */
  async start(): Promise<void> {
    const list = () =>
      this.api.listClusterCustomObject(GROUP) as Promise<KubernetesListObject<KubernetesObject>>;
    const informer = makeInformer(
      this.opts.kubeConfig,
      `/apis/${API_GROUP}/${API_VERSION}/${REGISTRATION_PLURAL}`,
      list,
    );
    informer.on('add', (obj) => this.observed(obj, false));
    informer.on('update', (obj) => this.observed(obj, false));
    informer.on('delete', (obj) => this.observed(obj, true));
    informer.on('error', (err: unknown) => {
      this.failed = true;
      this.restartLater(err);
    });
    informer.on('connect', () => {
      this.restarts = 0;
    });
    this.informer = informer;
    this.unsubscribe = this.opts.events.subscribe(
      (event) => {
        if (event.type === 'service_heartbeat' || !('instance' in event)) return;
        const instance = event.instance;
        if (instance?.source === 'registration' && this.opts.isLeader())
          this.queue.add(instance.id);
      },
      { heartbeats: false }, // never written on heartbeats
    );
    await this.startInformer(informer);
    // A failed first list (the API server still starting, the CRD missing) is retried with
    // back-off; start waits a bounded time for it, so a replica that starts is ready.
    const deadline = Date.now() + (this.opts.initialListTimeoutMs ?? 15_000);
    while (!this.listed && !this.stopped && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    if (!this.listed) {
      this.log.error(
        { kind: 'MaxineRegistration' },
        'registrations from outside the cluster are not listed yet (is crds/maxineregistrations.yaml applied?); not ready until they are',
      );
    }
  }

  /** Starts (or restarts) the informer; it reports a failed list as an error event, not a throw. */
  private async startInformer(informer: Watched): Promise<void> {
    this.failed = false;
    await informer.start();
    if (!this.failed) this.listed = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    await this.informer?.stop();
    await this.queue.shutdown();
  }

  /** Resolves when every queued write is done. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /**
   * This replica now leads: it holds every external lease, each restarted from now (a full
   * TTL of grace: clients heartbeating through the new leader keep their instances; the
   * others lapse after their TTL and go the normal expiry path, mass-expiry guard included).
   */
  tookOver(): void {
    this.echoes.clear();
    let leases = 0;
    for (const obj of this.informer?.list() ?? []) {
      const read = readObject(obj);
      if (!read.ok) continue;
      this.opts.registry.restartLease(read.kept.id);
      leases += 1;
    }
    // Registrations this replica took while it followed (no forwarding) are written now.
    let unsaved = 0;
    for (const p of this.opts.registry.persistedAll()) {
      if (this.known.has(p.id)) continue;
      this.queue.add(p.id);
      unsaved += 1;
    }
    this.log.info({ leases, unsaved }, 'leading: external registration leases restarted from now');
  }

  /** This replica no longer leads: the new leader holds the leases; health comes from objects. */
  steppedDown(): void {
    this.echoes.clear();
    for (const obj of this.informer?.list() ?? []) {
      const read = readObject(obj);
      if (read.ok) this.opts.registry.releaseLease(read.kept.id);
    }
  }

  /**
   * Before a registration is answered: the leader writes its object. When that fails, a new
   * registration is taken back (nothing half-registered) and the caller gets 503
   * REGISTRATION_NOT_SAVED; a renewal stays and its write is retried in the background.
   */
  async registered(id: string, created: boolean): Promise<void> {
    if (!this.opts.isLeader()) return;
    try {
      await this.run(id, () => this.write(id));
    } catch (err) {
      if (created) this.opts.registry.unmirror(id, 'not_stored');
      else this.queue.add(id);
      throw this.notStored(id, err, created ? 'not registered' : 'the renewal is retried');
    }
  }

  /**
   * Before a deregistration: the leader deletes the object, so a deregistration answered 204
   * is gone from the API server; when the delete fails nothing changes (503).
   */
  async deregistering(id: string): Promise<void> {
    if (!this.opts.isLeader() || this.opts.registry.kept(id) === undefined) return;
    try {
      await this.run(id, () => this.remove(id));
    } catch (err) {
      throw this.notStored(id, err, 'still registered');
    }
  }

  private notStored(id: string, err: unknown, outcome: string): MaxineError {
    const problem = describeKubeError(err);
    this.log.warn(
      { instance: id, error: kubeErrorFields(err), outcome },
      'registration not stored',
    );
    return new MaxineError(
      'REGISTRATION_NOT_SAVED',
      `The API server did not store instance "${id}" (${outcome}): ${problem}`,
    );
  }

  /** Queued writes: one object's writes in order, never two at once. */
  private sync(id: string): Promise<void> {
    if (!this.opts.isLeader()) return Promise.resolve();
    return this.run(id, () => this.write(id));
  }

  private run(id: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    const settled = next.catch(() => undefined);
    this.chains.set(id, settled);
    void settled.then(() => {
      if (this.chains.get(id) === settled) this.chains.delete(id);
    });
    return next;
  }

  /** Makes the object of `id` what the registry holds (create, spec, status, or delete). */
  private async write(id: string): Promise<void> {
    if (!this.opts.isLeader()) return;
    const k = this.opts.registry.kept(id);
    if (k === undefined) {
      if (this.known.has(id)) await this.remove(id);
      return;
    }
    const object = objectOf(k, this.opts.serviceUid(k.namespace, k.service));
    const status = statusOf(k);
    let have = this.known.get(id);
    if (have === undefined) {
      have = await this.create(k, object);
      if (have === undefined) return this.writeStatus(k, status, contentOf(object.spec, undefined));
    }
    const want = contentOf(object.spec, status);
    if (have === want) return;
    const specOnly = contentOf(object.spec, parseStatus(have));
    if (specOnly !== have)
      await this.patch(k, 'spec', specOnly, [{ op: 'replace', path: '/spec', value: object.spec }]);
    await this.writeStatus(k, status, specOnly);
  }

  /** Creates the object; undefined when created, else what the API server already held. */
  private async create(
    k: KeptRegistration,
    object: ReturnType<typeof objectOf>,
  ): Promise<string | undefined> {
    try {
      await this.writing(k.id, contentOf(object.spec, undefined), 'create', () =>
        this.api.createNamespacedCustomObject({ ...GROUP, namespace: k.namespace, body: object }),
      );
      this.log.debug({ instance: k.id, namespace: k.namespace }, 'registration object created');
      return undefined;
    } catch (err) {
      if (!isKubeConflict(err)) throw err;
      // It exists (an earlier write whose answer was lost, or another leader's): read it.
      const current = readObject(
        await this.api.getNamespacedCustomObject({
          ...GROUP,
          namespace: k.namespace,
          name: objectNameOf(k.id),
        }),
      );
      // Unreadable (a bad hand edit): nothing matches it, so the whole spec is written.
      if (!current.ok) return '';
      this.known.set(k.id, current.content);
      return current.content;
    }
  }

  private async writeStatus(
    k: KeptRegistration,
    status: RegistrationStatus,
    have: string,
  ): Promise<void> {
    const want = contentOf(objectOf(k).spec, status);
    if (want === have) return;
    // `add` sets /status whether or not the object has one.
    await this.patch(k, 'status', want, [{ op: 'add', path: '/status', value: status }]);
  }

  private async patch(
    k: KeptRegistration,
    what: 'spec' | 'status',
    content: string,
    body: { op: string; path: string; value: unknown }[],
  ): Promise<void> {
    const params = { ...GROUP, namespace: k.namespace, name: objectNameOf(k.id), body };
    const options = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
    try {
      await this.writing(k.id, content, what, () =>
        what === 'spec'
          ? this.api.patchNamespacedCustomObject(params, options)
          : this.api.patchNamespacedCustomObjectStatus(params, options),
      );
    } catch (err) {
      // Deleted meanwhile (by hand, by garbage collection): created again on the next try.
      if (isKubeNotFound(err)) this.known.delete(k.id);
      throw err;
    }
    this.log.debug({ instance: k.id, namespace: k.namespace, what }, 'registration object written');
  }

  private async remove(id: string): Promise<void> {
    const k = this.opts.registry.kept(id);
    const namespace = k?.namespace ?? this.namespaceOf(id);
    if (namespace !== undefined) {
      try {
        await this.writing(id, DELETED, 'delete', () =>
          this.api.deleteNamespacedCustomObject({ ...GROUP, namespace, name: objectNameOf(id) }),
        );
      } catch (err) {
        if (!isKubeNotFound(err)) throw err;
      }
      this.log.debug({ instance: id, namespace }, 'registration object deleted');
    }
    this.known.delete(id);
  }

  /**
   * One API write that leaves the object holding `content` (DELETED: gone). Its echo is
   * awaited before the call is made: the watch event can come back before the call's answer.
   */
  private async writing(
    id: string,
    content: string,
    op: string,
    call: () => Promise<unknown>,
  ): Promise<void> {
    this.echoes.wrote(id, content);
    try {
      await call();
    } catch (err) {
      this.echoes.cancel(id, content);
      this.writes?.inc({ op, result: 'error' });
      throw err;
    }
    this.writes?.inc({ op, result: 'ok' });
    if (content === DELETED) this.known.delete(id);
    else this.known.set(id, content);
  }

  /** The namespace of the object of `id`, from the informer cache. */
  private namespaceOf(id: string): string | undefined {
    const name = objectNameOf(id);
    return this.informer?.list().find((o) => o.metadata?.name === name)?.metadata?.namespace;
  }

  /** An object was added, changed or deleted in the API server. */
  private observed(obj: KubernetesObject, deleted: boolean): void {
    const where = `${obj.metadata?.namespace ?? '?'}/${obj.metadata?.name ?? '?'}`;
    const read = readObject(obj);
    if (!read.ok) {
      if (deleted) this.refused.delete(where);
      else this.refuse(where, read.message, 'invalid MaxineRegistration: not applied');
      return;
    }
    const { kept } = read;
    if (this.echoes.isEcho(kept.id, deleted ? DELETED : read.content)) return;
    if (deleted) {
      this.known.delete(kept.id);
      this.refused.delete(where);
      if (this.opts.registry.unmirror(kept.id))
        this.log.info(
          { instance: kept.id, ...fieldsOf(where) },
          'registration removed: its object was deleted',
        );
      return;
    }
    this.known.set(kept.id, read.content);
    try {
      const done = this.opts.registry.mirror(kept, this.opts.isLeader());
      if (this.refused.delete(where) || done === 'added')
        this.log.info(
          { instance: kept.id, ...fieldsOf(where), maxineService: kept.service },
          'registration mirrored',
        );
    } catch (err) {
      if (!(err instanceof MaxineError)) throw err;
      this.refuse(
        where,
        `${err.code}: ${err.message}`,
        'MaxineRegistration refused by the registry',
      );
    }
  }

  /** Logs a refusal once per object and reason (a resync does not repeat it). */
  private refuse(where: string, message: string, what: string): void {
    if (this.refused.get(where) === message) return;
    this.refused.set(where, message);
    this.log.warn({ ...fieldsOf(where), problem: message }, what);
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.informer === undefined) return;
    this.restarts += 1;
    const delay = Math.min(
      this.opts.restartMaxMs ?? 30_000,
      (this.opts.restartBaseMs ?? 500) * 2 ** (this.restarts - 1),
    );
    this.log.warn(
      {
        kind: 'MaxineRegistration',
        error: kubeErrorFields(err),
        attempt: this.restarts,
        retryInMs: delay,
      },
      'registration informer failed; restarting',
    );
    const informer = this.informer;
    setTimeout(() => {
      if (this.stopped) return;
      this.startInformer(informer).catch((e: unknown) => this.restartLater(e));
    }, delay).unref();
  }
}

/** The log fields of object `namespace/name`: `{ kind, namespace, name }` (docs/operations.md). */
function fieldsOf(where: string): { kind: string; namespace: string; name: string } {
  const [namespace = '', name = ''] = where.split('/');
  return { kind: 'MaxineRegistration', namespace, name };
}

/** The status part of a known content (DEFAULT_STATUS when it cannot be read). */
function parseStatus(content: string): RegistrationStatus {
  try {
    return (JSON.parse(content) as { status: RegistrationStatus }).status;
  } catch {
    return DEFAULT_STATUS;
  }
}
