/**
 * The event log kept beside the `file` store's registrations (`events.jsonl`), so a client
 * resuming with `since=SEQ&epoch=E` after a restart gets a replay of what it missed rather
 * than a snapshot.
 *
 * The file is a header line naming the log's epoch and the sequence its first event follows,
 * then one framed line (codec.ts) per stored event, consecutive. Each event is written with
 * one write(2) *before* any subscriber is sent it (EventLog.persistTo): a process killed at
 * any point has on disk every event a client saw, so the restarted log continues the same
 * epoch without ever numbering two different events alike. A torn last line (the process died
 * inside the write, so no client saw that event) is dropped. fdatasync follows the store's
 * policy (FileStore).
 *
 * The file is bounded like the log: past twice the log's bounds (count or bytes), it is
 * rewritten with the events the log holds (write a temp file, then, without yielding, append
 * what was stored meanwhile, fsync, rename). A failed write empties the file (a restart then
 * starts a new epoch: snapshots, never a replay with a hole) and the next compaction restores
 * it.
 */
import { join } from 'node:path';
import type { Counter } from 'prom-client';
import { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import { registryEventSchema, streamEpochSchema } from '../../common/wire.js';
import type { RegistryEvent } from '../../common/wire.js';
import type { EventLog } from '../events/log.js';
import { decodeLine, encodeLine, frame } from './codec.js';
import { JournalFile, readIfExists } from './journal.js';
import type { JournalRewrite } from './journal.js';

export const EVENTS_FILE = 'events.jsonl';
/** How long after a failed write or compaction the next compaction is tried. */
const RETRY_MS = 30_000;

export const eventsHeaderSchema = z.strictObject({
  t: z.literal('events'),
  format: z.literal(1),
  epoch: streamEpochSchema,
  /** The sequence the first event of the file follows. */
  after: z.int().min(0),
  writtenAt: z.string(),
});

/** What a previous process kept of its event log. */
export interface KeptEvents {
  epoch: string;
  after: number;
  events: RegistryEvent[];
  /** The last sequence kept (`after` when no event is). */
  lastSeq: number;
}

/** What a file's bytes hold, or why they cannot be continued. Pure. */
export type DecodedEvents =
  | { ok: true; kept: KeptEvents; validBytes: number; dropped?: { offset: number; why: string } }
  | { ok: false; why: string };

export function decodeEvents(bytes: Buffer): DecodedEvents {
  let offset = bytes.indexOf(0x0a);
  if (offset === -1) return { ok: false, why: 'no header line' };
  const head = decodeLine(bytes.toString('utf8', 0, offset));
  const header = head.ok ? eventsHeaderSchema.safeParse(head.value) : undefined;
  if (header?.success !== true) return { ok: false, why: 'no valid header' };
  const { epoch, after } = header.data;
  const events: RegistryEvent[] = [];
  offset += 1;
  while (offset < bytes.length) {
    const end = bytes.indexOf(0x0a, offset);
    const line = end === -1 ? undefined : decodeLine(bytes.toString('utf8', offset, end));
    const why = whyNotNext(line, after + events.length + 1);
    if (why !== undefined) {
      // Anything after a bad line is damage, not a torn write: the log cannot be continued.
      if (end !== -1 && end + 1 < bytes.length) return { ok: false, why: `${why} at ${offset}` };
      const kept = { epoch, after, events, lastSeq: after + events.length };
      return { ok: true, kept, validBytes: offset, dropped: { offset, why } };
    }
    events.push((line as { value: RegistryEvent }).value);
    offset = end + 1;
  }
  return {
    ok: true,
    kept: { epoch, after, events, lastSeq: after + events.length },
    validBytes: offset,
  };
}

function whyNotNext(
  line: ReturnType<typeof decodeLine> | undefined,
  seq: number,
): string | undefined {
  if (line === undefined) return 'incomplete last record';
  if (!line.ok) return line.why;
  if (!registryEventSchema.safeParse(line.value).success) return 'not a valid event';
  const got = (line.value as { seq: unknown }).seq;
  return got === seq ? undefined : `event ${String(got)} where ${seq} was next`;
}

export interface EventFileOptions {
  dir: string;
  logger: Logger;
  /** Failures, by operation (the store's counter: `events-write`, `events-compact`). */
  errors: Counter;
  compactions: Counter;
  /** The append of one event (a seam: tests make it fail). */
  appendSync?: (fd: number, bytes: Buffer) => number;
}

export class EventFile {
  private kept: KeptEvents | undefined;
  private fileEvents = 0;
  private log: EventLog | undefined;
  private readonly journal: JournalFile;

  constructor(private readonly opts: EventFileOptions) {
    this.journal = new JournalFile({
      path: join(opts.dir, EVENTS_FILE),
      dir: opts.dir,
      logger: opts.logger,
      errors: opts.errors,
      ops: { write: 'events-write', compact: 'events-compact' },
      messages: {
        writeFailed:
          'event log write failed: events are not kept until the file is rewritten (a restart now starts a new epoch)',
        compactFailed: 'event log compaction failed; tried again later',
      },
      retryMs: RETRY_MS,
      // A failed write empties the file: a restart cannot continue the epoch past a hole.
      emptyOnFailure: true,
      emptied: () => (this.fileEvents = 0),
      ...(opts.appendSync && { appendSync: opts.appendSync }),
      needsRewrite: () => this.needsRewrite(),
      rewrite: () => this.rewrite(),
    });
  }

  get path(): string {
    return join(this.opts.dir, EVENTS_FILE);
  }

  /** Size of the file now. */
  get bytes(): number {
    return this.journal.bytes;
  }

  /** What the file holds; undefined when there is none or it cannot be continued (said why). */
  async load(): Promise<KeptEvents | undefined> {
    const bytes = await readIfExists(this.path);
    if (bytes === undefined) return undefined;
    const decoded = decodeEvents(bytes);
    if (!decoded.ok) {
      if (bytes.length > 0)
        this.opts.logger.warn(
          { file: this.path, reason: decoded.why, bytes: bytes.length },
          'kept event log cannot be continued: a new epoch starts (resuming clients get a snapshot)',
        );
      return undefined;
    }
    if (decoded.dropped !== undefined) {
      this.opts.logger.warn(
        {
          file: this.path,
          offset: decoded.dropped.offset,
          droppedBytes: bytes.length - decoded.validBytes,
          reason: decoded.dropped.why,
          kept: decoded.kept.events.length,
        },
        'event log ends with a torn record (the process stopped mid-write, before sending it): dropped it',
      );
    }
    this.kept = decoded.kept;
    this.fileEvents = decoded.kept.events.length;
    this.journal.bytes = decoded.validBytes;
    return decoded.kept;
  }

  /**
   * Keeps `log` from now on. A log that continues what was loaded is appended to (after
   * cutting a torn tail); any other (a new epoch) starts the file afresh.
   */
  attach(log: EventLog): void {
    this.log = log;
    const kept = this.kept;
    // The events the start itself added (restored registrations, applied resources), when the
    // log continues the file: appended, not the whole file rewritten.
    const added =
      kept !== undefined && kept.epoch === log.epoch ? log.since(kept.lastSeq) : undefined;
    this.kept = undefined;
    if (added !== undefined) {
      this.journal.continueAt(this.journal.bytes);
      log.persistTo((event, json) => this.append(event, json));
      for (const event of added) this.append(event as RegistryEvent, log.serialized(event));
      return;
    }
    // A new epoch: the file holds its (few) events.
    this.journal.start(fileText(log.epoch, log.heldAfter, log.held()));
    this.fileEvents = log.lastSeq - log.heldAfter;
    log.persistTo((event, json) => this.append(event, json));
  }

  private append(event: RegistryEvent, json: string): void {
    if (!this.journal.append(frame(json), { seq: event.seq })) return;
    this.fileEvents += 1;
    this.journal.maybeCompact();
  }

  private needsRewrite(): boolean {
    const bounds = this.log?.bounds;
    if (bounds === undefined) return false;
    return this.fileEvents > 2 * bounds.events || this.journal.bytes > 2 * bounds.bytes;
  }

  /**
   * The rewrite: the events the log holds, then (without yielding) what was stored while the
   * temp file was written, so the file misses nothing a client was sent.
   */
  private rewrite(): JournalRewrite {
    const log = this.log;
    if (log === undefined) throw new Error('no event log attached');
    const upTo = log.lastSeq;
    const epoch = log.epoch;
    const held = log.held();
    let since: readonly RegistryEvent[] = [];
    return {
      text: fileText(epoch, log.heldAfter, held),
      rest: () => {
        const after = log.epoch === epoch ? log.since(upTo) : undefined;
        if (after === undefined) throw new Error('the log moved past the rewrite; tried again');
        since = after as readonly RegistryEvent[];
        return since.map((e) => frame(log.serialized(e))).join('');
      },
      swapped: () => {
        // What the file holds (the log may have dropped some of it meanwhile).
        this.fileEvents = held.length + since.length;
        this.opts.compactions.inc();
      },
    };
  }

  /** Makes what was written durable (the store's fsync policy decides when); off the loop. */
  async sync(): Promise<void> {
    await this.journal.sync();
  }

  /** Rewrites the file with the events the log holds; never throws (logs, counts, retries). */
  async compact(): Promise<void> {
    await this.journal.compact();
  }

  /** Stops keeping the log (after a compaction in flight). */
  async close(): Promise<void> {
    await this.journal.close(false, () => this.log?.persistTo(undefined));
  }
}

function fileText(epoch: string, after: number, events: readonly RegistryEvent[]): string {
  const header = encodeLine({
    t: 'events',
    format: 1,
    epoch,
    after,
    writtenAt: new Date().toISOString(),
  });
  return header + events.map((e) => frame(JSON.stringify(e))).join('');
}
