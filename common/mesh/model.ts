/**
 * The shapes shared by the mesh renderers (pure: no I/O). A renderer turns one MaxineService,
 * the intentions in force and the services they may name into the objects of one mesh, plus
 * the places where the mesh cannot say exactly what Maxine means (`MeshDifference`). A
 * difference is always resolved on the safe side: the rendered form is never more permissive
 * than the intention, and never routes where Maxine would not.
 */
import type { MeshLookup } from './lookup.js';
import type { IntentionEntry } from '../policy/intentions.js';
import type { ServiceSpec } from '../resources.js';

export const MESHES = ['istio', 'linkerd'] as const;
export type MeshName = (typeof MESHES)[number];

/** A MaxineService as the renderers read it. */
export interface MeshService {
  namespace: string;
  name: string;
  spec: ServiceSpec;
}

/** An instance registered through the API rather than found as a pod: it runs outside the cluster. */
export interface ExternalEndpoint {
  id: string;
  host: string;
  port: number;
  ports?: Readonly<Record<string, number>>;
  version?: string;
  zone?: string;
  weight: number;
}

export interface MeshOptions {
  /** DNS suffix of Service names: `<name>.<namespace>.svc.<clusterDomain>`. */
  clusterDomain: string;
  /** Istio trust domain: principals are `<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
  trustDomain: string;
  /** Linkerd identity domain: `<sa>.<namespace>.serviceaccount.identity.linkerd.<domain>`. */
  linkerdIdentityDomain: string;
  /** The operator's `--intention-default`: what happens to a call no intention decides. */
  intentionDefault: 'allow' | 'deny';
}

export const DEFAULT_MESH_OPTIONS: MeshOptions = {
  clusterDomain: 'cluster.local',
  trustDomain: 'cluster.local',
  linkerdIdentityDomain: 'cluster.local',
  intentionDefault: 'allow',
};

export interface MeshInput {
  service: MeshService;
  /** Every MaxineService in force (the source identities of intentions come from them). */
  services: readonly MeshService[];
  /** The intentions in force (after namespace confinement), all of them: renderers pick. */
  intentions: readonly IntentionEntry[];
  /** Instances of `service` that are not pods. */
  external: readonly ExternalEndpoint[];
  options: MeshOptions;
  /**
   * The services and intentions indexed once for a pass over many services (the mesh
   * controller's sync); absent, each render indexes them itself.
   */
  lookup?: MeshLookup;
}

/** A rendered object, ready for server-side apply (metadata without owner references). */
export interface MeshObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
}

/** Where a mesh cannot express Maxine's meaning; the rendered form is the closest safe one. */
export interface MeshDifference {
  /** `Kind/name` of the object concerned, when there is one. */
  object?: string;
  /** What in Maxine's resources the difference is about, e.g. `spec.loadBalancing.strategy`. */
  subject: string;
  message: string;
}

export interface MeshRender {
  mesh: MeshName;
  objects: MeshObject[];
  differences: MeshDifference[];
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'maxine';
export const SERVICE_LABEL = 'maxine.io/service';
export const MESH_LABEL = 'maxine.io/mesh';
/** JSON array of the differences that concern the object (`MeshDifference` without `object`). */
export const DIFFERENCES_ANNOTATION = 'maxine.io/mesh-differences';

/** The labels every rendered object carries: they select what to prune. */
export function meshLabels(mesh: MeshName, service: MeshService): Record<string, string> {
  return { [MANAGED_BY_LABEL]: MANAGED_BY, [SERVICE_LABEL]: service.name, [MESH_LABEL]: mesh };
}

/** `<name>.<namespace>.svc.<clusterDomain>`. */
export function serviceHost(
  service: { namespace: string; name: string },
  options: MeshOptions,
): string {
  return `${service.name}.${service.namespace}.svc.${options.clusterDomain}`;
}

/** A rendered object of `service` in its namespace. */
export function meshObject(
  mesh: MeshName,
  service: MeshService,
  head: { apiVersion: string; kind: string; name: string },
  spec: Record<string, unknown>,
): MeshObject {
  return {
    apiVersion: head.apiVersion,
    kind: head.kind,
    metadata: {
      name: head.name,
      namespace: service.namespace,
      labels: meshLabels(mesh, service),
    },
    spec,
  };
}

/**
 * Puts each difference that names an object into that object's annotation, and returns the
 * render. Objects and differences keep their order, so output is stable (golden files).
 */
export function annotateDifferences(render: MeshRender): MeshRender {
  for (const obj of render.objects) {
    const mine = render.differences
      .filter((d) => d.object === `${obj.kind}/${obj.metadata.name}`)
      .map(({ subject, message }) => ({ subject, message }));
    if (mine.length > 0) {
      obj.metadata.annotations = {
        ...obj.metadata.annotations,
        [DIFFERENCES_ANNOTATION]: JSON.stringify(mine),
      };
    }
  }
  return render;
}

/** Whole milliseconds of a positive number of seconds, at least 1 (meshes reject shorter). */
function millis(seconds: number): number {
  return Math.max(1, Math.round(seconds * 1000));
}

/**
 * A duration for Istio (protobuf JSON `Duration`, which Istio also parses with Go rules):
 * seconds with up to millisecond precision, `2s`, `1.5s`, `0.001s`.
 */
export function istioDuration(seconds: number): string {
  return `${millis(seconds) / 1000}s`;
}

/** A Go `time.ParseDuration` string for Linkerd: `2s` for whole seconds, else `1500ms`. */
export function goDuration(seconds: number): string {
  const ms = millis(seconds);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
