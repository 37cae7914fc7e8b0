/** The Helm chart's CRDs are the generated ones, byte for byte (`npm run crds:check` too). */
import { describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from './crd.js';

const CHART_CRDS = fileURLToPath(new URL('../charts/maxine/crds/', import.meta.url));
const files = renderCrdFiles();

describe('charts/maxine/crds', () => {
  test('holds exactly the generated CRD files', () => {
    expect(readdirSync(CHART_CRDS).sort()).toEqual(files.map((f) => f.file).sort());
  });

  test.each(files.map((f) => [f.file, f.text] as const))(
    '%s is the generated text',
    (file, text) => {
      expect(readFileSync(CHART_CRDS + file, 'utf8')).toBe(text);
    },
  );
});
