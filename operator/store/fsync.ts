/** fsync for the `file` store's writers: a file's bytes, or a folder's entries after a rename. */
import { open } from 'node:fs/promises';

/** Flushes `path` to disk: a file's contents, or (a folder) a rename in it, made durable. */
export async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
