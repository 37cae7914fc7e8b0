/**
 * The inputs of the mesh renderers (common/mesh): builds a renderer input for one MaxineService from
 * what is in force (services, intentions after confinement, instances registered from outside
 * the cluster), for the HTTP API, the sidecars and the mesh controller alike.
 */
import {
  renderMesh,
  type MeshName,
  type MeshOptions,
  type MeshRender,
} from '../../common/mesh/index.js';
import { MeshLookup } from '../../common/mesh/lookup.js';
import type { MeshInput, MeshService } from '../../common/mesh/model.js';
import type { OperatorConfig } from '../config.js';
import type { AccessControl } from '../policy/access.js';
import type { Reconciler } from '../reconciler.js';
import type { Registry } from '../registry/registry.js';

export interface MeshInputsDeps {
  reconciler: Reconciler;
  registry: Registry;
  access: AccessControl;
  config: Pick<
    OperatorConfig,
    'intentionDefault' | 'clusterDomain' | 'meshTrustDomain' | 'linkerdIdentityDomain'
  >;
}

export class MeshInputs {
  private readonly options: MeshOptions;

  constructor(private readonly deps: MeshInputsDeps) {
    const { config } = deps;
    this.options = {
      clusterDomain: config.clusterDomain,
      trustDomain: config.meshTrustDomain,
      linkerdIdentityDomain: config.linkerdIdentityDomain,
      intentionDefault: config.intentionDefault,
    };
  }

  /** The declared services, in a stable order. */
  services(): MeshService[] {
    return [...this.deps.reconciler.services()].sort((a, b) =>
      `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
    );
  }

  /**
   * The services and intentions in force, indexed once: a pass that renders every service
   * passes it to each `input` (O(n) for the pass, where finding each service and scanning the
   * intentions per service made it O(n²)).
   */
  pass(): MeshLookup {
    return new MeshLookup(this.services(), this.deps.access.intentionsInForce());
  }

  /** The renderer input for one declared service; undefined when it is not declared. */
  input(namespace: string, name: string, lookup = this.pass()): MeshInput | undefined {
    const service = lookup.service(namespace, name);
    if (service === undefined) return undefined;
    const external = this.deps.registry
      .instancesOf(namespace, name)
      .filter((i) => i.source === 'registration')
      .map((i) => ({
        id: i.id,
        host: i.host,
        port: i.port,
        weight: i.weight,
        ...(i.ports !== undefined && { ports: i.ports }),
        ...(i.version !== undefined && { version: i.version }),
        ...(i.zone !== undefined && { zone: i.zone }),
      }))
      .sort((a, b) => a.id.localeCompare(b.id));
    return {
      service,
      services: lookup.services,
      intentions: lookup.intentions,
      external,
      options: this.options,
      lookup,
    };
  }

  render(mesh: MeshName, namespace: string, name: string): MeshRender | undefined {
    const input = this.input(namespace, name);
    return input === undefined ? undefined : renderMesh(mesh, input);
  }
}
