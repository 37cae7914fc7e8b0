/**
 * Who may write which instance. In standalone mode anyone on localhost may (the operator says
 * so loudly in its log). In Kubernetes mode a write must come from a sidecar presenting its
 * pod's projected ServiceAccount token: it may register only a service whose selector picks
 * its own pod, and renew or remove only its own pod's instances (docs/security.md).
 */
import type { IncomingMessage } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import type { ServiceSpec } from '../../common/resources.js';
import type { RegisterRequest } from '../../common/wire.js';
import { podInstanceId, selects } from '../kube/pods.js';
import type { PodLike } from '../kube/pods.js';
import { bearerToken } from './tokenreview.js';
import type { PodIdentity } from './tokenreview.js';

/** How a permitted registration is applied. */
export type RegisterPlan =
  | { kind: 'registration' }
  /** A sidecar: its heartbeats and checks go onto its pod's instance. */
  | { kind: 'sidecar'; id: string; identity: PodIdentity };

export interface InstanceWriteGuard {
  register(req: IncomingMessage, body: RegisterRequest): Promise<RegisterPlan>;
  /** Throws unless the caller may renew or remove instance `id`. */
  instance(req: IncomingMessage, id: string): Promise<PodIdentity | undefined>;
}

export const openGuard: InstanceWriteGuard = {
  register: () => Promise.resolve({ kind: 'registration' }),
  instance: () => Promise.resolve(undefined),
};

/** What the guard reads from the informer caches and the registry. */
export interface PodDirectory {
  pod(namespace: string, name: string): (PodLike & { metadata?: { uid?: string } }) | undefined;
  service(namespace: string, name: string): ServiceSpec | undefined;
  /** The namespace and pod of an instance, when it is a pod's. */
  ownerOf(id: string): { namespace: string; pod?: string } | undefined;
}

export interface SidecarGuardOptions {
  reviewer: { review(token: string): Promise<PodIdentity> };
  directory: PodDirectory;
}

export class SidecarTokenGuard implements InstanceWriteGuard {
  constructor(private readonly opts: SidecarGuardOptions) {}

  async register(req: IncomingMessage, body: RegisterRequest): Promise<RegisterPlan> {
    const identity = await this.identify(req);
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
    const spec = this.opts.directory.service(body.namespace, body.service);
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

  async instance(req: IncomingMessage, id: string): Promise<PodIdentity> {
    const identity = await this.identify(req);
    this.podOf(identity);
    const owner = this.opts.directory.ownerOf(id);
    // Unknown ids answer 404 from the registry, so the sidecar registers again.
    if (
      owner !== undefined &&
      (owner.namespace !== identity.namespace || owner.pod !== identity.pod?.name)
    ) {
      throw new MaxineError(
        'FORBIDDEN',
        `Instance "${id}" is not an instance of pod ${identity.namespace}/${identity.pod?.name ?? '?'}`,
      );
    }
    return identity;
  }

  private async identify(req: IncomingMessage): Promise<PodIdentity> {
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      throw new MaxineError(
        'UNAUTHENTICATED',
        "Instance writes need the pod's projected ServiceAccount token as `Authorization: Bearer <token>`",
      );
    }
    const identity = await this.opts.reviewer.review(token);
    if (identity.pod === undefined) {
      throw new MaxineError(
        'FORBIDDEN',
        `The token of ${identity.namespace}/${identity.serviceAccount} is not bound to a pod; use a projected token`,
      );
    }
    return identity;
  }

  /**
   * The token's pod from the informer cache, if known. A pod recreated under the same name
   * (StatefulSet) must not be driven by the earlier one's token: a uid mismatch is refused.
   */
  private podOf(identity: PodIdentity): PodLike | undefined {
    const name = identity.pod?.name ?? '';
    const pod = this.opts.directory.pod(identity.namespace, name);
    if (pod !== undefined && pod.metadata?.uid !== identity.pod?.uid) {
      throw new MaxineError(
        'FORBIDDEN',
        `The token belongs to an earlier pod named ${identity.namespace}/${name}`,
      );
    }
    return pod;
  }
}
