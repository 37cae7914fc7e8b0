/**
 * Config versions and history kept by the `file` store (`config-history.jsonl`), so a
 * restarted operator neither gives a config it already numbered a new version nor takes a
 * version back (operator/registry/config-history.ts).
 *
 * The file is a header, the records it was last rewritten with (one per service), then one
 * journal line per change since: `put` (the versions a service keeps now, and the entries the
 * file does not hold yet, usually the one new version) or `drop` (a service evicted). Lines
 * are framed as in codec.ts. Each change is appended with one write(2) *synchronously, as the
 * history announces it*, so before the registry sends the `config_changed` event naming the
 * version: a process killed at any point has on disk every version a client saw, and never
 * hands one out again. fdatasync follows the store's policy (`always`: with each change;
 * `interval`: on the store's interval), as for the event log (event-file.ts).
 *
 * Bounded like the history itself (`--config-history-bytes`): past twice what the history
 * holds or the records of the last rewrite, whichever is more (and a slack; records can outweigh
 * their entries), the file is rewritten from memory (temp file, then, without yielding,
 * the journal lines written meanwhile, fsync, rename, fsync the folder). A torn last line (the
 * process died inside the write, so the event never left) is dropped; damage before it stops
 * the start (StoreCorruptError) rather than number versions from nothing. A failed append is
 * logged and counted, and the file is rewritten whole after RETRY_MS.
 * docs/decisions/0025-config-history-durable-and-bounded.md.
 */
import { closeSync, fdatasyncSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Counter } from 'prom-client';
import { z } from 'zod';
import {
  configHistoryEntrySchema,
  serviceConfigRecordSchema,
} from '../../common/config-history.js';
import type { ConfigHistoryEntry, ServiceConfigRecord } from '../../common/config-history.js';
import type { Logger } from '../../common/logger.js';
import type { ConfigHistory } from '../registry/config-history.js';
import { decodeLine, encodeLine, StoreCorruptError } from './codec.js';
import { syncPath } from './fsync.js';
import { appendWhole, datasync, readIfExists, replaceWith, syncAndClose } from './journal.js';

export const CONFIG_FILE = 'config-history.jsonl';
const RETRY_MS = 5_000;
/** Journal bytes allowed on top of twice the history's size before a rewrite. */
const COMPACT_SLACK_BYTES = 1024 * 1024;

const headerSchema = z.strictObject({
  t: z.literal('config-history'),
  /** 1: records only (never appended to); 2: records, then journal lines. */
  format: z.union([z.literal(1), z.literal(2)]),
  count: z.int().min(0),
  writtenAt: z.string(),
});

const putSchema = z.strictObject({
  t: z.literal('put'),
  namespace: z.string().min(1).max(253),
  name: z.string().min(1).max(253),
  version: z.int().min(0),
  hash: z.string().nullable(),
  /** The versions the service keeps now, oldest first. */
  versions: z.array(z.int().min(1)).max(10_000),
  /** Those of them the file did not hold yet. */
  added: z.array(configHistoryEntrySchema).max(10_000),
});
const dropSchema = z.strictObject({
  t: z.literal('drop'),
  namespace: z.string().min(1).max(253),
  name: z.string().min(1).max(253),
});
const journalSchema = z.discriminatedUnion('t', [putSchema, dropSchema]);
type JournalLine = z.infer<typeof journalSchema>;

/** What a file's bytes hold: the records, and the torn tail dropped, if any. */
export interface DecodedConfigFile {
  records: ServiceConfigRecord[];
  dropped?: { offset: number; why: string };
}

const keyOf = (r: { namespace: string; name: string }): string => `${r.namespace}/${r.name}`;

/** The JSON values of a file's framed lines, up to a torn last line (dropped and said). */
function framedValues(
  file: string,
  bytes: Buffer,
): { values: unknown[]; offset: number; dropped?: { offset: number; why: string } } {
  const lines = bytes.toString('utf8').split('\n');
  const last = lines.pop() ?? '';
  let offset = 0;
  const values: unknown[] = [];
  for (const [i, line] of lines.entries()) {
    const decoded = decodeLine(line);
    if (!decoded.ok) {
      // Only the last line can be torn (appended by a process that died mid-write).
      if (i === lines.length - 1 && last === '' && i > 0)
        return { values, offset, dropped: { offset, why: decoded.why } };
      throw new StoreCorruptError(file, offset, decoded.why);
    }
    values.push(decoded.value);
    offset += Buffer.byteLength(line) + 1;
  }
  if (last === '') return { values, offset };
  if (values.length === 0) throw new StoreCorruptError(file, 0, 'incomplete last line');
  return { values, offset, dropped: { offset, why: 'incomplete last line' } };
}

/**
 * The records of a file's bytes; throws StoreCorruptError when they are not valid up to a
 * torn last line (which is dropped and reported).
 */
export function decodeConfigFile(file: string, bytes: Buffer): DecodedConfigFile {
  const { values, offset, dropped } = framedValues(file, bytes);
  const header = headerSchema.safeParse(values.shift());
  if (!header.success) throw new StoreCorruptError(file, 0, 'no valid header');
  const { count, format } = header.data;
  if (values.length < count || (format === 1 && values.length !== count))
    throw new StoreCorruptError(file, offset, `the header counts ${count} records`);
  const records = new Map<string, ServiceConfigRecord>();
  for (const [i, value] of values.slice(0, count).entries()) {
    const parsed = serviceConfigRecordSchema.safeParse(value);
    if (!parsed.success) throw new StoreCorruptError(file, 0, `record ${i + 1} is not valid`);
    records.set(keyOf(parsed.data), parsed.data);
  }
  for (const [i, value] of values.slice(count).entries()) {
    const parsed = journalSchema.safeParse(value);
    const why = parsed.success ? applyJournal(records, parsed.data) : 'not a valid change';
    if (why !== undefined) throw new StoreCorruptError(file, 0, `change ${i + 1}: ${why}`);
  }
  return { records: [...records.values()], ...(dropped && { dropped }) };
}

/** Applies one journal line; says why when it cannot be (a version the file never held). */
function applyJournal(
  records: Map<string, ServiceConfigRecord>,
  line: JournalLine,
): string | undefined {
  const key = keyOf(line);
  if (line.t === 'drop') {
    records.delete(key);
    return undefined;
  }
  const known = new Map<number, ConfigHistoryEntry>();
  for (const e of records.get(key)?.entries ?? []) known.set(e.version, e);
  for (const e of line.added) known.set(e.version, e);
  const entries: ConfigHistoryEntry[] = [];
  for (const v of line.versions) {
    const entry = known.get(v);
    if (entry === undefined) return `version ${v} of ${key} is nowhere before it`;
    entries.push(entry);
  }
  const { namespace, name, version, hash } = line;
  // Last changed last, as the history orders its records.
  records.delete(key);
  records.set(key, { namespace, name, version, hash, entries });
  return undefined;
}

export function encodeConfigFile(records: readonly ServiceConfigRecord[]): string {
  const header = { t: 'config-history', format: 2, count: records.length };
  return (
    encodeLine({ ...header, writtenAt: new Date().toISOString() }) +
    records.map((r) => encodeLine(r)).join('')
  );
}

export interface ConfigFileOptions {
  dir: string;
  logger: Logger;
  errors: Counter;
  /** The store's fsync policy: `always` syncs each change before it is announced. */
  fsync?: 'always' | 'interval';
  /** How often appended changes are synced under `interval`. */
  fsyncIntervalMs?: number;
  /** The append of one change (a seam: tests make it fail). */
  appendSync?: (fd: number, bytes: Buffer) => number;
  /** How long after a failure the file is rewritten (default RETRY_MS). */
  retryMs?: number;
}

export class ConfigFile {
  private history: ConfigHistory | undefined;
  private unsubscribe: (() => void) | undefined;
  private fd: number | undefined;
  private fileBytes = 0;
  /** Size of the records the file was last rewritten with (the threshold is at least twice it). */
  private rewrittenBytes = 0;
  /** Entries the file holds (so a change appends only what is new). */
  private written = new WeakSet<ConfigHistoryEntry>();
  /** Lines appended while a rewrite is in flight: they go into the new file too. */
  private pendingForRewrite: string[] | undefined;
  private compacting: Promise<void> | undefined;
  private broken = false;
  private unsynced = false;
  private retry: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** close() was called: no retry is scheduled any more. */
  private stopping = false;

  constructor(private readonly opts: ConfigFileOptions) {}

  get path(): string {
    return join(this.opts.dir, CONFIG_FILE);
  }

  /** Size of the file now. */
  get bytes(): number {
    return this.fileBytes;
  }

  async load(): Promise<ServiceConfigRecord[]> {
    const bytes = await readIfExists(this.path);
    if (bytes === undefined) return [];
    const decoded = decodeConfigFile(this.path, bytes);
    if (decoded.dropped !== undefined)
      this.opts.logger.warn(
        {
          file: this.path,
          offset: decoded.dropped.offset,
          droppedBytes: bytes.length - decoded.dropped.offset,
          reason: decoded.dropped.why,
        },
        'config history ends with a torn change (the process stopped mid-write, before announcing it): dropped it',
      );
    return decoded.records;
  }

  /**
   * Keeps `history` from now on: the file is rewritten with what it holds (the start's
   * changes included), then each change is appended as it is announced.
   */
  attach(history: ConfigHistory): void {
    this.history = history;
    this.rewriteNow();
    this.unsubscribe = history.subscribe((key, record) => this.append(key, record));
    if (this.opts.fsync !== 'always') {
      this.syncTimer = setInterval(() => void this.sync(), this.opts.fsyncIntervalMs ?? 1000);
      this.syncTimer.unref();
    }
  }

  private append(key: { namespace: string; name: string }, record?: ServiceConfigRecord): void {
    const fd = this.fd;
    if (fd === undefined || this.closed) return;
    const added = record?.entries.filter((e) => !this.written.has(e)) ?? [];
    const line = encodeLine(
      record === undefined
        ? { t: 'drop', ...key }
        : {
            t: 'put',
            namespace: record.namespace,
            name: record.name,
            version: record.version,
            hash: record.hash,
            versions: record.entries.map((e) => e.version),
            added,
          },
    );
    if (this.broken) {
      // Not appended to a file that missed a change; a rewrite in flight takes it.
      this.pendingForRewrite?.push(line);
      return;
    }
    const bytes = Buffer.from(line);
    try {
      appendWhole(fd, bytes, this.opts.appendSync);
      if (this.opts.fsync === 'always') fdatasyncSync(fd);
      else this.unsynced = true;
    } catch (err) {
      // A rewrite in flight still takes the change: it replaces the file that missed it.
      this.pendingForRewrite?.push(line);
      this.failed(err as Error, key);
      return;
    }
    for (const e of added) this.written.add(e);
    this.fileBytes += bytes.length;
    this.pendingForRewrite?.push(line);
    this.maybeCompact();
  }

  /** An append failed: nothing more is appended until the file is rewritten whole. */
  private failed(err: Error, key: { namespace: string; name: string }): void {
    this.broken = true;
    this.opts.errors.inc({ op: 'config-write' });
    this.opts.logger.error(
      { err, file: this.path, ...key, retryInMs: this.opts.retryMs ?? RETRY_MS },
      'config history write failed: the file is rewritten whole later (until then a restart may repeat versions)',
    );
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retry !== undefined || this.closed || this.stopping) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.compacting ??= this.compact().finally(() => (this.compacting = undefined));
    }, this.opts.retryMs ?? RETRY_MS);
    this.retry.unref();
  }

  private maybeCompact(): void {
    const history = this.history;
    if (history === undefined || this.compacting || this.retry !== undefined) return;
    // Twice the larger of the history's bytes and the last rewrite's records: records can
    // outweigh their entries (long names), and a file just rewritten must not be again.
    const base = Math.max(history.bytes, this.rewrittenBytes);
    if (this.fileBytes <= 2 * base + COMPACT_SLACK_BYTES) return;
    this.compacting = this.compact().finally(() => (this.compacting = undefined));
  }

  /** Makes what was appended durable (under `interval`); off the loop. */
  async sync(): Promise<void> {
    const fd = this.fd;
    if (!this.unsynced || fd === undefined) return;
    this.unsynced = false;
    try {
      await datasync(fd);
    } catch (err) {
      if (this.fd !== fd) return; // a rewrite replaced the file and synced it
      this.unsynced = true;
      this.opts.errors.inc({ op: 'config-sync' });
      this.opts.logger.error({ err, file: this.path }, 'config history fsync failed');
    }
  }

  /** Rewrites the file from memory; never throws (logs, counts, retries). */
  private async compact(): Promise<void> {
    const history = this.history;
    if (history === undefined || this.closed) return;
    const tmp = `${this.path}.tmp`;
    this.pendingForRewrite = [];
    try {
      const records = [...history.all()];
      const text = encodeConfigFile(records);
      await writeFile(tmp, text);
      // From here without yielding: the changes appended meanwhile follow the records.
      const rest = this.pendingForRewrite.join('');
      const fd = replaceWith(tmp, 'a', rest, this.path);
      this.swap(fd, Buffer.byteLength(text) + Buffer.byteLength(rest), records, text);
      await syncPath(this.opts.dir);
    } catch (err) {
      this.opts.errors.inc({ op: 'config-compact' });
      this.opts.logger.error(
        { err, file: this.path, retryInMs: this.opts.retryMs ?? RETRY_MS },
        'config history rewrite failed; tried again later',
      );
      this.scheduleRetry();
    } finally {
      this.pendingForRewrite = undefined;
    }
  }

  /** At attach: the file holds what the history holds, synced, before anything is announced. */
  private rewriteNow(): void {
    const records = [...(this.history?.all() ?? [])];
    const tmp = `${this.path}.tmp`;
    const text = encodeConfigFile(records);
    const fd = replaceWith(tmp, 'w', text, this.path);
    this.swap(fd, Buffer.byteLength(text), records, text);
  }

  /** The rewritten file (open at `fd`, positioned at its end) replaces the old one. */
  private swap(
    fd: number,
    bytes: number,
    records: readonly ServiceConfigRecord[],
    recordsText: string,
  ): void {
    const old = this.fd;
    this.fd = fd;
    if (old !== undefined) closeSync(old);
    this.fileBytes = bytes;
    this.rewrittenBytes = Buffer.byteLength(recordsText);
    // What the file holds now: every entry of the records, and what was appended since.
    for (const r of records) for (const e of r.entries) this.written.add(e);
    this.broken = false;
    this.unsynced = false;
  }

  /**
   * Makes what was appended durable and stops (after a rewrite in flight, and a last one when
   * a failed write was waiting for its retry).
   */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.stopping = true;
    const repair = this.retry !== undefined;
    if (this.retry !== undefined) clearTimeout(this.retry);
    if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
    this.retry = undefined;
    await this.compacting;
    // A failed write was waiting for its retry: the file misses versions already announced,
    // which a restart would hand out again. One last rewrite (logged and counted if it fails).
    if (repair || this.broken) await this.compact();
    this.closed = true;
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    syncAndClose(fd, this.unsynced);
  }
}
