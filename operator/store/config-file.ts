/**
 * Config versions and history kept by the `file` store (`config-history.jsonl`), so a
 * restarted operator neither gives a config it already numbered a new version nor takes a
 * version back (operator/registry/config-history.ts).
 *
 * Config changes are rare (a resource edit), so the file is rewritten whole, atomically (write
 * a temp file, fsync, rename, fsync the folder), once per burst of changes. Lines are framed
 * as in codec.ts: a header, then one record per service. The file is never appended to, so
 * anything short of whole and valid is damage: the start stops (StoreCorruptError) rather than
 * number versions from nothing.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Counter } from 'prom-client';
import { z } from 'zod';
import { serviceConfigRecordSchema } from '../../common/config-history.js';
import type { ServiceConfigRecord } from '../../common/config-history.js';
import type { Logger } from '../../common/logger.js';
import type { ConfigHistory } from '../registry/config-history.js';
import { decodeLine, encodeLine, StoreCorruptError } from './codec.js';
import { syncPath } from './fsync.js';

export const CONFIG_FILE = 'config-history.jsonl';
/** Changes within this long are written together. */
const COALESCE_MS = 50;
const RETRY_MS = 5_000;

const headerSchema = z.strictObject({
  t: z.literal('config-history'),
  format: z.literal(1),
  count: z.int().min(0),
  writtenAt: z.string(),
});

/** The records of a file's bytes; throws StoreCorruptError when they are not whole and valid. */
export function decodeConfigFile(file: string, bytes: Buffer): ServiceConfigRecord[] {
  const lines = bytes.toString('utf8').split('\n');
  if (lines.pop() !== '') throw new StoreCorruptError(file, bytes.length, 'incomplete last line');
  let offset = 0;
  const values = lines.map((line) => {
    const decoded = decodeLine(line);
    if (!decoded.ok) throw new StoreCorruptError(file, offset, decoded.why);
    offset += Buffer.byteLength(line) + 1;
    return decoded.value;
  });
  const header = headerSchema.safeParse(values.shift());
  if (!header.success) throw new StoreCorruptError(file, 0, 'no valid header');
  if (header.data.count !== values.length)
    throw new StoreCorruptError(file, offset, `the header counts ${header.data.count} records`);
  return values.map((value, i) => {
    const parsed = serviceConfigRecordSchema.safeParse(value);
    if (!parsed.success) throw new StoreCorruptError(file, 0, `record ${i + 1} is not valid`);
    return parsed.data;
  });
}

export function encodeConfigFile(records: readonly ServiceConfigRecord[]): string {
  const header = { t: 'config-history', format: 1, count: records.length };
  return (
    encodeLine({ ...header, writtenAt: new Date().toISOString() }) +
    records.map((r) => encodeLine(r)).join('')
  );
}

export interface ConfigFileOptions {
  dir: string;
  logger: Logger;
  errors: Counter;
}

export class ConfigFile {
  private history: ConfigHistory | undefined;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private closed = false;

  constructor(private readonly opts: ConfigFileOptions) {}

  get path(): string {
    return join(this.opts.dir, CONFIG_FILE);
  }

  async load(): Promise<ServiceConfigRecord[]> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return decodeConfigFile(this.path, bytes);
  }

  attach(history: ConfigHistory): void {
    this.history = history;
    this.unsubscribe = history.subscribe(() => this.schedule(COALESCE_MS));
    // What changed before (the resources applied at start) is written at once.
    this.schedule(0);
  }

  private schedule(ms: number): void {
    this.dirty = true;
    if (this.closed || this.timer !== undefined || this.writing !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.write().finally(() => {
        this.writing = undefined;
        if (this.dirty) this.schedule(COALESCE_MS);
      });
    }, ms);
    this.timer.unref();
  }

  /** Writes every record now; a failure is logged, counted and tried again. */
  private async write(): Promise<void> {
    if (this.history === undefined) return;
    this.dirty = false;
    const records = [...this.history.all()];
    const tmp = `${this.path}.tmp`;
    try {
      await writeFile(tmp, encodeConfigFile(records));
      await syncPath(tmp);
      await rename(tmp, this.path);
      await syncPath(this.opts.dir);
    } catch (err) {
      this.opts.errors.inc({ op: 'config-write' });
      this.opts.logger.error(
        { err, file: this.path, services: records.length, retryInMs: RETRY_MS },
        'config history write failed; tried again',
      );
      this.dirty = true;
      await new Promise((r) => setTimeout(r, RETRY_MS).unref());
    }
  }

  /** Writes what is pending and stops. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    if (this.dirty) await this.write();
  }
}
