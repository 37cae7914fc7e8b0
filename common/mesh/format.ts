/** How a render goes over the wire: JSON by default, a YAML stream for `kubectl apply -f -`. */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import type { MeshRender } from './model.js';

/** Whether the Accept header prefers YAML (`application/yaml`, `text/yaml`, `application/x-yaml`). */
export function wantsYaml(accept: string | undefined): boolean {
  return accept !== undefined && /\b(application|text)\/(x-)?yaml\b/i.test(accept);
}

export const YAML_CONTENT_TYPE = 'application/yaml; charset=utf-8';

/**
 * The yaml package (~3 MB of private memory) is required on the first YAML render, not
 * imported: the sidecar answers JSON unless asked, and its start-up must not pay for it
 * (decision 0027).
 */
let yaml: typeof Yaml | undefined;
function yamlModule(): typeof Yaml {
  yaml ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yaml;
}

/**
 * The objects as a multi-document YAML stream, ready for `kubectl apply -f -`. The differences
 * lead as comments (each object also carries its own in an annotation).
 */
export function renderToYaml(render: MeshRender): string {
  const header = [`# ${render.mesh}: ${render.objects.length} objects rendered by Maxine`];
  for (const d of render.differences) {
    const object = d.object === undefined ? '' : ` (${oneLine(d.object)})`;
    header.push(`# difference${object}: ${oneLine(d.subject)}: ${oneLine(d.message)}`);
  }
  const docs = render.objects.map((o) =>
    yamlModule().stringify(o, { lineWidth: 0, aliasDuplicateObjects: false }),
  );
  return `${header.join('\n')}\n${docs.map((d) => `---\n${d}`).join('')}`;
}

/**
 * Text for a YAML comment: differences quote user input (a path regex may hold a line break),
 * which must not end the comment and start a document of its own.
 */
function oneLine(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    const control = code < 0x20 || code === 0x7f || code === 0x2028 || code === 0x2029;
    out += control ? `\\u${code.toString(16).padStart(4, '0')}` : c;
  }
  return out;
}

/** The JSON body of a render. */
export function renderToJson(render: MeshRender, enabled: boolean): unknown {
  return { mesh: render.mesh, enabled, objects: render.objects, differences: render.differences };
}
