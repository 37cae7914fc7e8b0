/**
 * Intentions and ACLs currently in force, keyed by `namespace/name`. They are held and every
 * change is announced here; policy/access.ts evaluates them.
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

export class PolicyStore {
  readonly intentions = new Map<string, StoredIntention>();
  readonly acls = new Map<string, StoredAcl>();
  /** Bumped on every change, so evaluators know when to rebuild. */
  version = 0;

  constructor(private readonly emit: (event: RegistryEventDraft) => void) {}

  setIntention(namespace: string, name: string, spec: IntentionSpec): void {
    this.intentions.set(`${namespace}/${name}`, { namespace, name, spec });
    this.version++;
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
    this.emit({
      type: 'intention_changed',
      service: { namespace: spec.destination.namespace ?? namespace, name: spec.destination.name },
      data: { intention: { namespace, name }, change },
    });
  }
}
