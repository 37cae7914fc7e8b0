/**
 * Which pods a selector picks, without scanning a namespace (pure). A pod change used to
 * re-sync every MaxineService of its namespace, and each sync filtered every pod of the
 * namespace: O(services × pods) per pod event, ten million selector checks per event with
 * 1,000 services and 10,000 pods in one namespace. With this index a pod event concerns the
 * services whose selector matched its labels before or matches them now, and a sync reads the
 * pods of the selector's rarest label pair.
 *
 * `slimPod` drops what the operator never reads from the pods its informer keeps (managed
 * fields, volumes, most of each container, container statuses): the cache holds every pod of
 * the cluster, and these parts are most of a real pod's bytes.
 */
import { selects } from './pods.js';

type Labels = Readonly<Record<string, string>>;

const pairKey = (namespace: string, key: string, value: string): string =>
  `${namespace}\u0000${key}\u0000${value}`;

export class PodSelectorIndex {
  /** `namespace/name` → the labels the pod was indexed with. */
  private readonly labels = new Map<string, Labels>();
  /** `namespace, key, value` → names of the pods carrying that label. */
  private readonly byPair = new Map<string, Set<string>>();

  get size(): number {
    return this.labels.size;
  }

  /** Indexes (or re-indexes) a pod; returns the labels it had before, if it was known. */
  upsert(namespace: string, name: string, labels: Labels | undefined): Labels | undefined {
    const previous = this.remove(namespace, name);
    const now = { ...(labels ?? {}) };
    this.labels.set(`${namespace}/${name}`, now);
    for (const [k, v] of Object.entries(now)) {
      const key = pairKey(namespace, k, v);
      let names = this.byPair.get(key);
      if (names === undefined) this.byPair.set(key, (names = new Set()));
      names.add(name);
    }
    return previous;
  }

  /** Forgets a pod; returns the labels it had, if it was known. */
  remove(namespace: string, name: string): Labels | undefined {
    const id = `${namespace}/${name}`;
    const previous = this.labels.get(id);
    if (previous === undefined) return undefined;
    this.labels.delete(id);
    for (const [k, v] of Object.entries(previous)) {
      const key = pairKey(namespace, k, v);
      const names = this.byPair.get(key);
      names?.delete(name);
      if (names?.size === 0) this.byPair.delete(key);
    }
    return previous;
  }

  /** Names of the pods of `namespace` that `selector` picks (none for an empty selector). */
  selected(namespace: string, selector: Labels | undefined): string[] {
    const pairs = Object.entries(selector ?? {});
    if (pairs.length === 0) return [];
    let rarest: Set<string> | undefined;
    for (const [k, v] of pairs) {
      const names = this.byPair.get(pairKey(namespace, k, v));
      if (names === undefined) return [];
      if (rarest === undefined || names.size < rarest.size) rarest = names;
    }
    return [...(rarest ?? [])].filter((name) =>
      selects(selector as Record<string, string>, this.labels.get(`${namespace}/${name}`)),
    );
  }
}

/** A pod as the informer delivers it (only the parts slimPod touches are typed). */
interface FatPod {
  metadata?: { managedFields?: unknown };
  spec?: Record<string, unknown> & {
    containers?: Record<string, unknown>[];
    initContainers?: Record<string, unknown>[];
  };
  status?: Record<string, unknown>;
}

const SPEC_KEPT = new Set([
  'nodeName',
  'containers',
  'initContainers',
  'readinessGates',
  'serviceAccountName',
]);
const CONTAINER_KEPT = new Set(['name', 'ports', 'restartPolicy']);
const STATUS_KEPT = new Set(['phase', 'podIP', 'podIPs', 'conditions']);

function keepOnly(object: Record<string, unknown> | undefined, kept: ReadonlySet<string>): void {
  if (object === undefined) return;
  for (const key of Object.keys(object)) if (!kept.has(key)) delete object[key];
}

/**
 * Drops, in place, what the operator never reads from a cached pod (see PodLike in pods.ts):
 * the informer keeps the object it was given, so this shrinks the cache itself. Metadata stays
 * whole but for managedFields (labels, annotations, uid and resourceVersion are all read).
 */
export function slimPod(pod: FatPod): void {
  delete pod.metadata?.managedFields;
  keepOnly(pod.spec, SPEC_KEPT);
  for (const c of pod.spec?.containers ?? []) keepOnly(c, CONTAINER_KEPT);
  for (const c of pod.spec?.initContainers ?? []) keepOnly(c, CONTAINER_KEPT);
  keepOnly(pod.status, STATUS_KEPT);
}
