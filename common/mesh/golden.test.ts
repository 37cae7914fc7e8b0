/**
 * Golden files of the mesh renderers: `golden/<case>.<mesh>.yaml` holds the objects and the
 * differences of each case in golden-cases.ts. A change to a renderer shows up as a diff of
 * these files; after checking it, rewrite them with `UPDATE_GOLDEN=1 npm run test:unit -- golden`.
 */
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { GOLDEN_CASES } from './golden-cases.js';
import { MESHES, renderMesh } from './index.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

describe('mesh renderers match the golden files', () => {
  for (const c of GOLDEN_CASES) {
    for (const mesh of MESHES) {
      it(`${c.name} (${mesh})`, () => {
        const render = renderMesh(mesh, c.input);
        const text = stringify(
          { objects: render.objects, differences: render.differences },
          { lineWidth: 0, sortMapEntries: false, aliasDuplicateObjects: false },
        );
        const file = join(DIR, `${c.name}.${mesh}.yaml`);
        if (UPDATE) writeFileSync(file, text);
        expect(existsSync(file) ? readFileSync(file, 'utf8') : `missing ${file}`).toBe(text);
      });
    }
  }

  it('renders the same output twice (no hidden state)', () => {
    for (const c of GOLDEN_CASES) {
      expect(renderMesh('istio', c.input)).toEqual(renderMesh('istio', c.input));
      expect(renderMesh('linkerd', c.input)).toEqual(renderMesh('linkerd', c.input));
    }
  });
});
