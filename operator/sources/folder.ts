/**
 * Standalone mode's source: a folder of resource YAML, watched. Changes are batched for a
 * short debounce, applied in order (one batch at a time), and reported: a broken file is
 * logged with file, field and problem, listed by `GET /api/v1/resources`, and changes nothing
 * that was valid before.
 */
import type { ResourceSource } from './source.js';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { watch } from 'chokidar';
import type { FSWatcher } from 'chokidar';
import type { Reconciler } from '../reconciler.js';
import type { Logger } from '../../common/logger.js';
import { FolderState } from './folder-state.js';
import type { FileProblem } from './folder-state.js';
import { parseResourceFile } from './parse.js';

const YAML_RE = /\.ya?ml$/i;

export interface FolderSourceOptions {
  dir: string;
  reconciler: Reconciler;
  logger: Logger;
  debounceMs?: number;
}

export class FolderSource implements ResourceSource {
  private readonly state = new FolderState();
  private readonly pending = new Set<string>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private conflicts: FileProblem[] = [];
  private synced = false;
  /** The folder's ConfigMap documents, `namespace/name` → data (configFrom in standalone). */
  private configMaps = new Map<string, Record<string, string>>();

  private readonly opts: FolderSourceOptions;

  constructor(opts: FolderSourceOptions) {
    this.opts = { ...opts, dir: resolve(opts.dir) };
    // Standalone configFrom: ConfigMap documents of the folder; Secrets are never resolved here.
    opts.reconciler.setConfigSources((namespace, kind, name) => {
      const data = kind === 'ConfigMap' ? this.configMaps.get(`${namespace}/${name}`) : undefined;
      return data === undefined ? undefined : { kind: 'ConfigMap', data };
    });
  }

  get ready(): boolean {
    return this.synced;
  }

  problems(): FileProblem[] {
    return [...this.state.fileProblems(), ...this.conflicts];
  }

  /** Reads every file once, applies them, then watches for changes. */
  async start(): Promise<void> {
    const info = await stat(this.opts.dir).catch(() => undefined);
    if (info === undefined || !info.isDirectory()) {
      throw new Error(`Resource folder "${this.opts.dir}" does not exist or is not a folder`);
    }
    for (const file of await listYaml(this.opts.dir)) this.pending.add(file);
    await this.flush();
    this.watcher = watch(this.opts.dir, { ignoreInitial: true, persistent: true, depth: 8 });
    const onChange = (path: string): void => {
      if (!YAML_RE.test(path)) return;
      this.pending.add(path);
      this.schedule();
    };
    this.watcher.on('add', onChange).on('change', onChange).on('unlink', onChange);
    this.watcher.on('unlinkDir', () => {
      for (const file of this.knownFiles()) this.pending.add(file);
      this.schedule();
    });
    this.watcher.on('error', (err) =>
      this.opts.logger.error({ err, dir: this.opts.dir }, 'resource folder watch failed'),
    );
    await new Promise<void>((resolve) => this.watcher?.once('ready', () => resolve()));
    this.synced = true;
    this.opts.logger.info(
      { dir: this.opts.dir, objects: this.opts.reconciler.list().length },
      'resource folder synced',
    );
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.watcher?.close();
    await this.chain;
  }

  /** Applies all pending file changes; resolves when they are in the registry. */
  flush(): Promise<void> {
    this.chain = this.chain
      .then(() => this.applyPending())
      .catch((err: unknown) => {
        this.opts.logger.error({ err }, 'applying resource folder changes failed');
      });
    return this.chain;
  }

  private knownFiles(): string[] {
    return this.state.files();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), this.opts.debounceMs ?? 50);
  }

  private async applyPending(): Promise<void> {
    const files = [...this.pending];
    this.pending.clear();
    for (const file of files) {
      const text = await readFile(file, 'utf8').catch(() => undefined);
      const name = relative(this.opts.dir, file) || file;
      if (text === undefined) {
        this.state.remove(file);
        this.opts.logger.info({ file: name }, 'resource file removed');
        continue;
      }
      const parsed = parseResourceFile(text);
      const problem = this.state.update(file, parsed);
      if (problem !== undefined) this.report(name, problem);
      else
        this.opts.logger.debug(
          { file: name, objects: parsed.objects.length, skipped: parsed.skipped },
          'resource file read',
        );
    }
    const declared = this.state.declared();
    const { objects } = declared;
    const configMaps = this.state.configMaps();
    const conflicts = [...declared.conflicts, ...configMaps.conflicts];
    // Report a conflict once, when it appears, not on every later batch.
    const known = new Set(this.conflicts.map(conflictKey));
    for (const conflict of conflicts) {
      if (!known.has(conflictKey(conflict)))
        this.report(relative(this.opts.dir, conflict.file), conflict);
    }
    this.conflicts = conflicts;
    this.configMaps = configMaps.maps;
    const { applied, deleted } = this.opts.reconciler.replaceAll(objects);
    this.refreshConfigFrom();
    const broken = new Map(this.state.fileProblems().map((p) => [p.file, p]));
    const fresh: string[] = [];
    for (const [key, { file }] of objects) {
      const problem = broken.get(file);
      if (problem === undefined) {
        fresh.push(key);
        continue;
      }
      const first = problem.issues[0];
      const what =
        first === undefined
          ? ''
          : ` (${first.path === '' ? '' : `${first.path}: `}${first.message})`;
      this.opts.reconciler.markInvalid(
        [key],
        `${relative(this.opts.dir, file)} is invalid now${what}; the last valid version stays in force`,
      );
    }
    this.opts.reconciler.clearInvalid(fresh);
    if (applied + deleted > 0) this.opts.logger.info({ applied, deleted }, 'resources reconciled');
  }

  /** Services naming ConfigMaps resolve their config again (a no-op when nothing moved). */
  private refreshConfigFrom(): void {
    for (const { namespace, name, spec } of [...this.opts.reconciler.services()]) {
      if ((spec.configFrom ?? []).length === 0) continue;
      if (this.opts.reconciler.refreshConfig(namespace, name))
        this.opts.logger.info(
          { kind: 'MaxineService', namespace, name },
          'config re-resolved from configFrom',
        );
    }
  }

  private report(file: string, problem: FileProblem): void {
    for (const issue of problem.issues) {
      this.opts.logger.warn(
        {
          file,
          document: issue.document,
          object: issue.object,
          field: issue.path,
          problem: issue.message,
          keptPrevious: problem.keptPrevious,
        },
        `invalid resource in ${file}${issue.path ? ` at ${issue.path}` : ''}: ${issue.message}`,
      );
    }
  }
}

async function listYaml(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && YAML_RE.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

function conflictKey(p: FileProblem): string {
  return `${p.file}\u0000${p.issues.map((i) => i.message).join('\u0000')}`;
}
