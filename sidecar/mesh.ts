/**
 * The mesh configuration of the sidecar's own service, as the operator renders it
 * (`GET /api/v1/services/{namespace}/{name}/mesh/{mesh}`): fetched for every mesh at start,
 * again when the service's spec or an intention naming it changes (the mirror says so) and on
 * a timer. The last good answer per mesh stays served while the operator is away. With a
 * folder configured, each enabled mesh's YAML stream is written there atomically whenever it
 * changes (and removed when the mesh is disabled), for tools that apply files. It never
 * throws into the process: failures mean a retry and one log line per streak.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { renderToJson, renderToYaml } from '../common/mesh/format.js';
import { MESHES } from '../common/mesh/model.js';
import type { MeshName, MeshRender } from '../common/mesh/model.js';
import type { ServiceRef } from '../common/wire.js';
import type { Logger } from '../common/logger.js';
import { backoffDelay } from './backoff.js';
import { requestJson } from './http-json.js';

/** What the operator said about one mesh of the service. */
export type MeshAnswer =
  | {
      kind: 'render';
      render: MeshRender;
      /** The service's `spec.mesh.{mesh}`: only enabled meshes are written to the folder. */
      enabled: boolean;
      /** The JSON answer (`renderToJson`), serialized once. */
      json: string;
      /** The YAML stream (`renderToYaml`), serialized once. */
      yaml: string;
    }
  /** The operator knows no MaxineService of this name: there is nothing to render. */
  | { kind: 'undeclared' };

/** Asks the operator for one mesh; throws when it cannot be asked or refuses. */
export type MeshFetcher = (mesh: MeshName) => Promise<MeshAnswer>;

const objectSchema = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string(),
    labels: z.record(z.string(), z.string()),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.record(z.string(), z.unknown()),
});
const answerSchema = z.object({
  mesh: z.enum(MESHES),
  enabled: z.boolean(),
  objects: z.array(objectSchema),
  differences: z.array(
    z.object({ object: z.string().optional(), subject: z.string(), message: z.string() }),
  ),
});

/** Reads the operator's answer for `mesh` (pure): a render, "not declared", or an error. */
export function parseMeshAnswer(mesh: MeshName, status: number, body: unknown): MeshAnswer {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (status === 404 && error?.code === 'SERVICE_NOT_FOUND') return { kind: 'undeclared' };
  if (status !== 200) {
    const why = typeof error?.code === 'string' ? ` ${error.code}: ${String(error.message)}` : '';
    throw new Error(`mesh ${mesh}: HTTP ${status}${why}`);
  }
  const parsed = answerSchema.safeParse(body);
  if (!parsed.success || parsed.data.mesh !== mesh)
    throw new Error(`mesh ${mesh}: the operator's answer is not a ${mesh} render`);
  const { enabled, ...rest } = parsed.data;
  const render: MeshRender = { ...rest, mesh };
  return {
    kind: 'render',
    render,
    enabled,
    json: JSON.stringify(renderToJson(render, enabled)),
    yaml: renderToYaml(render),
  };
}

/** Fetches renders from the operator with the agent's credentials (the pod's token). */
export function operatorMeshFetcher(opts: {
  operatorUrl: string;
  namespace: string;
  service: string;
  token?: () => Promise<string | undefined>;
  timeoutMs?: number;
}): MeshFetcher {
  const base = `/api/v1/services/${encodeURIComponent(opts.namespace)}/${encodeURIComponent(opts.service)}/mesh/`;
  return async (mesh) => {
    const token = await opts.token?.();
    const res = await requestJson(new URL(base + mesh, opts.operatorUrl), {
      method: 'GET',
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      timeoutMs: opts.timeoutMs ?? 5_000,
    });
    return parseMeshAnswer(mesh, res.status, res.body);
  };
}

/**
 * What the folder needs after an answer (pure), given what was last written there: the YAML
 * (`string`), known absent (`null`), or unknown (`undefined`, before the first write).
 */
export function fileAction(
  answer: MeshAnswer,
  written: string | null | undefined,
): { write: string } | 'remove' | undefined {
  if (answer.kind === 'render' && answer.enabled)
    return answer.yaml === written ? undefined : { write: answer.yaml };
  return written === null ? undefined : 'remove';
}

/** Whether an event's service (an intention's destination, maybe a pattern) names `own`. */
export function namesService(ref: ServiceRef, own: ServiceRef): boolean {
  return (
    (ref.namespace === own.namespace || ref.namespace === '*') &&
    (ref.name === own.name || ref.name === '*')
  );
}

export interface MeshCacheOptions {
  fetch: MeshFetcher;
  logger: Logger;
  /** Between two fetches when nothing changed; 0: only on changes (and retries). */
  refreshMs: number;
  /** Where `<mesh>.yaml` is written for each enabled mesh; undefined: nowhere. */
  dir?: string;
  /** Changes come in bursts (a folder re-applied): wait this long before fetching. Default 100. */
  debounceMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface MeshCacheStatus {
  /** Every mesh has been fetched at least once. */
  ready: boolean;
  fetchedAt: string | undefined;
  failures: number;
  lastError?: string;
}

export class MeshConfigCache {
  private readonly answers = new Map<MeshName, MeshAnswer>();
  /** What is in the folder per mesh: the YAML written, null when known absent. */
  private readonly written = new Map<MeshName, string | null>();
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failures = 0;
  private lastError: string | undefined;
  private fetchedAt: number | undefined;
  private writeFailing = false;

  constructor(private readonly opts: MeshCacheOptions) {}

  /** The last good answer for `mesh`, undefined before the first. */
  get(mesh: MeshName): MeshAnswer | undefined {
    return this.answers.get(mesh);
  }

  status(): MeshCacheStatus {
    return {
      ready: MESHES.every((m) => this.answers.has(m)),
      fetchedAt: this.fetchedAt === undefined ? undefined : new Date(this.fetchedAt).toISOString(),
      failures: this.failures,
      ...(this.lastError !== undefined && { lastError: this.lastError }),
    };
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Something the renders depend on changed: fetch again soon (bursts make one fetch). */
  invalidate(): void {
    this.schedule(this.opts.debounceMs ?? 100);
  }

  /** Fetches every mesh now; a fetch already under way is followed by one more. Never rejects. */
  refresh(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async loop(): Promise<void> {
    let ok: boolean;
    do {
      this.again = false;
      ok = await this.fetchAll();
    } while (this.again && !this.stopped);
    if (!ok) this.schedule(this.retryDelay());
    else if (this.opts.refreshMs > 0) this.schedule(this.opts.refreshMs);
  }

  /** Keeps the earliest of the pending and the asked-for fetch. */
  private schedule(ms: number): void {
    if (this.stopped) return;
    const due = Date.now() + ms;
    if (this.timer !== undefined && this.dueAt <= due) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, ms);
    this.timer.unref();
  }

  private retryDelay(): number {
    return backoffDelay(this.failures - 1, {
      baseMs: this.opts.retryBaseMs ?? 500,
      maxMs: this.opts.retryMaxMs ?? 30_000,
    });
  }

  /** One round over every mesh; true when each was fetched. */
  private async fetchAll(): Promise<boolean> {
    const results = await Promise.allSettled(MESHES.map((m) => this.opts.fetch(m)));
    const failed: { mesh: MeshName; error: string }[] = [];
    for (const [i, mesh] of MESHES.entries()) {
      const r = results[i];
      if (r?.status === 'fulfilled') this.accept(mesh, r.value);
      else failed.push({ mesh, error: r === undefined ? 'no answer' : errorText(r.reason) });
    }
    if (this.opts.dir !== undefined) await this.syncFolder(this.opts.dir);
    if (failed.length === 0) {
      if (this.failures > 0)
        this.opts.logger.info({ after: this.failures }, 'mesh configuration fetched again');
      this.failures = 0;
      this.lastError = undefined;
      this.fetchedAt = Date.now();
      return true;
    }
    this.failures += 1;
    this.lastError = failed.map((f) => f.error).join('; ');
    // One line per failure streak: the first. Recovery is logged above.
    if (this.failures === 1) {
      this.opts.logger.warn(
        { meshes: failed.map((f) => f.mesh), error: this.lastError },
        'cannot fetch the mesh configuration from the operator; serving the last one, retrying',
      );
    }
    return false;
  }

  private accept(mesh: MeshName, answer: MeshAnswer): void {
    const before = this.answers.get(mesh);
    this.answers.set(mesh, answer);
    if (sameAnswer(before, answer)) return;
    this.opts.logger.info(
      answer.kind === 'render'
        ? { mesh, enabled: answer.enabled, objects: answer.render.objects.length }
        : { mesh, declared: false },
      'mesh configuration changed',
    );
  }

  /** Brings the folder in line with the answers; a failure is retried with the next fetch. */
  private async syncFolder(dir: string): Promise<void> {
    try {
      for (const mesh of MESHES) {
        const answer = this.answers.get(mesh);
        if (answer === undefined) continue;
        const action = fileAction(answer, this.written.get(mesh));
        if (action === undefined) continue;
        const file = join(dir, `${mesh}.yaml`);
        if (action === 'remove') {
          await rm(file, { force: true });
          this.written.set(mesh, null);
        } else {
          await writeAtomically(dir, file, action.write);
          this.written.set(mesh, action.write);
        }
        this.opts.logger.debug(
          { file, action: action === 'remove' ? 'removed' : 'written' },
          'mesh file updated',
        );
      }
      if (this.writeFailing) this.opts.logger.info({ dir }, 'mesh folder written again');
      this.writeFailing = false;
    } catch (err) {
      if (!this.writeFailing)
        this.opts.logger.warn({ err, dir }, 'cannot write the mesh folder; retrying');
      this.writeFailing = true;
    }
  }
}

function sameAnswer(a: MeshAnswer | undefined, b: MeshAnswer): boolean {
  if (a === undefined || a.kind !== b.kind) return false;
  return a.kind === 'undeclared' || (b.kind === 'render' && a.json === b.json);
}

/** A reader of `file` sees the old content or the new, never half: temp file, then rename. */
async function writeAtomically(dir: string, file: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Hidden, so tools that read `*.yaml` never pick up a half-written one.
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.yaml.tmp`);
  try {
    await writeFile(temp, text, { mode: 0o644 });
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
