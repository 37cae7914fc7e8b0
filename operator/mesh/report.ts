/**
 * The wording of a MaxineService's mesh report (`IstioSynced` / `LinkerdSynced` condition and
 * `status.mesh`), with every text clipped to the CRD's limits. Pure: the controller decides
 * which report applies; this module says it.
 */
import type { MeshName, MeshRender } from '../../common/mesh/model.js';
import type { MeshReport } from '../reconciler.js';

/** CRD limits of the status texts, in characters. */
export const LIMITS = {
  conditionMessage: 4096,
  objects: 64,
  differences: 64,
  differenceObject: 512,
  differenceSubject: 256,
  differenceMessage: 2048,
} as const;

/** `text` cut to at most `max` characters, an ellipsis marking the cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export const meshLabel = (mesh: MeshName): string => (mesh === 'istio' ? 'Istio' : 'Linkerd');

/** We could not tell whether the mesh's CRDs are installed (e.g. RBAC lacks a rule). */
export function syncFailedReport(error: string): MeshReport {
  return {
    condition: {
      status: 'False',
      reason: 'SyncFailed',
      message: clip(error, LIMITS.conditionMessage),
    },
  };
}

/** Some of the mesh's CRDs are not installed: `missing` names the kinds. */
export function crdsMissingReport(mesh: MeshName, missing: string[]): MeshReport {
  const label = meshLabel(mesh);
  return {
    condition: {
      status: 'False',
      reason: 'CRDsMissing',
      message: `${label} CRDs are not installed: ${missing.join(', ')}; install ${label} (or its CRDs) and the objects are applied on the next resync`,
    },
  };
}

/** `status.mesh.<mesh>` of a render: objects and differences, bounded and clipped. */
export function meshStatus(render: Pick<MeshRender, 'objects' | 'differences'>) {
  return {
    objects: render.objects.map((o) => `${o.kind}/${o.metadata.name}`).slice(0, LIMITS.objects),
    differences: render.differences.slice(0, LIMITS.differences).map((d) => ({
      ...(d.object !== undefined && { object: clip(d.object, LIMITS.differenceObject) }),
      subject: clip(d.subject, LIMITS.differenceSubject),
      message: clip(d.message, LIMITS.differenceMessage),
    })),
  };
}

/**
 * The report after applying `render`: `ApplyFailed` with the failures when there are any,
 * else `Applied` with the count of objects and differences.
 */
export function applyReport(
  mesh: MeshName,
  render: Pick<MeshRender, 'objects' | 'differences'>,
  failures: string[],
): MeshReport {
  const status = meshStatus(render);
  if (failures.length > 0) {
    return {
      condition: {
        status: 'False',
        reason: 'ApplyFailed',
        message: failures.join('; ').slice(0, LIMITS.conditionMessage),
      },
      status,
    };
  }
  const differences = render.differences.length;
  return {
    condition: {
      status: 'True',
      reason: 'Applied',
      message: `${render.objects.length} ${meshLabel(mesh)} objects applied${differences > 0 ? `; ${differences} differences from the intended behaviour, see status.mesh.${mesh}` : ''}`,
    },
    status,
  };
}
