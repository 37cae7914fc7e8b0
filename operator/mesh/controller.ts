/**
 * Applies the rendered Istio and Linkerd objects of every MaxineService that asks for them
 * (`spec.mesh`), in kubernetes mode, on the leader:
 * - server-side apply under our field manager, each object owned by its MaxineService (so the
 *   garbage collector deletes them with it);
 * - prune: objects carrying our labels that are no longer rendered are deleted;
 * - the outcome is the MaxineService's `IstioSynced` / `LinkerdSynced` condition, and the
 *   objects and differences are in `status.mesh`.
 *
 * A mesh whose CRDs are not installed is a condition (`CRDsMissing`), not an error loop: it is
 * looked at again on the periodic resync (`--mesh-resync-ms`) and on the next change. Changes
 * (services, intentions, external instances) are batched: one sync at a time, and one more
 * after it if something changed meanwhile.
 *
 * What it asks the API server, so that a change costs writes and not lists: a full sync (at
 * start, on the periodic resync, on `syncNow` — a new leader — and after a failed sync)
 * checks which mesh kinds exist (one `limit=1` list per kind) and lists our objects of each
 * kind in pages (`limit`/`continue`) to prune; a sync on a change lists nothing: it knows the
 * kinds found present and the objects it listed or applied since, and only looks again for
 * kinds it found missing (so installing a mesh's CRDs is picked up on the next change).
 * Rendering is O(n) in services: the services and intentions are indexed once per sync
 * (common/mesh/lookup.ts).
 */
import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { MESHES, renderMesh, type MeshName, type MeshObject } from '../../common/mesh/index.js';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MESH_LABEL,
  SERVICE_LABEL,
  type MeshService,
} from '../../common/mesh/model.js';
import type { MeshLookup } from '../../common/mesh/lookup.js';
import { Counter, type Registry as PromRegistry } from 'prom-client';
import type { EventLog } from '../events/log.js';
import type { MeshReport, Reconciler } from '../reconciler.js';
import type { Logger } from '../../common/logger.js';
import { describeKubeError, isKubeNotFound, kubeErrorFields } from '../kube/errors.js';
import type { MeshInputs } from './inputs.js';
import { applyReport, crdsMissingReport, syncFailedReport } from './report.js';
import { controllerOf, objectKey, ownedByMaxine, ownedObject, type ListedMeta } from './owned.js';

export const FIELD_MANAGER = 'maxine-operator';

interface Kind {
  group: string;
  version: string;
  kind: string;
  plural: string;
}

/** Every kind a renderer may emit, per mesh: the CRDs we need and the kinds we prune. */
export const MESH_KINDS: Record<MeshName, Kind[]> = {
  istio: [
    {
      group: 'networking.istio.io',
      version: 'v1',
      kind: 'DestinationRule',
      plural: 'destinationrules',
    },
    {
      group: 'networking.istio.io',
      version: 'v1',
      kind: 'VirtualService',
      plural: 'virtualservices',
    },
    { group: 'networking.istio.io', version: 'v1', kind: 'ServiceEntry', plural: 'serviceentries' },
    {
      group: 'security.istio.io',
      version: 'v1',
      kind: 'AuthorizationPolicy',
      plural: 'authorizationpolicies',
    },
  ],
  linkerd: [
    { group: 'policy.linkerd.io', version: 'v1beta3', kind: 'Server', plural: 'servers' },
    { group: 'policy.linkerd.io', version: 'v1beta3', kind: 'HTTPRoute', plural: 'httproutes' },
    {
      group: 'policy.linkerd.io',
      version: 'v1alpha1',
      kind: 'AuthorizationPolicy',
      plural: 'authorizationpolicies',
    },
    {
      group: 'policy.linkerd.io',
      version: 'v1alpha1',
      kind: 'MeshTLSAuthentication',
      plural: 'meshtlsauthentications',
    },
    { group: 'linkerd.io', version: 'v1alpha2', kind: 'ServiceProfile', plural: 'serviceprofiles' },
  ],
};

function kindOf(mesh: MeshName, obj: { apiVersion: string; kind: string }): Kind | undefined {
  return MESH_KINDS[mesh].find(
    (k) => `${k.group}/${k.version}` === obj.apiVersion && k.kind === obj.kind,
  );
}

/** The calls the controller makes on mesh objects (CustomObjectsApi's; a fake in unit tests). */
export type MeshObjectsApi = Pick<
  CustomObjectsApi,
  | 'listClusterCustomObject'
  | 'getNamespacedCustomObject'
  | 'patchNamespacedCustomObject'
  | 'deleteNamespacedCustomObject'
>;

/** Objects per page when listing our mesh objects to prune. */
export const MESH_LIST_PAGE = 500;

export interface MeshControllerOptions {
  kubeConfig: KubeConfig;
  /** The API to use instead of one made from `kubeConfig` (tests count its calls). */
  api?: MeshObjectsApi;
  /** Objects per page when listing to prune (default `MESH_LIST_PAGE`). */
  listPageSize?: number;
  reconciler: Pick<Reconciler, 'setMeshReport' | 'resourceOf'>;
  renderer: Pick<MeshInputs, 'pass' | 'input'>;
  events: Pick<EventLog, 'subscribe'>;
  logger: Logger;
  isLeader: () => boolean;
  /** Asks the resource source to write the status of `MaxineService/ns/name`. */
  statusChanged: (key: string) => void;
  resyncMs: number;
  /** Quiet time after a change before syncing (default 200 ms). */
  debounceMs?: number;
  prom?: PromRegistry;
}

function meshMetrics(prom: PromRegistry | undefined) {
  const registers = prom === undefined ? [] : [prom];
  return {
    writes: new Counter({
      name: 'maxine_mesh_object_writes_total',
      help: 'Mesh objects written to the API server, by mesh and operation (apply, prune) and outcome.',
      labelNames: ['mesh', 'operation', 'outcome'],
      registers,
    }),
    syncs: new Counter({
      name: 'maxine_mesh_syncs_total',
      help: 'Mesh sync passes, by outcome (ok, error).',
      labelNames: ['outcome'],
      registers,
    }),
  };
}

const isNotFound = isKubeNotFound;

interface Availability {
  missing: string[];
  error?: string;
}

/** One of our objects as the last list or apply left it: what an incremental prune deletes. */
interface KnownObject {
  kind: Kind;
  namespace: string;
  name: string;
  service: string | undefined;
}

const kindId = (k: Kind): string => `${k.plural}.${k.group}/${k.version}`;

/** Event types that change what is rendered. */
const RELEVANT = new Set([
  'service_updated',
  'service_deleted',
  'service_registered',
  'service_deregistered',
  'intention_changed',
]);

export class MeshController {
  private readonly api: MeshObjectsApi;
  private timer: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  /** What was applied last, by object key: unchanged objects are not sent again until a resync. */
  private applied = new Map<string, string>();
  private readonly metrics: ReturnType<typeof meshMetrics>;
  /** The next sync lists (detection and prune) instead of trusting what it knows. */
  private full = true;
  /** Kinds found present (`kindId`), per mesh; a missing kind is looked for on every sync. */
  private present = new Map<MeshName, Set<string>>(MESHES.map((m) => [m, new Set<string>()]));
  /** Our objects per mesh, by object key, from the last full list and the applies since. */
  private known = new Map<MeshName, Map<string, KnownObject>>(
    MESHES.map((m) => [m, new Map<string, KnownObject>()]),
  );

  constructor(private readonly opts: MeshControllerOptions) {
    this.api = opts.api ?? opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.metrics = meshMetrics(opts.prom);
  }

  start(): void {
    this.unsubscribe = this.opts.events.subscribe(
      (event) => {
        // Pods are not rendered (only instances registered from outside the cluster are).
        if (RELEVANT.has(event.type) && event.instance?.source !== 'kubernetes') this.schedule();
      },
      { heartbeats: false }, // not RELEVANT
    );
    this.resync = setInterval(() => {
      this.applied.clear();
      this.full = true;
      this.schedule(0);
    }, this.opts.resyncMs);
    this.resync.unref();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    if (this.resync) clearInterval(this.resync);
    await this.running;
  }

  /** Resolves after a full sync that started after this call (tests, leadership changes). */
  async syncNow(): Promise<void> {
    if (this.stopped) return;
    // Another replica may have changed or pruned objects while this one was not leading.
    this.applied.clear();
    this.full = true;
    while (this.running !== undefined) await this.running;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.run();
  }

  /** One sync; then another if something changed meanwhile. */
  private run(): Promise<void> {
    this.running = this.sync().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    });
    return this.running;
  }

  private schedule(delay = this.opts.debounceMs ?? 200): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delay);
  }

  private async sync(): Promise<void> {
    if (!this.opts.isLeader()) return;
    const full = this.full;
    this.full = false;
    try {
      const available = await this.detect(full);
      const lookup = this.opts.renderer.pass();
      const desired = new Map<MeshName, Set<string>>(MESHES.map((m) => [m, new Set<string>()]));
      for (const service of lookup.services) {
        for (const mesh of MESHES) {
          const report = await this.syncOne(mesh, service, {
            lookup,
            available: available[mesh],
            desired: desired.get(mesh)!,
          });
          const key = `MaxineService/${service.namespace}/${service.name}`;
          if (this.opts.reconciler.setMeshReport(key, mesh, report)) this.opts.statusChanged(key);
        }
      }
      for (const mesh of MESHES)
        if (available[mesh].missing.length === 0 && available[mesh].error === undefined)
          await this.prune(mesh, desired.get(mesh)!, full);
      this.metrics.syncs.inc({ outcome: 'ok' });
    } catch (err) {
      // What it knows may be wrong now: the next sync lists again.
      this.full = true;
      this.metrics.syncs.inc({ outcome: 'error' });
      this.opts.logger.error(
        { error: kubeErrorFields(err) },
        'mesh sync failed; retrying on the next change or resync',
      );
    }
  }

  /**
   * Per mesh: the kinds whose CRDs are missing, or why we could not tell (a 403 when RBAC lacks
   * a rule). One mesh's trouble does not stop the other. A full sync looks at every kind;
   * otherwise a kind found present is trusted until the next full sync (an apply that finds
   * it gone makes the next sync a full one).
   */
  private async detect(full: boolean): Promise<Record<MeshName, Availability>> {
    const out: Record<MeshName, Availability> = {
      istio: { missing: [] },
      linkerd: { missing: [] },
    };
    for (const mesh of MESHES) {
      const present = this.present.get(mesh)!;
      if (full) present.clear();
      for (const k of MESH_KINDS[mesh]) {
        if (present.has(kindId(k))) continue;
        try {
          await this.api.listClusterCustomObject({
            group: k.group,
            version: k.version,
            plural: k.plural,
            limit: 1,
          });
          present.add(kindId(k));
        } catch (err) {
          if (isNotFound(err)) out[mesh].missing.push(`${k.kind} (${k.group}/${k.version})`);
          else out[mesh].error ??= `cannot list ${k.plural}.${k.group}: ${describeKubeError(err)}`;
        }
      }
    }
    return out;
  }

  private async syncOne(
    mesh: MeshName,
    service: MeshService,
    pass: { lookup: MeshLookup; available: Availability; desired: Set<string> },
  ): Promise<MeshReport | undefined> {
    const { lookup, desired } = pass;
    const { missing, error } = pass.available;
    if (service.spec.mesh?.[mesh] !== true) return undefined;
    if (error !== undefined) return syncFailedReport(error);
    if (missing.length > 0) return crdsMissingReport(mesh, missing);
    const input = this.opts.renderer.input(service.namespace, service.name, lookup)!;
    const render = renderMesh(mesh, input);
    const uid = this.opts.reconciler.resourceOf(
      `MaxineService/${service.namespace}/${service.name}`,
    )?.metadata.uid;
    // Deleted since this pass began: its delete event brings another pass; applying now would
    // drop the owner reference.
    if (uid === undefined) return undefined;
    const failures: string[] = [];
    for (const obj of render.objects) {
      desired.add(objectKey(obj));
      if (!this.mayWrite()) break;
      try {
        await this.apply(mesh, obj, uid);
      } catch (err) {
        // The kind's CRD went away: look again on the next sync.
        if (isNotFound(err)) this.full = true;
        this.metrics.writes.inc({ mesh, operation: 'apply', outcome: 'error' });
        failures.push(`${obj.kind}/${obj.metadata.name}: ${describeKubeError(err)}`);
      }
    }
    if (failures.length > 0) {
      this.opts.logger.warn(
        { kind: 'MaxineService', namespace: service.namespace, name: service.name, mesh, failures },
        'mesh objects not applied',
      );
    }
    return applyReport(mesh, render, failures);
  }

  private async apply(mesh: MeshName, obj: MeshObject, uid: string): Promise<void> {
    const kind = kindOf(mesh, obj)!;
    const body = ownedObject(obj, uid);
    const key = objectKey(obj);
    const text = JSON.stringify(body);
    if (this.applied.get(key) === text) return;
    await this.refuseForeign(kind, obj, uid);
    await this.api.patchNamespacedCustomObject(
      {
        group: kind.group,
        version: kind.version,
        namespace: obj.metadata.namespace,
        plural: kind.plural,
        name: obj.metadata.name,
        body,
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
    this.applied.set(key, text);
    this.known.get(mesh)!.set(key, {
      kind,
      namespace: obj.metadata.namespace,
      name: obj.metadata.name,
      service: obj.metadata.labels[SERVICE_LABEL],
    });
    this.metrics.writes.inc({ mesh, operation: 'apply', outcome: 'ok' });
    this.opts.logger.debug({ object: key }, 'mesh object applied');
  }

  /**
   * Refuses to take over an object someone else made (a ServiceProfile must be named after the
   * service, so one may well exist): applying would overwrite it, and pruning or the garbage
   * collector would later delete it.
   */
  private async refuseForeign(kind: Kind, obj: MeshObject, uid: string): Promise<void> {
    let existing: { metadata: ListedMeta };
    try {
      existing = (await this.api.getNamespacedCustomObject({
        group: kind.group,
        version: kind.version,
        namespace: obj.metadata.namespace,
        plural: kind.plural,
        name: obj.metadata.name,
      })) as { metadata: ListedMeta };
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (controllerOf(existing.metadata)?.uid === uid) return;
    throw new Error(
      'exists and is not controlled by this MaxineService; Maxine does not take over objects it did not create (rename or delete it to let Maxine manage it)',
    );
  }

  /** Whether this replica may still write: leading and not stopping. */
  private mayWrite(): boolean {
    return !this.stopped && this.opts.isLeader();
  }

  /**
   * Deletes our objects of `mesh` that are no longer rendered: those a full sync lists (in
   * pages), or, on a change, those it knows of (listed or applied since).
   */
  private async prune(mesh: MeshName, desired: Set<string>, full: boolean): Promise<void> {
    const known = this.known.get(mesh)!;
    if (full) {
      known.clear();
      for (const k of MESH_KINDS[mesh]) {
        for (const item of await this.listOwned(mesh, k)) {
          const key = objectKey({
            apiVersion: `${k.group}/${k.version}`,
            kind: k.kind,
            metadata: item,
          });
          known.set(key, {
            kind: k,
            namespace: item.namespace,
            name: item.name,
            service: item.labels?.[SERVICE_LABEL],
          });
        }
      }
    }
    for (const [key, obj] of [...known]) {
      if (desired.has(key)) continue;
      if (!this.mayWrite()) return;
      await this.deleteObject(mesh, key, obj);
    }
  }

  /**
   * Our objects of one kind (our labels AND controlled by a MaxineService: the labels alone
   * also sit on previews someone applied by hand, which are theirs to keep), listed in pages.
   * A continue token that expired (410) starts the list again, once.
   */
  private async listOwned(mesh: MeshName, k: Kind): Promise<ListedMeta[]> {
    const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY},${MESH_LABEL}=${mesh}`;
    const limit = this.opts.listPageSize ?? MESH_LIST_PAGE;
    const out: ListedMeta[] = [];
    let next: string | undefined;
    let restarted = false;
    for (;;) {
      let page: { items?: { metadata: ListedMeta }[]; metadata?: { continue?: string } };
      try {
        page = (await this.api.listClusterCustomObject({
          group: k.group,
          version: k.version,
          plural: k.plural,
          labelSelector,
          limit,
          ...(next !== undefined && { _continue: next }),
        })) as typeof page;
      } catch (err) {
        if (next === undefined || restarted || kubeErrorFields(err).status !== 410) throw err;
        restarted = true;
        out.length = 0;
        next = undefined;
        continue;
      }
      for (const item of page.items ?? [])
        if (ownedByMaxine(item.metadata)) out.push(item.metadata);
      next = page.metadata?.continue || undefined;
      if (next === undefined) break;
    }
    return out;
  }

  private async deleteObject(mesh: MeshName, key: string, obj: KnownObject): Promise<void> {
    const { kind: k, namespace, name } = obj;
    try {
      await this.api.deleteNamespacedCustomObject({
        group: k.group,
        version: k.version,
        namespace,
        plural: k.plural,
        name,
      });
      this.known.get(mesh)!.delete(key);
      this.applied.delete(key);
      this.metrics.writes.inc({ mesh, operation: 'prune', outcome: 'ok' });
      this.opts.logger.info(
        { object: key, kind: 'MaxineService', namespace, name: obj.service },
        'mesh object pruned: no longer rendered',
      );
    } catch (err) {
      if (isNotFound(err)) {
        this.known.get(mesh)!.delete(key);
        this.applied.delete(key);
        return;
      }
      this.metrics.writes.inc({ mesh, operation: 'prune', outcome: 'error' });
      this.opts.logger.warn({ object: key, error: kubeErrorFields(err) }, 'mesh object not pruned');
    }
  }
}
