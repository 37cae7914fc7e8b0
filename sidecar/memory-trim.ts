/**
 * One memory-reducing garbage collection once the sidecar has gone quiet after its copy synced.
 *
 * The copy's snapshot arrives as a burst (1,000 services: thousands of objects that survive), so
 * V8 grows the young generation to its limit (`--max-semi-space-size=8`: 16 MB) while it is
 * applied. Node 24 and later keep those pages resident once touched, and neither an ordinary
 * full collection nor V8's memory reducer gives them back at idle; Node 20's reducer does, some
 * runs within 20 s, some not. A "last resort" collection (`gc({ flavor: 'last-resort' })`: the
 * one V8 runs before an out-of-memory exit; on Node 20 a plain `gc()`) shrinks the young generation and releases the freed
 * pages: about 14 MB of private memory on Node 26 and 10 MB on Node 20 with a 1,000-service
 * copy (docs/decisions/0027-*.md, session 11). It blocks the event loop for a few tens of
 * milliseconds, so it runs once per completed snapshot, `delayMs` after the last one (default 10 s:
 * Node 20 shrinks only once the burst has left V8's 5 s window of allocation throughput),
 * never on a request's path. The young generation's size limit, which the hot path's speed needs
 * (decision 0017), is unchanged. Where `node:ffi` offers glibc's `malloc_trim` (Node 26), the
 * collection is followed by `malloc_trim(0)`, which gives back the free pages between live chunks
 * of the C heap that free() keeps (session 12: mallocTrimmer()).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../common/logger.js';

/** The options of the `gc` function V8 exposes (`--expose-gc`). */
interface GcOptions {
  type?: 'major' | 'minor';
  execution?: 'sync' | 'async';
  flavor?: 'regular' | 'last-resort';
}

/**
 * A function that runs V8's memory-reducing ("last resort") full collection, without
 * `--expose-gc` on the command line: the flag is set for one new context, whose `gc` is kept,
 * then unset again, so the sidecar's own global object never gets a `gc`. Undefined when this
 * Node does not allow it (the trim is then skipped, said once in the log).
 */
export function lastResortCollector(): (() => void) | undefined {
  try {
    let gc: unknown;
    setFlagsFromString('--expose-gc');
    try {
      gc = runInNewContext('gc');
    } finally {
      // Unset even when the context could not be made: no later context gets a gc.
      setFlagsFromString('--no-expose-gc');
    }
    if (typeof gc !== 'function') return undefined;
    const collect = gc as (o?: GcOptions) => void;
    const options: GcOptions = { type: 'major', execution: 'sync', flavor: 'last-resort' };
    // Both calls: Node 24 and 26 release the pages on the last-resort flavor only (a plain full
    // collection keeps them), Node 20's V8 (11.3) on the plain one only (it takes the options
    // call for another kind of collection). Measured in a fresh node on each: either alone
    // leaves one of them where it was.
    return () => {
      collect(options);
      collect();
    };
  } catch {
    return undefined;
  }
}

/** What `process.getBuiltinModule('node:ffi')` offers (Node 26 and later; experimental). */
interface Ffi {
  dlopen(
    path: string,
    definitions: Record<string, { arguments: string[]; return: string }>,
  ): { functions: Record<string, ((...args: unknown[]) => unknown) | undefined> };
}

/**
 * glibc's `malloc_trim(0)` through `node:ffi`, or undefined where it cannot be had: a Node without
 * `node:ffi` (20, 24), FFI turned off (`--no-experimental-ffi`, or the permission model without
 * `--allow-ffi`), or a C library without the function (musl). After the collection, the C heap
 * holds the free chunks the start-up and the copy's sync left between live ones; free() gives back
 * only the top of the heap, malloc_trim every free page (decision 0027, session 12: 1–3 MB of
 * the glibc main heap on Node 26 with a 1,000-service copy). `node:ffi` announces itself with an
 * ExperimentalWarning on stderr when first loaded; that one warning is kept out of the sidecar's
 * output (the trim's own log line says what ran).
 */
export function mallocTrimmer(
  libc = 'libc.so.6',
  load: () => unknown = () => process.getBuiltinModule('node:ffi'),
): (() => boolean) | undefined {
  if (process.platform !== 'linux') return undefined;
  // Restored as it was (the same function) in the finally; forwarded to with `process` as this.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const emitWarning = process.emitWarning;
  try {
    process.emitWarning = (warning: string | Error, ...rest: unknown[]) => {
      const text = typeof warning === 'string' ? warning : warning.message;
      if (/\bFFI\b/.test(text)) return;
      Reflect.apply(emitWarning, process, [warning, ...rest]);
    };
    const ffi = load() as Ffi | undefined;
    if (ffi === undefined || typeof ffi.dlopen !== 'function') return undefined;
    const trim = ffi.dlopen(libc, {
      malloc_trim: { arguments: ['uint64'], return: 'int32' },
    }).functions.malloc_trim;
    if (typeof trim !== 'function') return undefined;
    return () => trim(0n) === 1;
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}

export interface MemoryTrimOptions {
  /** How long after the last `schedule()` the collection runs; 0 turns the trim off. */
  delayMs: number;
  logger: Logger;
  /** The collection; default: lastResortCollector(), made on the first trim. */
  collect?: () => void;
  /**
   * Gives the C heap's free pages back after the collection (true: some were); default:
   * mallocTrimmer(), made on the first trim; null: none.
   */
  mallocTrim?: (() => boolean) | null;
  /** Resident memory in bytes, for the log line; default process.memoryUsage.rss. */
  rss?: () => number;
}

/** Runs one collection `delayMs` after the last schedule() (a burst of them runs it once). */
export class MemoryTrim {
  private timer: NodeJS.Timeout | undefined;
  private collect: (() => void) | undefined;
  private mallocTrim: (() => boolean) | null | undefined;
  private unavailable = false;
  /** Collections run so far (the tests read it). */
  runs = 0;

  constructor(private readonly opts: MemoryTrimOptions) {
    this.collect = opts.collect;
    this.mallocTrim = opts.mallocTrim;
  }

  /** The copy has (re)synced: trim once it has been quiet for `delayMs`. */
  schedule(): void {
    if (this.opts.delayMs <= 0 || this.unavailable) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), this.opts.delayMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private run(): void {
    this.timer = undefined;
    this.collect ??= lastResortCollector();
    if (this.collect === undefined) {
      this.unavailable = true;
      this.opts.logger.warn('this Node.js exposes no memory-reducing collection: memory trim off');
      return;
    }
    const rss = this.opts.rss ?? (() => process.memoryUsage.rss());
    const before = rss();
    const started = process.hrtime.bigint();
    try {
      this.collect();
    } catch (err) {
      // A timer's throw would end the sidecar: a collection this Node refuses turns the trim off.
      this.unavailable = true;
      this.opts.logger.warn({ err }, 'the memory-reducing collection failed: memory trim off');
      return;
    }
    this.runs += 1;
    const cHeap = this.trimCHeap();
    this.opts.logger.info(
      {
        ...(cHeap !== undefined && { cHeapReleased: cHeap }),
        rssBeforeMb: Math.round(before / 2 ** 17) / 8,
        rssAfterMb: Math.round(rss() / 2 ** 17) / 8,
        pauseMs: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
      },
      'memory trimmed after the registry copy synced',
    );
  }

  /** malloc_trim after the collection; undefined: not available here (or it failed: then off). */
  private trimCHeap(): boolean | undefined {
    if (this.mallocTrim === undefined) this.mallocTrim = mallocTrimmer() ?? null;
    if (this.mallocTrim === null) return undefined;
    try {
      return this.mallocTrim();
    } catch (err) {
      this.mallocTrim = null;
      this.opts.logger.warn({ err }, 'malloc_trim failed: the C heap is no longer trimmed');
      return undefined;
    }
  }
}
