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
import { JournalFile, readIfExists } from './journal.js';
import type { JournalRewrite } from './journal.js';

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
  private readonly journal: JournalFile;
  /** Size of the records the file was last rewritten with (the threshold is at least twice it). */
  private rewrittenBytes = 0;
  /** Entries the file holds (so a change appends only what is new). */
  private written = new WeakSet<ConfigHistoryEntry>();
  private syncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ConfigFileOptions) {
    this.journal = new JournalFile({
      path: join(opts.dir, CONFIG_FILE),
      dir: opts.dir,
      logger: opts.logger,
      errors: opts.errors,
      ops: { write: 'config-write', compact: 'config-compact' },
      messages: {
        writeFailed:
          'config history write failed: the file is rewritten whole later (until then a restart may repeat versions)',
        compactFailed: 'config history rewrite failed; tried again later',
      },
      retryMs: opts.retryMs ?? RETRY_MS,
      syncEach: opts.fsync === 'always',
      ...(opts.appendSync && { appendSync: opts.appendSync }),
      needsRewrite: () => this.needsRewrite(),
      rewrite: () => this.rewrite(),
    });
  }

  get path(): string {
    return join(this.opts.dir, CONFIG_FILE);
  }

  /** Size of the file now. */
  get bytes(): number {
    return this.journal.bytes;
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
    const records = [...history.all()];
    const text = encodeConfigFile(records);
    this.journal.start(text);
    this.rewritten(records, text);
    this.unsubscribe = history.subscribe((key, record) => this.append(key, record));
    if (this.opts.fsync !== 'always') {
      this.syncTimer = setInterval(() => void this.sync(), this.opts.fsyncIntervalMs ?? 1000);
      this.syncTimer.unref();
    }
  }

  private append(key: { namespace: string; name: string }, record?: ServiceConfigRecord): void {
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
    if (!this.journal.append(line, key)) return;
    for (const e of added) this.written.add(e);
    this.journal.maybeCompact();
  }

  /** Twice the larger of the history's bytes and the last rewrite's records, and a slack. */
  private needsRewrite(): boolean {
    const history = this.history;
    if (history === undefined) return false;
    // Records can outweigh their entries (long names), and a file just rewritten must not be
    // again.
    const base = Math.max(history.bytes, this.rewrittenBytes);
    return this.journal.bytes > 2 * base + COMPACT_SLACK_BYTES;
  }

  /** The rewrite: the history's records, then the changes appended meanwhile. */
  private rewrite(): JournalRewrite {
    const records = [...(this.history?.all() ?? [])];
    const text = encodeConfigFile(records);
    return {
      text,
      rest: (pending) => pending.join(''),
      swapped: () => this.rewritten(records, text),
    };
  }

  /** The file now holds `records` (as `recordsText`) and what was appended since. */
  private rewritten(records: readonly ServiceConfigRecord[], recordsText: string): void {
    this.rewrittenBytes = Buffer.byteLength(recordsText);
    for (const r of records) for (const e of r.entries) this.written.add(e);
  }

  /** Makes what was appended durable (under `interval`); off the loop. */
  async sync(): Promise<void> {
    try {
      await this.journal.sync();
    } catch (err) {
      this.opts.errors.inc({ op: 'config-sync' });
      this.opts.logger.error({ err, file: this.path }, 'config history fsync failed');
    }
  }

  /**
   * Makes what was appended durable and stops (after a rewrite in flight, and a last one when
   * a failed write was waiting for its retry: the file misses versions already announced, which
   * a restart would hand out again).
   */
  async close(): Promise<void> {
    this.unsubscribe?.();
    if (this.syncTimer !== undefined) clearInterval(this.syncTimer);
    await this.journal.close(true);
  }
}
