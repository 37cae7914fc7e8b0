/**
 * Intentions and ACLs currently in force, keyed by `namespace/name`. They are held and every
 * change is announced here; policy/access.ts evaluates them.
 *
 * An intention change is announced with its spec when the intention is in force (after
 * namespace confinement, `intentionInForce`), so sidecars can keep the intentions that decide
 * their calls (sidecar/proxy/authorizer.ts) without asking for them.
 */
import type { AclSpec, IntentionSpec } from '../../common/resources.js';
import type { RegistryEventDraft } from '../../common/wire.js';

export interface StoredIntention {
  namespace: string;
  name: string;
  spec: IntentionSpec;
}
export interface StoredAcl {
  namespace: string;
  name: string;
  spec: AclSpec;
}

/** The namespaces whose intentions may govern other namespaces' services, by default. */
export const DEFAULT_POLICY_NAMESPACES: readonly string[] = ['maxine-system'];

/**
 * Whether an intention takes effect: one outside the policy namespaces governs only its own
 * namespace's services (namespace confinement), so an intention naming another namespace's
 * destination is held (and reported) but decides nothing.
 */
export function intentionInForce(
  intention: { namespace: string; spec: IntentionSpec },
  policyNamespaces: ReadonlySet<string>,
): boolean {
  const destination = intention.spec.destination.namespace ?? intention.namespace;
  return policyNamespaces.has(intention.namespace) || destination === intention.namespace;
}

function destinationOf(
  namespace: string,
  spec: IntentionSpec,
): { namespace: string; name: string } {
  return { namespace: spec.destination.namespace ?? namespace, name: spec.destination.name };
}

export class PolicyStore {
  readonly intentions = new Map<string, StoredIntention>();
  readonly acls = new Map<string, StoredAcl>();
  /** Bumped on every change, so evaluators know when to rebuild. */
  version = 0;
  readonly policyNamespaces: ReadonlySet<string>;

  constructor(
    private readonly emit: (event: RegistryEventDraft) => void,
    options: { policyNamespaces?: readonly string[] } = {},
  ) {
    this.policyNamespaces = new Set(options.policyNamespaces ?? DEFAULT_POLICY_NAMESPACES);
  }

  setIntention(namespace: string, name: string, spec: IntentionSpec): void {
    const key = `${namespace}/${name}`;
    const previous = this.intentions.get(key);
    this.intentions.set(key, { namespace, name, spec });
    this.version++;
    // Whoever watches the old destination must learn the intention no longer concerns it.
    if (previous !== undefined) {
      const before = destinationOf(namespace, previous.spec);
      const after = destinationOf(namespace, spec);
      if (before.namespace !== after.namespace || before.name !== after.name)
        this.emitIntention(namespace, name, previous.spec, 'deleted');
    }
    this.emitIntention(namespace, name, spec, 'applied');
  }

  deleteIntention(namespace: string, name: string): void {
    const previous = this.intentions.get(`${namespace}/${name}`);
    if (previous === undefined) return;
    this.intentions.delete(`${namespace}/${name}`);
    this.version++;
    this.emitIntention(namespace, name, previous.spec, 'deleted');
  }

  setAcl(namespace: string, name: string, spec: AclSpec): void {
    this.acls.set(`${namespace}/${name}`, { namespace, name, spec });
    this.version++;
    this.emit({
      type: 'acl_changed',
      service: { namespace, name: '*' },
      data: { acl: { namespace, name }, change: 'applied' },
    });
  }

  deleteAcl(namespace: string, name: string): void {
    if (!this.acls.delete(`${namespace}/${name}`)) return;
    this.version++;
    this.emit({
      type: 'acl_changed',
      service: { namespace, name: '*' },
      data: { acl: { namespace, name }, change: 'deleted' },
    });
  }

  private emitIntention(
    namespace: string,
    name: string,
    spec: IntentionSpec,
    change: 'applied' | 'deleted',
  ): void {
    const inForce =
      change === 'applied' && intentionInForce({ namespace, spec }, this.policyNamespaces);
    this.emit({
      type: 'intention_changed',
      service: destinationOf(namespace, spec),
      data: {
        intention: { namespace, name },
        change,
        ...(change === 'applied' && { inForce }),
        ...(inForce && { spec }),
      },
    });
  }
}
