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

export function renderIstio(input: MeshInput): MeshRender {
  const traffic = istioTraffic(input);
  const authz = istioAuthz(input, authzPlan(input));
  return annotateDifferences({
    mesh: 'istio',
    objects: [...traffic.objects, ...authz.objects],
    differences: [...traffic.differences, ...authz.differences],
  });
}

export function renderLinkerd(input: MeshInput): MeshRender {
  const traffic = linkerdTraffic(input);
  const authz = linkerdAuthz(input, authzPlan(input));
  return annotateDifferences({
    mesh: 'linkerd',
    objects: [...traffic.objects, ...authz.objects],
    differences: [...traffic.differences, ...authz.differences],
  });
}

export function renderMesh(mesh: MeshName, input: MeshInput): MeshRender {
  return mesh === 'istio' ? renderIstio(input) : renderLinkerd(input);
}
