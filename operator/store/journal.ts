/**
 * The file mechanics the `file` store's append-only journals share (event-file.ts,
 * config-file.ts): reading a file that may not exist, appending one record with one write(2),
 * fdatasync off the loop, the atomic rewrite (temp file, fdatasync, rename) and the last sync
 * at close.
 */
import { closeSync, fdatasync, fdatasyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

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
