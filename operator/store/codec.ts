/**
 * The `file` store's on-disk records, and their replay. Pure: bytes in, state out.
 *
 * Every record is one line, `<crc32 of the JSON, 8 hex digits> <JSON>\n`, and its JSON is
 * validated with zod when read. A record is a state assignment (`put` the registration as it
 * is now, `del` it), so replaying a log over a snapshot that already holds some of it gives the
 * same state, and the write queue may coalesce many changes of one instance into one record.
 *
 * A bad record with no valid record after it is a torn write (the process died mid-append):
 * replay keeps everything before it and says what it dropped. A bad record followed by valid
 * ones is damage to acknowledged data: replay refuses (StoreCorruptError) rather than guess.
 */
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { z } from 'zod';
import type { PersistedInstance } from '../registry/registry.js';

const healthStatus = z.enum(['passing', 'warning', 'critical']);

export const persistedInstanceSchema = z.strictObject({
  id: z.string().min(1).max(253),
  namespace: z.string().min(1).max(253),
  service: z.string().min(1).max(253),
  host: z.string().min(1).max(253),
  port: z.number().int().min(0).max(65535),
  ports: z.record(z.string(), z.number().int().min(0).max(65535)).optional(),
  version: z.string().optional(),
  zone: z.string().optional(),
  datacenter: z.string().optional(),
  weight: z.number().min(0),
  metadata: z.record(z.string(), z.string()),
  owner: z.string().optional(),
  registeredAt: z.number().int().nonnegative(),
  lastHeartbeat: z.number().int().nonnegative(),
  ttlMs: z.number().int().positive(),
  check: z.strictObject({ status: healthStatus, output: z.string().optional() }),
}) satisfies z.ZodType<PersistedInstance>;

/** A log record: `seq` is the event sequence when it was written. */
export const logRecordSchema = z.discriminatedUnion('t', [
  z.strictObject({
    t: z.literal('put'),
    seq: z.number().int().nonnegative(),
    instance: persistedInstanceSchema,
  }),
  z.strictObject({
    t: z.literal('del'),
    seq: z.number().int().nonnegative(),
    id: z.string().min(1).max(253),
  }),
]);
export type LogRecord = z.infer<typeof logRecordSchema>;

/** The first line of a snapshot: which log continues it, and how many records follow. */
export const snapshotHeaderSchema = z.strictObject({
  t: z.literal('snapshot'),
  format: z.literal(1),
  seq: z.number().int().nonnegative(),
  generation: z.number().int().nonnegative(),
  count: z.number().int().nonnegative(),
  writtenAt: z.string(),
});
export type SnapshotHeader = z.infer<typeof snapshotHeaderSchema>;

/** One framed line. */
export function encodeLine(value: unknown): string {
  return frame(JSON.stringify(value));
}

/** One framed line of JSON text already built (the event log serializes each event once). */
export function frame(json: string): string {
  return `${checksum(json)} ${json}\n`;
}

function checksum(json: string): string {
  return (crc32(json) >>> 0).toString(16).padStart(8, '0');
}

/** The JSON of a framed line (without its newline), or why it is not one. */
export function decodeLine(
  line: string,
): { ok: true; value: unknown } | { ok: false; why: string } {
  if (line.length < 10 || line[8] !== ' ') return { ok: false, why: 'not a framed record' };
  const json = line.slice(9);
  if (checksum(json) !== line.slice(0, 8)) return { ok: false, why: 'checksum mismatch' };
  try {
    return { ok: true, value: JSON.parse(json) as unknown };
  } catch {
    return { ok: false, why: 'invalid JSON' };
  }
}

/** A store file that cannot be trusted: which file, where, and why. */
export class StoreCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly why: string,
  ) {
    super(`${file} is damaged at byte ${offset}: ${why}`);
    this.name = 'StoreCorruptError';
  }

  /** What a person can do about it. */
  get advice(): string {
    const dir = dirname(this.file);
    const keepPrefix = /log\.\d+\.jsonl$/.test(this.file)
      ? `To keep the records before the damage: truncate -s ${this.offset} ${this.file}. `
      : '';
    return `${keepPrefix}To start with an empty store, move the folder aside and keep it for inspection: mv ${dir} ${dir}.damaged`;
  }
}

export interface DroppedTail {
  /** Where the dropped bytes start: the log is valid up to here. */
  offset: number;
  bytes: number;
  why: string;
}

export interface DecodedLog {
  records: LogRecord[];
  /** Length of the valid prefix, in bytes. */
  validBytes: number;
  dropped?: DroppedTail;
}

/** One line's record, or why it is not a valid one. */
function recordOf(line: string): { ok: true; record: LogRecord } | { ok: false; why: string } {
  const decoded = decodeLine(line);
  if (!decoded.ok) return decoded;
  const parsed = logRecordSchema.safeParse(decoded.value);
  if (!parsed.success)
    return { ok: false, why: `not a valid record: ${parsed.error.issues[0]?.message ?? ''}` };
  return { ok: true, record: parsed.data };
}

/**
 * The records of a log file's bytes. A torn tail is dropped (and described); damage with
 * valid records after it throws StoreCorruptError.
 */
export function decodeLog(file: string, bytes: Buffer): DecodedLog {
  const records: LogRecord[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf(0x0a, offset);
    if (end === -1) {
      return {
        records,
        validBytes: offset,
        dropped: { offset, bytes: bytes.length - offset, why: 'incomplete last record' },
      };
    }
    const got = recordOf(bytes.toString('utf8', offset, end));
    if (!got.ok) {
      if (hasValidRecordAfter(bytes, end + 1)) throw new StoreCorruptError(file, offset, got.why);
      return {
        records,
        validBytes: offset,
        dropped: { offset, bytes: bytes.length - offset, why: got.why },
      };
    }
    records.push(got.record);
    offset = end + 1;
  }
  return { records, validBytes: offset };
}

function hasValidRecordAfter(bytes: Buffer, from: number): boolean {
  let offset = from;
  while (offset < bytes.length) {
    const end = bytes.indexOf(0x0a, offset);
    if (end === -1) return false;
    if (recordOf(bytes.toString('utf8', offset, end)).ok) return true;
    offset = end + 1;
  }
  return false;
}

export interface Snapshot {
  header: SnapshotHeader;
  instances: PersistedInstance[];
}

/** A snapshot file's content; anything short of whole and valid throws StoreCorruptError. */
export function decodeSnapshot(file: string, bytes: Buffer): Snapshot {
  const text = bytes.toString('utf8');
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new StoreCorruptError(file, text.length, 'incomplete last line');
  lines.pop();
  let offset = 0;
  const next = (): unknown => {
    const line = lines.shift() ?? '';
    const decoded = decodeLine(line);
    if (!decoded.ok) throw new StoreCorruptError(file, offset, decoded.why);
    offset += Buffer.byteLength(line) + 1;
    return decoded.value;
  };
  const header = snapshotHeaderSchema.safeParse(lines.length > 0 ? next() : undefined);
  if (!header.success) throw new StoreCorruptError(file, 0, 'no valid snapshot header');
  if (lines.length !== header.data.count) {
    throw new StoreCorruptError(
      file,
      offset,
      `the header counts ${header.data.count} records, the file holds ${lines.length}`,
    );
  }
  const instances: PersistedInstance[] = [];
  while (lines.length > 0) {
    const at = offset;
    const parsed = persistedInstanceSchema.safeParse(next());
    if (!parsed.success) throw new StoreCorruptError(file, at, 'not a valid instance record');
    instances.push(parsed.data);
  }
  return { header: header.data, instances };
}

/** A snapshot file's bytes. */
export function encodeSnapshot(
  header: Omit<SnapshotHeader, 't' | 'format' | 'count'>,
  instances: readonly PersistedInstance[],
): string {
  const lines = [
    encodeLine({ t: 'snapshot', format: 1, ...header, count: instances.length }),
    ...instances.map((i) => encodeLine(i)),
  ];
  return lines.join('');
}

/** Applies log records to the state (id → registration); returns the highest seq seen. */
export function applyRecords(
  state: Map<string, PersistedInstance>,
  records: readonly LogRecord[],
  seq = 0,
): number {
  let last = seq;
  for (const r of records) {
    if (r.t === 'put') state.set(r.instance.id, r.instance);
    else state.delete(r.id);
    last = Math.max(last, r.seq);
  }
  return last;
}
