/**
 * The mesh renderers: one MaxineService (with the intentions and services around it) in, the
 * objects of one mesh out, with the differences between what Maxine means and what the mesh
 * can say. Pure and deterministic: the operator applies the output, the sidecar serves it, the
 * golden tests pin it.
 */
import { authzPlan } from './authz.js';
import { istioAuthz } from './istio-authz.js';
import { istioTraffic } from './istio-traffic.js';
import { linkerdAuthz } from './linkerd-authz.js';
import { linkerdTraffic } from './linkerd-traffic.js';
import { annotateDifferences, type MeshInput, type MeshName, type MeshRender } from './model.js';

export * from './model.js';

const RENDERERS = {
  istio: { traffic: istioTraffic, authz: istioAuthz },
  linkerd: { traffic: linkerdTraffic, authz: linkerdAuthz },
} as const;

/** The objects of `mesh` for `input.service`, differences annotated on the objects they concern. */
export function renderMesh(mesh: MeshName, input: MeshInput): MeshRender {
  const { traffic, authz } = RENDERERS[mesh];
  const t = traffic(input);
  const a = authz(input, authzPlan(input));
  return annotateDifferences({
    mesh,
    objects: [...t.objects, ...a.objects],
    differences: [...t.differences, ...a.differences],
  });
}

export const renderIstio = (input: MeshInput): MeshRender => renderMesh('istio', input);
export const renderLinkerd = (input: MeshInput): MeshRender => renderMesh('linkerd', input);
