/**
 * What the resource folder declares (pure): the last valid content of every file, and the
 * problems of the files that are broken now. A broken file keeps its last valid objects, so
 * a typo never removes a service that was working.
 */
import { resourceKey } from '../../common/resources.js';
import type { MaxineResource } from '../../common/resources.js';
import type { FileIssue, FolderConfigMap, ParsedFile } from './parse.js';

export interface FileProblem {
  file: string;
  issues: FileIssue[];
  /** True when the file's last valid objects are still in force. */
  keptPrevious: boolean;
}

export interface DeclaredObject {
  resource: MaxineResource;
  file: string;
}

export class FolderState {
  private readonly good = new Map<string, MaxineResource[]>();
  private readonly problems = new Map<string, FileProblem>();
  /** Each valid file's ConfigMap documents (configFrom's sources in standalone mode). */
  private readonly configMapsOf = new Map<string, FolderConfigMap[]>();
  /** The YAML document index of each of a file's ConfigMaps. */
  private readonly configMapDocumentsOf = new Map<string, number[]>();

  /** Records a file's new content; returns its problem, if any. */
  update(file: string, parsed: ParsedFile): FileProblem | undefined {
    if (parsed.issues.length === 0) {
      this.good.set(file, parsed.objects);
      this.configMapsOf.set(file, parsed.configMaps ?? []);
      this.configMapDocumentsOf.set(file, parsed.configMapDocuments ?? []);
      this.problems.delete(file);
      return undefined;
    }
    const problem = { file, issues: parsed.issues, keptPrevious: this.good.has(file) };
    this.problems.set(file, problem);
    return problem;
  }

  remove(file: string): void {
    this.good.delete(file);
    this.configMapsOf.delete(file);
    this.configMapDocumentsOf.delete(file);
    this.problems.delete(file);
  }

  /**
   * Every declared object. Two files declaring the same object: the first file in name order
   * wins and the other gets a problem, so the outcome does not depend on event order.
   */
  declared(): { objects: Map<string, DeclaredObject>; conflicts: FileProblem[] } {
    const objects = new Map<string, DeclaredObject>();
    const conflicts: FileProblem[] = [];
    for (const file of [...this.good.keys()].sort()) {
      for (const resource of this.good.get(file) ?? []) {
        const key = resourceKey(resource);
        const owner = objects.get(key);
        if (owner !== undefined) {
          conflicts.push({
            file,
            keptPrevious: false,
            issues: [
              {
                document: 0,
                object: key,
                path: 'metadata.name',
                message: `${key} is already declared in ${owner.file}`,
              },
            ],
          });
          continue;
        }
        objects.set(key, { resource, file });
      }
    }
    return { objects, conflicts };
  }

  /**
   * `namespace/name` → data of every ConfigMap document. Two documents declaring the same
   * ConfigMap: the first in file name order (then document order) wins and each other gets a
   * problem, as two files declaring the same Maxine resource do (`declared`).
   */
  configMaps(): { maps: Map<string, Record<string, string>>; conflicts: FileProblem[] } {
    const maps = new Map<string, Record<string, string>>();
    const owners = new Map<string, string>();
    const conflicts: FileProblem[] = [];
    for (const file of [...this.configMapsOf.keys()].sort())
      for (const [i, cm] of (this.configMapsOf.get(file) ?? []).entries()) {
        const key = `${cm.namespace}/${cm.name}`;
        const owner = owners.get(key);
        if (owner === undefined) {
          maps.set(key, cm.data);
          owners.set(key, file);
          continue;
        }
        const where = owner === file ? 'an earlier document of the same file' : owner;
        conflicts.push({
          file,
          keptPrevious: false,
          issues: [
            {
              document: this.configMapDocumentsOf.get(file)?.[i] ?? 0,
              object: `ConfigMap/${key}`,
              path: 'metadata.name',
              message: `ConfigMap/${key} is already declared in ${where}; that one is used`,
            },
          ],
        });
      }
    return { maps, conflicts };
  }

  /** Every file holding something now (valid objects, ConfigMaps, or a problem). */
  files(): string[] {
    return [
      ...new Set([...this.good.keys(), ...this.configMapsOf.keys(), ...this.problems.keys()]),
    ];
  }

  fileProblems(): FileProblem[] {
    return [...this.problems.values()].sort((a, b) => a.file.localeCompare(b.file));
  }
}
