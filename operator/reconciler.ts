/**
 * Reconciles declared resources into the registry and the policy store. Sources (the folder
 * in standalone mode, informers in Kubernetes) hand it validated objects; it applies what
 * changed and keeps each object's status. The same reconciler serves both sources.
 */
import { resourceKey } from '../common/resources.js';
import type { MeshName } from '../common/mesh/model.js';
import type {
  Condition,
  MaxineResource,
  MeshStatus,
  ResourceKind,
  ResourceStatus,
  ServiceSpec,
} from '../common/resources.js';
import type { PolicyStore } from './policy/store.js';
import type { Clock } from './registry/clock.js';
import type { Registry } from './registry/registry.js';
import { removeCondition, setCondition } from './status.js';
import { mergeConfig } from '../common/config-sources.js';
import type { ConfigSecrets, ResolvedSource, SourceKind } from '../common/config-sources.js';

/** Looks up an object `configFrom` names in a namespace (undefined: absent or not yet known). */
export type ConfigSourceLookup = (
  namespace: string,
  kind: SourceKind,
  name: string,
) => ResolvedSource | undefined;

/** Condition type saying which required configFrom objects or keys are missing. */
export const CONFIG_INCOMPLETE = 'ConfigIncomplete';

/** What a MaxineService's config resolved to last, and what the registry holds from it. */
interface ResolvedConfig {
  /** The config handed to the registry (inline and ConfigMap values) and the Secret keys. */
  config: Record<string, string> | undefined;
  secrets: ConfigSecrets | undefined;
  /** Whether every required source was there (a complete merge replaces a held one). */
  problem: string | undefined;
}

export interface ResourceView {
  kind: ResourceKind;
  namespace: string;
  name: string;
  generation: number;
  source: string;
  spec: MaxineResource['spec'];
  status: ResourceStatus;
}

interface Applied {
  resource: MaxineResource;
  specJson: string;
  generation: number;
  source: string;
  status: ResourceStatus;
}

/** What the mesh controller reports about one mesh of one MaxineService. */
export interface MeshReport {
  condition: Omit<Condition, 'lastTransitionTime' | 'observedGeneration' | 'type'>;
  status?: MeshStatus;
}

/** Condition type of each mesh's report. */
export const MESH_CONDITIONS: Record<MeshName, string> = {
  istio: 'IstioSynced',
  linkerd: 'LinkerdSynced',
};

const MESH_CONDITION_TYPES: ReadonlySet<string> = new Set(Object.values(MESH_CONDITIONS));

/** The mesh conditions and `status.mesh` a resource read from the API server already has. */
function meshReportOf(resource: MaxineResource): Pick<ResourceStatus, 'conditions' | 'mesh'> {
  const status = resource.kind === 'MaxineService' ? resource.status : undefined;
  return {
    conditions: (status?.conditions ?? []).filter((c) => MESH_CONDITION_TYPES.has(c.type)),
    ...(status?.mesh !== undefined && { mesh: status.mesh }),
  };
}

export class Reconciler {
  private readonly applied = new Map<string, Applied>();
  /** MaxineService key → its config as last resolved from configFrom and inline config. */
  private readonly resolved = new Map<string, ResolvedConfig>();
  private lookup: ConfigSourceLookup | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly policy: PolicyStore,
    private readonly clock: Clock,
  ) {}

  /**
   * Records the mesh controller's report for one mesh of a MaxineService (undefined: the mesh
   * is not enabled). Returns true when the status changed.
   */
  setMeshReport(key: string, mesh: MeshName, report: MeshReport | undefined): boolean {
    const entry = this.applied.get(key);
    if (entry === undefined || entry.resource.kind !== 'MaxineService') return false;
    const before = JSON.stringify(entry.status);
    const type = MESH_CONDITIONS[mesh];
    const { mesh: meshStatus = {}, ...rest } = entry.status;
    const others = { ...meshStatus };
    delete others[mesh];
    if (report === undefined) {
      entry.status = { ...rest, conditions: removeCondition(rest.conditions ?? [], type) };
    } else {
      entry.status = {
        ...rest,
        conditions: setCondition(
          rest.conditions ?? [],
          { type, ...report.condition, observedGeneration: entry.generation },
          this.clock.now(),
        ),
      };
      if (report.status !== undefined) Object.assign(others, { [mesh]: report.status });
    }
    if (Object.keys(others).length > 0) entry.status.mesh = others;
    return JSON.stringify(entry.status) !== before;
  }

  /** Applies one object if its spec changed. Returns true when something was applied. */
  upsert(resource: MaxineResource, source: string): boolean {
    const key = resourceKey(resource);
    const specJson = JSON.stringify(resource.spec);
    const previous = this.applied.get(key);
    if (previous !== undefined && previous.specJson === specJson) {
      previous.source = source;
      return false;
    }
    this.applyToStores(resource);
    const generation = resource.metadata.generation ?? (previous?.generation ?? 0) + 1;
    // A restarted operator starts from the mesh report the object already carries, so the mesh
    // conditions do not vanish and come back (with a new transition time) on every restart.
    const carried = previous?.status ?? meshReportOf(resource);
    const conditions = setCondition(
      removeCondition(carried.conditions ?? [], 'Invalid'),
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: 'Applied to the registry',
        observedGeneration: generation,
      },
      this.clock.now(),
    );
    this.applied.set(key, {
      resource,
      specJson,
      generation,
      source,
      status: {
        observedGeneration: generation,
        conditions,
        ...(carried.mesh !== undefined && { mesh: carried.mesh }),
      },
    });
    const applied = this.applied.get(key);
    if (applied !== undefined && resource.kind === 'MaxineService') this.noteConfigProblem(applied);
    return true;
  }

  /** Where `configFrom` objects are looked up (Kubernetes: the watched ConfigMaps/Secrets). */
  setConfigSources(lookup: ConfigSourceLookup): void {
    this.lookup = lookup;
  }

  /**
   * Resolves a MaxineService's configFrom again (an object it names changed). Returns true when
   * what the registry holds or the ConfigIncomplete condition changed.
   */
  refreshConfig(namespace: string, name: string): boolean {
    const key = `MaxineService/${namespace}/${name}`;
    const entry = this.applied.get(key);
    if (entry?.resource.kind !== 'MaxineService') return false;
    const before = JSON.stringify(this.resolved.get(key));
    const view = this.resolveConfig(key, namespace, entry.resource.spec);
    if (JSON.stringify(this.resolved.get(key)) === before) return false;
    this.registry.upsertService(namespace, name, view.spec, view.secrets);
    this.noteConfigProblem(entry);
    return true;
  }

  /** The spec the registry gets: `config` the merged inline and ConfigMap values. */
  private resolveConfig(
    key: string,
    namespace: string,
    spec: ServiceSpec,
  ): { spec: ServiceSpec; secrets: ConfigSecrets | undefined } {
    if ((spec.configFrom ?? []).length === 0) {
      this.resolved.delete(key);
      return { spec, secrets: undefined };
    }
    const lookup = this.lookup;
    const merged = mergeConfig(spec, (kind, name) => lookup?.(namespace, kind, name));
    const problem =
      merged.tooLarge ??
      (merged.refused !== undefined
        ? `refused keys (no config can hold them): ${merged.refused.join(', ')}`
        : undefined) ??
      (merged.missing.length > 0 ? `missing: ${merged.missing.join(', ')}` : undefined);
    const previous = this.resolved.get(key);
    let next: ResolvedConfig;
    if (problem === undefined) {
      const hasSecrets = Object.keys(merged.secrets).length > 0;
      next = {
        config:
          spec.config === undefined && Object.keys(merged.config).length === 0 && !hasSecrets
            ? undefined
            : merged.config,
        secrets: hasSecrets ? merged.secrets : undefined,
        problem,
      };
    } else {
      // The last complete config stays in force (or, before one, the inline config alone).
      next =
        previous !== undefined
          ? { ...previous, problem }
          : { config: spec.config, secrets: undefined, problem };
    }
    this.resolved.set(key, next);
    const view: ServiceSpec = { ...spec };
    if (next.config === undefined) delete view.config;
    else view.config = next.config;
    return { spec: view, secrets: next.secrets };
  }

  /** The ConfigIncomplete condition of a MaxineService, after its config was resolved. */
  private noteConfigProblem(entry: Applied): void {
    const problem = this.resolved.get(resourceKey(entry.resource))?.problem;
    const conditions = entry.status.conditions ?? [];
    entry.status.conditions =
      problem === undefined
        ? removeCondition(conditions, CONFIG_INCOMPLETE)
        : setCondition(
            conditions,
            {
              type: CONFIG_INCOMPLETE,
              status: 'True',
              reason: 'ConfigSourceMissing',
              message: `${problem}; the last complete config stays in force`,
              observedGeneration: entry.generation,
            },
            this.clock.now(),
          );
  }

  /** The problem with a MaxineService's configFrom, if any (the ConfigIncomplete message). */
  configProblem(namespace: string, name: string): string | undefined {
    return this.resolved.get(`MaxineService/${namespace}/${name}`)?.problem;
  }

  delete(key: string): boolean {
    const previous = this.applied.get(key);
    if (previous === undefined) return false;
    this.resolved.delete(key);
    const { kind, metadata } = previous.resource;
    if (kind === 'MaxineService') this.registry.removeService(metadata.namespace, metadata.name);
    else if (kind === 'MaxineIntention')
      this.policy.deleteIntention(metadata.namespace, metadata.name);
    else this.policy.deleteAcl(metadata.namespace, metadata.name);
    this.applied.delete(key);
    return true;
  }

  /** Makes the applied set equal to `desired` (a folder rescan). */
  replaceAll(desired: ReadonlyMap<string, { resource: MaxineResource; file: string }>): {
    applied: number;
    deleted: number;
  } {
    let deleted = 0;
    for (const key of [...this.applied.keys()]) {
      if (!desired.has(key) && this.delete(key)) deleted += 1;
    }
    let applied = 0;
    for (const { resource, file } of desired.values())
      if (this.upsert(resource, file)) applied += 1;
    return { applied, deleted };
  }

  /** Says on each object of a broken source that its last valid version is the one in force. */
  markInvalid(keys: Iterable<string>, message: string): void {
    for (const key of keys) {
      const entry = this.applied.get(key);
      if (entry === undefined) continue;
      entry.status.conditions = setCondition(
        entry.status.conditions ?? [],
        {
          type: 'Invalid',
          status: 'True',
          reason: 'SourceInvalid',
          message,
          observedGeneration: entry.generation,
        },
        this.clock.now(),
      );
    }
  }

  clearInvalid(keys: Iterable<string>): void {
    for (const key of keys) {
      const entry = this.applied.get(key);
      if (entry !== undefined)
        entry.status.conditions = removeCondition(entry.status.conditions ?? [], 'Invalid');
    }
  }

  /** The spec in force for one object (the last valid one). */
  resourceOf(key: string): MaxineResource | undefined {
    return this.applied.get(key)?.resource;
  }

  /** The spec in force of one MaxineService, if declared. */
  serviceSpec(namespace: string, name: string): ServiceSpec | undefined {
    const r = this.resourceOf(`MaxineService/${namespace}/${name}`);
    return r?.kind === 'MaxineService' ? r.spec : undefined;
  }

  /** The MaxineServices in force (their last valid specs). */
  *services(): Generator<{ namespace: string; name: string; spec: ServiceSpec }> {
    for (const { resource } of this.applied.values()) {
      if (resource.kind === 'MaxineService') {
        const { namespace, name } = resource.metadata;
        yield { namespace, name, spec: resource.spec };
      }
    }
  }

  /** The status in force for one object (with live instance counts for services). */
  statusOf(key: string): ResourceStatus | undefined {
    const entry = this.applied.get(key);
    return entry === undefined ? undefined : this.statusOf$(entry);
  }

  list(kind?: ResourceKind): ResourceView[] {
    const out: ResourceView[] = [];
    for (const entry of this.applied.values()) {
      const { resource } = entry;
      if (kind !== undefined && resource.kind !== kind) continue;
      out.push({
        kind: resource.kind,
        namespace: resource.metadata.namespace,
        name: resource.metadata.name,
        generation: entry.generation,
        source: entry.source,
        spec: resource.spec,
        status: this.statusOf$(entry),
      });
    }
    return out.sort((a, b) =>
      `${a.kind}/${a.namespace}/${a.name}`.localeCompare(`${b.kind}/${b.namespace}/${b.name}`),
    );
  }

  private statusOf$(entry: Applied): ResourceStatus {
    if (entry.resource.kind !== 'MaxineService') return entry.status;
    const counts = this.registry.counts(
      entry.resource.metadata.namespace,
      entry.resource.metadata.name,
    );
    if (counts === undefined) return entry.status;
    const config = this.registry.configs.state(
      entry.resource.metadata.namespace,
      entry.resource.metadata.name,
    );
    return {
      ...entry.status,
      instances: counts,
      ready: `${counts.passing + counts.warning}/${counts.total}`,
      ...(config && {
        config: { version: config.version, ...(config.hash !== null && { hash: config.hash }) },
      }),
    };
  }

  private applyToStores(resource: MaxineResource): void {
    const { namespace, name } = resource.metadata;
    switch (resource.kind) {
      case 'MaxineService': {
        // The version the object's status recorded (a previous process wrote it): kept for
        // the same config, the next one numbered above it.
        if (resource.status?.config !== undefined) {
          const { version, hash } = resource.status.config;
          this.registry.configs.seedVersion(namespace, name, version, hash ?? null);
        }
        const view = this.resolveConfig(resourceKey(resource), namespace, resource.spec);
        this.registry.upsertService(namespace, name, view.spec, view.secrets);
        break;
      }
      case 'MaxineIntention':
        this.policy.setIntention(namespace, name, resource.spec);
        break;
      case 'MaxineACL':
        this.policy.setAcl(namespace, name, resource.spec);
        break;
    }
  }
}
