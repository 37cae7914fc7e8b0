/** Files of the repository as the folder source and `kubectl apply -R` read them. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every *.yaml / *.yml under `dir`, recursively, in path order. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? yamlFiles(join(dir, e.name))
        : /\.ya?ml$/.test(e.name)
          ? [join(dir, e.name)]
          : [],
    )
    .sort();
}
