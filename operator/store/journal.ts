/**
 * The file mechanics the `file` store's append-only journals share (event-file.ts,
 * config-file.ts): reading a file that may not exist, appending one record with one write(2),
 * fdatasync off the loop, the atomic rewrite (temp file, fdatasync, rename) and the last sync
 * at close; and the JournalFile state machine both run on them.
 */
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Counter } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { syncPath } from './fsync.js';

/** The file's bytes; undefined when there is none. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Appends `bytes` with one write (`appendSync`, a seam tests make fail); a short write throws. */
export function appendWhole(
  fd: number,
  bytes: Buffer,
  appendSync: (fd: number, bytes: Buffer) => number = writeSync,
): void {
  const written = appendSync(fd, bytes);
  if (written !== bytes.length) throw new Error(`short write: ${written} of ${bytes.length}`);
}

/** fdatasync off the loop. */
export function datasync(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    fdatasync(fd, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Opens `tmp` (`w`: afresh; `a`: after what is already written to it), writes `text`, syncs it
 * and renames it over `path`. Returns its fd, open at its end; closed if any step fails.
 */
export function replaceWith(tmp: string, flags: 'w' | 'a', text: string, path: string): number {
  const fd = openSync(tmp, flags);
  try {
    if (text.length > 0) writeSync(fd, text);
    fdatasyncSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** Closes `fd`, syncing it first when it holds unsynced writes. */
export function syncAndClose(fd: number, unsynced: boolean): void {
  try {
    if (unsynced) fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** What a rewrite writes: the file's head, then (without yielding) what was appended meanwhile. */
export interface JournalRewrite {
  /** The file's new head (header and records), written to a temp file off the loop. */
  text: string;
  /**
   * Called synchronously once `text` is on disk: the lines that follow it (what was appended,
   * or tried, while it was written: `pending` holds those lines). Throwing fails the rewrite.
   */
  rest(pending: readonly string[]): string;
  /** The rewritten file has replaced the old one (before the folder is synced). */
  swapped?(): void;
}

export interface JournalFileOptions {
  /** The journal file; rewrites go through `${path}.tmp`. */
  path: string;
  /** The folder holding it (synced after a rename). */
  dir: string;
  logger: Logger;
  /** Failures, by operation (`ops` names them). */
  errors: Counter;
  ops: { write: string; compact: string };
  messages: { writeFailed: string; compactFailed: string };
  /** How long after a failed append or rewrite the file is rewritten. */
  retryMs: number;
  /** fdatasync each append before append() returns (the `always` policy); else sync() does. */
  syncEach?: boolean;
  /** A failed append empties the file (so a restart cannot continue past a hole). */
  emptyOnFailure?: boolean;
  /** The append of one line (a seam: tests make it fail). */
  appendSync?: (fd: number, bytes: Buffer) => number;
  /** Whether the file has grown past its bound (asked after each append). */
  needsRewrite(): boolean;
  /** What a rewrite writes (asked each time one starts). */
  rewrite(): JournalRewrite;
  /** The file was emptied after a failed append (`emptyOnFailure`). */
  emptied?(): void;
}

/**
 * The state machine of an append-only journal file: one write(2) an append, fdatasync by the
 * policy (each append, or sync() when the owner says), a rewrite to a bound (temp file, then
 * without yielding the lines appended meanwhile, fdatasync, rename, sync the folder), and a
 * failed append marking the file broken (no more appends; the lines tried while a rewrite is in
 * flight go into it) until a rewrite, tried again after `retryMs`, replaces it. What the lines
 * say, and the torn-tail rules of reading them back, are the owner's (event-file.ts,
 * config-file.ts).
 */
export class JournalFile {
  /** Size of the file now (as last written, or as the owner loaded it). */
  bytes = 0;
  private fd: number | undefined;
  private broken = false;
  private unsynced = false;
  private pending: string[] | undefined;
  private compacting: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopping = false;
  private closed = false;

  constructor(private readonly opts: JournalFileOptions) {}

  /** Starts the file afresh with `text` (synced and renamed into place before it returns). */
  start(text: string): void {
    this.swap(
      replaceWith(`${this.opts.path}.tmp`, 'w', text, this.opts.path),
      Buffer.byteLength(text),
    );
  }

  /** Continues the file as it is, cut to its first `bytes` (a torn tail dropped). */
  continueAt(bytes: number): void {
    const fd = openSync(this.opts.path, 'a');
    ftruncateSync(fd, bytes);
    this.swap(fd, bytes);
  }

  /**
   * Appends `line` with one write; true when it is in the file. False when the file is not
   * open, or is broken (the line then goes into a rewrite in flight), or the write failed
   * (logged with `context`, counted, a rewrite scheduled).
   */
  append(line: string, context: Record<string, unknown>): boolean {
    const fd = this.fd;
    if (fd === undefined || this.closed) return false;
    if (this.broken) {
      // Not appended to a file that missed a line; a rewrite in flight takes it.
      this.pending?.push(line);
      return false;
    }
    const bytes = Buffer.from(line);
    try {
      appendWhole(fd, bytes, this.opts.appendSync);
      if (this.opts.syncEach === true) fdatasyncSync(fd);
      else this.unsynced = true;
    } catch (err) {
      // A rewrite in flight still takes the line: it replaces the file that missed it.
      this.pending?.push(line);
      this.failed(err as Error, context);
      return false;
    }
    this.bytes += bytes.length;
    this.pending?.push(line);
    return true;
  }

  /** Rewrites the file when it has grown past its bound (and no rewrite is in flight or due). */
  maybeCompact(): void {
    if (this.compacting || this.retry !== undefined || !this.opts.needsRewrite()) return;
    this.compacting = this.compact().finally(() => (this.compacting = undefined));
  }

  /** Makes what was appended durable; off the loop. Throws when fdatasync fails. */
  async sync(): Promise<void> {
    const fd = this.fd;
    if (!this.unsynced || fd === undefined) return;
    this.unsynced = false;
    try {
      await datasync(fd);
    } catch (err) {
      // A rewrite that replaced the file meanwhile synced the new one itself.
      if (this.fd !== fd) return;
      this.unsynced = true;
      throw err;
    }
  }

  /** Rewrites the file (JournalRewrite); never throws (logs, counts, retries). */
  async compact(): Promise<void> {
    if (this.fd === undefined || this.closed) return;
    const { path, dir } = this.opts;
    const tmp = `${path}.tmp`;
    this.pending = [];
    try {
      const rewrite = this.opts.rewrite();
      await writeFile(tmp, rewrite.text);
      // From here without yielding: the lines appended meanwhile follow the head.
      const rest = rewrite.rest(this.pending);
      const fd = replaceWith(tmp, 'a', rest, path);
      this.swap(fd, Buffer.byteLength(rewrite.text) + Buffer.byteLength(rest));
      rewrite.swapped?.();
      await syncPath(dir);
    } catch (err) {
      this.opts.errors.inc({ op: this.opts.ops.compact });
      this.opts.logger.error(
        { err, file: path, retryInMs: this.opts.retryMs },
        this.opts.messages.compactFailed,
      );
      this.scheduleRetry();
    } finally {
      this.pending = undefined;
    }
  }

  /**
   * Stops after a rewrite in flight; with `repair`, one last rewrite when a failed append was
   * waiting for its retry (logged and counted if it fails). `closing` runs just before the file
   * stops taking appends. Syncs what was appended and closes.
   */
  async close(repair: boolean, closing?: () => void): Promise<void> {
    this.stopping = true;
    const waiting = this.retry !== undefined;
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
    await this.compacting;
    if (repair && (waiting || this.broken)) await this.compact();
    closing?.();
    this.closed = true;
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    syncAndClose(fd, this.unsynced);
  }

  /** An append failed: nothing more is appended until the file is rewritten whole. */
  private failed(err: Error, context: Record<string, unknown>): void {
    this.broken = true;
    this.opts.errors.inc({ op: this.opts.ops.write });
    if (this.opts.emptyOnFailure === true) {
      try {
        if (this.fd !== undefined) ftruncateSync(this.fd, 0);
        this.bytes = 0;
        this.opts.emptied?.();
      } catch {
        // The next start finds the head and a hole (the owner's decoder refuses to continue).
      }
    }
    this.opts.logger.error(
      { err, file: this.opts.path, ...context, retryInMs: this.opts.retryMs },
      this.opts.messages.writeFailed,
    );
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retry !== undefined || this.closed || this.stopping) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.compacting ??= this.compact().finally(() => (this.compacting = undefined));
    }, this.opts.retryMs);
    this.retry.unref();
  }

  /** The rewritten file (open at `fd`, positioned at its end) replaces the old one. */
  private swap(fd: number, bytes: number): void {
    const old = this.fd;
    this.fd = fd;
    if (old !== undefined) closeSync(old);
    this.bytes = bytes;
    this.broken = false;
    this.unsynced = false;
  }
}
