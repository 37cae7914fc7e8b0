/**
 * Writes the config as files, one per key, the way kubelet writes ConfigMap volumes: the files
 * go into a new timestamped directory `..<time>`, a `..data` symlink is swapped onto it with one
 * rename (atomic: a reader sees the old set or the new one, never a mix), each key is a symlink
 * `key → ..data/key`, and what the new set lacks (keys removed, the old directory) is removed
 * after. Writes are serialized and coalesced: while one runs, only the latest config waits.
 * Failures are logged and counted, never thrown.
 */
import {
  lstat,
  mkdir,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/logger.js';
import type { ConfigSnapshot } from './state.js';

export const DATA_LINK = '..data';

/**
 * A key that is a safe file name in the directory: the operator's key charset
 * (`[A-Za-z0-9_.-]`, ≤ 253), and not `.`, `..` or `..`-prefixed (those names are the writer's).
 */
export function isSafeFileKey(key: string): boolean {
  return /^[A-Za-z0-9_.-]{1,253}$/.test(key) && !key.startsWith('..') && key !== '.';
}

/** `..2026_12_06_10_50_00.123_7`: sortable, unique within the process. */
export function timestampedName(now: Date, serial: number): string {
  const iso = now.toISOString(); // 2026-12-06T10:50:00.123Z
  return `..${iso.slice(0, 19).replace(/[-T:]/g, '_')}.${iso.slice(20, 23)}_${serial}`;
}

export interface ConfigFilesOptions {
  dir: string;
  logger: Logger;
  /** After each set of files is in place (not after a failed write). */
  onWritten?: (snapshot: ConfigSnapshot) => void;
  onFailed?: () => void;
}

export class ConfigFiles {
  private running: Promise<void> | undefined;
  private next: ConfigSnapshot | undefined;
  private serial = 0;

  constructor(private readonly opts: ConfigFilesOptions) {}

  /** Writes `snapshot` (after the write in progress, replacing any not started yet). */
  write(snapshot: ConfigSnapshot): void {
    this.next = snapshot;
    this.running ??= this.drain();
  }

  /** Resolves when no write is pending (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      for (let s = this.next; s !== undefined; s = this.next) {
        this.next = undefined;
        await this.writeOnce(s);
      }
    } finally {
      this.running = undefined;
    }
  }

  private async writeOnce(snapshot: ConfigSnapshot): Promise<void> {
    const { dir, logger } = this.opts;
    const keys = Object.keys(snapshot.config);
    const unsafe = keys.filter((k) => !isSafeFileKey(k));
    const safe = keys.filter(isSafeFileKey);
    if (unsafe.length > 0)
      logger.warn(
        { dir, keys: unsafe.slice(0, 16), version: snapshot.version },
        'config keys that are not safe file names are not written as files',
      );
    try {
      await mkdir(dir, { recursive: true });
      this.serial += 1;
      const fresh = timestampedName(new Date(), this.serial);
      await mkdir(join(dir, fresh), { mode: 0o755 });
      for (const key of safe)
        await writeFile(join(dir, fresh, key), snapshot.config[key] ?? '', { mode: 0o644 });
      const tmp = join(dir, `${DATA_LINK}_tmp`);
      await rm(tmp, { force: true });
      await symlink(fresh, tmp);
      await rename(tmp, join(dir, DATA_LINK));
      for (const key of safe) await ensureKeyLink(dir, key);
      await this.removeStale(new Set(safe), fresh);
      logger.info(
        { dir, version: snapshot.version, hash: snapshot.hash, keys: safe.length },
        'config files written',
      );
      this.opts.onWritten?.(snapshot);
    } catch (err) {
      logger.error({ err, dir, version: snapshot.version }, 'config files not written');
      this.opts.onFailed?.();
    }
  }

  /** Key links of keys gone, and the timestamped directories but the current one. */
  private async removeStale(keys: ReadonlySet<string>, current: string): Promise<void> {
    const { dir } = this.opts;
    for (const name of await readdir(dir)) {
      if (name === DATA_LINK || name === current) continue;
      const path = join(dir, name);
      const info = await lstat(path);
      if (name.startsWith('..') && info.isDirectory())
        await rm(path, { recursive: true, force: true });
      else if (info.isSymbolicLink() && !keys.has(name)) {
        // Only the links this writer makes: a file someone else put here stays.
        if ((await readlink(path)).startsWith(`${DATA_LINK}/`)) await unlink(path);
      }
    }
  }
}

async function ensureKeyLink(dir: string, key: string): Promise<void> {
  const path = join(dir, key);
  const target = `${DATA_LINK}/${key}`;
  try {
    if ((await readlink(path)) === target) return;
  } catch {
    // absent (or not a link): made below
  }
  await rm(path, { force: true, recursive: true });
  await symlink(target, path);
}
