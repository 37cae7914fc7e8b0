/** How a render goes over the wire: JSON by default, a YAML stream for `kubectl apply -f -`. */
import { stringify } from 'yaml';
import type { MeshRender } from './model.js';

/** Whether the Accept header prefers YAML (`application/yaml`, `text/yaml`, `application/x-yaml`). */
export function wantsYaml(accept: string | undefined): boolean {
  return accept !== undefined && /\b(application|text)\/(x-)?yaml\b/i.test(accept);
}

export const YAML_CONTENT_TYPE = 'application/yaml; charset=utf-8';

/**
 * The objects as a multi-document YAML stream, ready for `kubectl apply -f -`. The differences
 * lead as comments (each object also carries its own in an annotation).
 */
export function renderToYaml(render: MeshRender): string {
  const header = [`# ${render.mesh}: ${render.objects.length} objects rendered by Maxine`];
  for (const d of render.differences) {
    header.push(
      `# difference${d.object === undefined ? '' : ` (${d.object})`}: ${d.subject}: ${d.message}`,
    );
  }
  const docs = render.objects.map((o) =>
    stringify(o, { lineWidth: 0, aliasDuplicateObjects: false }),
  );
  return `${header.join('\n')}\n${docs.map((d) => `---\n${d}`).join('')}`;
}

/** The JSON body of a render. */
export function renderToJson(render: MeshRender, enabled: boolean): unknown {
  return { mesh: render.mesh, enabled, objects: render.objects, differences: render.differences };
}
