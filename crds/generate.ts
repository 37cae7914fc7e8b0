/**
 * Writes the CRD YAML files in crds/ and in the Helm chart's charts/maxine/crds/ from the zod
 * schemas (`npm run gen:crds`): both folders get the same bytes, so the chart's CRDs cannot
 * drift from the kustomize install's. With `--check` it writes nothing and exits 1 if a
 * committed file in either folder differs from what would be generated (for CI and pre-commit).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from './crd.js';

const CRD_DIR = fileURLToPath(new URL('.', import.meta.url));
const CHART_CRD_DIR = fileURLToPath(new URL('../charts/maxine/crds/', import.meta.url));
/** Every folder the CRDs are written to, with the name it has in messages. */
const TARGETS: readonly { dir: string; shown: string }[] = [
  { dir: CRD_DIR, shown: 'crds' },
  { dir: CHART_CRD_DIR, shown: 'charts/maxine/crds' },
];

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function main(args: readonly string[]): Promise<number> {
  const unknown = args.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    console.error(`usage: tsx crds/generate.ts [--check] (unknown: ${unknown.join(' ')})`);
    return 2;
  }
  const check = args.includes('--check');
  const files = renderCrdFiles();
  const stale: string[] = [];
  for (const { dir, shown } of TARGETS) {
    for (const { file, text } of files) {
      const path = join(dir, file);
      const current = await readOrUndefined(path);
      if (current === text) continue;
      stale.push(`${shown}/${file}${current === undefined ? ' (missing)' : ''}`);
      if (!check) {
        await mkdir(dir, { recursive: true });
        await writeFile(path, text, 'utf8');
      }
    }
  }
  if (check) {
    if (stale.length > 0) {
      console.error(
        `CRD files are out of date with common/resources.ts:\n  ${stale.join('\n  ')}\n` +
          'Run `npm run gen:crds` and commit the result.',
      );
      return 1;
    }
    console.log(`crds: ${files.length * TARGETS.length} files up to date`);
    return 0;
  }
  console.log(
    stale.length > 0
      ? `crds: wrote ${stale.join(', ')}`
      : `crds: ${files.length * TARGETS.length} files already up to date`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
