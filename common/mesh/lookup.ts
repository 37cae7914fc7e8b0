/**
 * What the authorization renderers look up about the services and intentions around one
 * service, indexed once for a whole pass over the services (the mesh controller renders every
 * MaxineService against the same services and intentions): the intentions whose destination
 * may be a given service, the services a source pattern matches, the services grouped by the
 * ServiceAccount they run as, and the identities of each namespace. Built in O(services +
 * intentions); each lookup costs what it returns, so rendering all n services is O(n) plus
 * what the intentions name, where a scan of all services or all intentions per service made
 * it O(n²) (and O(n³) with one intention per service).
 */
import type { IntentionEntry, ServiceRef } from '../policy/intentions.js';
import type { MeshService } from './model.js';

const WILDCARD = '*';

export interface Identity {
  namespace: string;
  serviceAccount: string;
}

export const identityKey = (i: Identity): string => `${i.namespace}/${i.serviceAccount}`;

/** The identity a service runs as, and whether Maxine only assumes it (no `serviceAccount`). */
export function identityOf(service: MeshService): { identity: Identity; implicit: boolean } {
  const sa = service.spec.serviceAccount;
  return {
    identity: { namespace: service.namespace, serviceAccount: sa ?? 'default' },
    implicit: sa === undefined,
  };
}

/** The services sharing one identity. */
export interface IdentityGroup {
  identity: Identity;
  members: MeshService[];
}

const refKey = (namespace: string, name: string): string => `${namespace}/${name}`;

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

export class MeshLookup {
  /** Identity groups in a stable order (by identity key). */
  readonly groups: readonly IdentityGroup[];
  private readonly groupOf = new Map<MeshService, IdentityGroup>();
  private readonly groupOrder = new Map<IdentityGroup, number>();
  private readonly byKey = new Map<string, MeshService>();
  private readonly byNamespace = new Map<string, MeshService[]>();
  private readonly byName = new Map<string, MeshService[]>();
  /** Intentions by destination: exact (`ns/name`), whole namespace (`ns`), and the rest. */
  private readonly exactDestination = new Map<string, IntentionEntry[]>();
  private readonly namespaceDestination = new Map<string, IntentionEntry[]>();
  private readonly nameDestination = new Map<string, IntentionEntry[]>();
  private readonly anyDestination: IntentionEntry[] = [];
  /** Namespaces (sorted) with the identities of their services. */
  readonly namespaces: ReadonlyMap<string, readonly Identity[]>;

  constructor(
    readonly services: readonly MeshService[],
    readonly intentions: readonly IntentionEntry[],
  ) {
    const groups = new Map<string, IdentityGroup>();
    const identitiesByNs = new Map<string, Map<string, Identity>>();
    for (const s of services) {
      const { identity } = identityOf(s);
      const key = identityKey(identity);
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = { identity, members: [] }));
      group.members.push(s);
      this.groupOf.set(s, group);
      this.byKey.set(refKey(s.namespace, s.name), s);
      push(this.byNamespace, s.namespace, s);
      push(this.byName, s.name, s);
      let ids = identitiesByNs.get(s.namespace);
      if (ids === undefined) identitiesByNs.set(s.namespace, (ids = new Map<string, Identity>()));
      ids.set(key, identity);
    }
    this.groups = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, g]) => g);
    this.groups.forEach((g, i) => this.groupOrder.set(g, i));
    this.namespaces = new Map(
      [...identitiesByNs.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([ns, ids]) => [ns, [...ids.values()]]),
    );
    for (const entry of intentions) {
      const { destination } = entry.spec;
      const ns = destination.namespace ?? entry.namespace;
      if (ns === WILDCARD && destination.name === WILDCARD) this.anyDestination.push(entry);
      else if (ns === WILDCARD) push(this.nameDestination, destination.name, entry);
      else if (destination.name === WILDCARD) push(this.namespaceDestination, ns, entry);
      else push(this.exactDestination, refKey(ns, destination.name), entry);
    }
  }

  /** The declared service `namespace/name`. */
  service(namespace: string, name: string): MeshService | undefined {
    return this.byKey.get(refKey(namespace, name));
  }

  /** The intentions whose destination pattern matches `destination` (the rest cannot decide it). */
  intentionsFor(destination: ServiceRef): IntentionEntry[] {
    return [
      ...(this.exactDestination.get(refKey(destination.namespace, destination.name)) ?? []),
      ...(this.namespaceDestination.get(destination.namespace) ?? []),
      ...(this.nameDestination.get(destination.name) ?? []),
      ...this.anyDestination,
    ];
  }

  /**
   * The identity groups (in `groups` order) with a member that some source of `intentions`
   * matches: the only groups whose callers an intention may decide; every other caller gets
   * the default, as an unlisted caller does.
   */
  groupsNamedBy(intentions: readonly IntentionEntry[]): IdentityGroup[] {
    const found = new Set<IdentityGroup>();
    const add = (services: readonly MeshService[] | undefined): void => {
      for (const s of services ?? []) found.add(this.groupOf.get(s)!);
    };
    for (const entry of intentions) {
      for (const source of entry.spec.sources) {
        const ns = source.namespace ?? entry.namespace;
        if (ns === WILDCARD && source.name === WILDCARD) return [...this.groups];
        if (ns === WILDCARD) add(this.byName.get(source.name));
        else if (source.name === WILDCARD) add(this.byNamespace.get(ns));
        else {
          const s = this.byKey.get(refKey(ns, source.name));
          if (s !== undefined) add([s]);
        }
      }
    }
    return [...found].sort((a, b) => this.groupOrder.get(a)! - this.groupOrder.get(b)!);
  }
}

/** The lookup of a render input: the pass's own when it brings one, else built for this call. */
export function lookupOf(input: {
  services: readonly MeshService[];
  intentions: readonly IntentionEntry[];
  lookup?: MeshLookup;
}): MeshLookup {
  const given = input.lookup;
  if (
    given !== undefined &&
    given.services === input.services &&
    given.intentions === input.intentions
  )
    return given;
  return new MeshLookup(input.services, input.intentions);
}
