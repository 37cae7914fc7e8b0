/**
 * Which instance a write may touch, beyond what ACLs say. A pod's instance belongs to the
 * sidecar presenting that pod's projected token: it may register only a service whose
 * selector picks its own pod, and renew or remove only its own pod's instances. Writes by
 * other principals (JWT users, ServiceAccounts without a pod) go to instances of their own
 * and are decided by ACLs alone (docs/security.md).
 */
import { MaxineError } from '../../common/errors.js';
import type { ServiceSpec } from '../../common/resources.js';
import type { RegisterRequest } from '../../common/wire.js';
import { podInstanceId, selects } from '../kube/pods.js';
import type { PodLike } from '../kube/pods.js';
import type { Principal } from './authenticator.js';
import type { PodIdentity } from './tokenreview.js';

/** How a permitted registration is applied. */
export type RegisterPlan =
  | { kind: 'registration' }
  /** A sidecar: its heartbeats and checks go onto its pod's instance. */
  | { kind: 'sidecar'; id: string; identity: PodIdentity };

export interface InstanceWriteGuard {
  register(principal: Principal, body: RegisterRequest): RegisterPlan;
  /**
   * Throws unless the caller may renew or remove instance `id` (ACLs aside); true when the
   * instance is the caller's own pod's.
   */
  instance(principal: Principal, id: string): boolean;
  /**
   * Whether `principal` is a sidecar of `service`'s own pods, reporting its calls
   * (POST /api/v1/reports). Throws FORBIDDEN when it is a pod's sidecar but not of a pod
   * `service` selects; false when it is no pod's (ACLs decide: `register` on the service).
   */
  reporter(principal: Principal, service: { namespace: string; name: string }): boolean;
}

/** Standalone: no pods, every instance is decided by ACLs alone. */
export const openGuard: InstanceWriteGuard = {
  register: () => ({ kind: 'registration' }),
  instance: () => false,
  reporter: () => false,
};

/** What the guard reads from the informer caches and the registry. */
export interface PodDirectory {
  pod(namespace: string, name: string): (PodLike & { metadata?: { uid?: string } }) | undefined;
  service(namespace: string, name: string): ServiceSpec | undefined;
  /** The namespace and pod of an instance, when it is a pod's. */
  ownerOf(id: string): { namespace: string; pod?: string } | undefined;
}

export class PodGuard implements InstanceWriteGuard {
  constructor(private readonly directory: PodDirectory) {}

  register(principal: Principal, body: RegisterRequest): RegisterPlan {
    const identity = principal.pod;
    if (identity === undefined) return { kind: 'registration' };
    const pod = this.podOf(identity);
    if (pod === undefined) {
      throw new MaxineError(
        'NOT_READY',
        `Pod ${identity.namespace}/${identity.pod?.name} is not known yet; retry`,
      );
    }
    if (body.namespace !== identity.namespace) {
      throw new MaxineError(
        'FORBIDDEN',
        `A sidecar of namespace ${identity.namespace} cannot register into namespace ${body.namespace}`,
      );
    }
    const spec = this.directory.service(body.namespace, body.service);
    if (spec === undefined) {
      throw new MaxineError(
        'SERVICE_NOT_DECLARED',
        `Service ${body.namespace}/${body.service} is not declared by a MaxineService`,
      );
    }
    if (!selects(spec.selector, pod.metadata?.labels)) {
      throw new MaxineError(
        'FORBIDDEN',
        `Pod ${identity.namespace}/${identity.pod?.name} is not selected by MaxineService ${body.namespace}/${body.service}: a sidecar may register only its own pod's service`,
      );
    }
    return {
      kind: 'sidecar',
      id: podInstanceId(body.namespace, identity.pod?.name ?? '', body.service),
      identity,
    };
  }

  instance(principal: Principal, id: string): boolean {
    const identity = principal.pod;
    if (identity !== undefined) this.podOf(identity);
    const owner = this.directory.ownerOf(id);
    // Unknown ids answer 404 from the registry, so the sidecar registers again. Instances
    // that are no pod's are left to ACLs.
    if (owner?.pod === undefined) return false;
    if (owner.namespace !== identity?.namespace || owner.pod !== identity.pod?.name) {
      const whose =
        identity === undefined
          ? principal.who
          : `pod ${identity.namespace}/${identity.pod?.name ?? '?'}`;
      throw new MaxineError(
        'FORBIDDEN',
        `Instance "${id}" belongs to pod ${owner.namespace}/${owner.pod}, not to ${whose}: only that pod's sidecar may write it`,
      );
    }
    return true;
  }

  reporter(principal: Principal, service: { namespace: string; name: string }): boolean {
    const identity = principal.pod;
    if (identity === undefined) return false;
    const pod = this.podOf(identity);
    const podName = `${identity.namespace}/${identity.pod?.name ?? '?'}`;
    if (pod === undefined)
      throw new MaxineError('NOT_READY', `Pod ${podName} is not known yet; retry`);
    const spec =
      identity.namespace === service.namespace
        ? this.directory.service(service.namespace, service.name)
        : undefined;
    if (spec === undefined || !selects(spec.selector, pod.metadata?.labels)) {
      throw new MaxineError(
        'FORBIDDEN',
        `Pod ${podName} is not selected by MaxineService ${service.namespace}/${service.name}: a sidecar may report only its own service's calls`,
      );
    }
    return true;
  }

  /**
   * The token's pod from the informer cache, if known. A pod recreated under the same name
   * (StatefulSet) must not be driven by the earlier one's token: a uid mismatch is refused.
   */
  private podOf(identity: PodIdentity): PodLike | undefined {
    const name = identity.pod?.name ?? '';
    const pod = this.directory.pod(identity.namespace, name);
    if (pod !== undefined && pod.metadata?.uid !== identity.pod?.uid) {
      throw new MaxineError(
        'FORBIDDEN',
        `The token belongs to an earlier pod named ${identity.namespace}/${name}`,
      );
    }
    return pod;
  }
}
