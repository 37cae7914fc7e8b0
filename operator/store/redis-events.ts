/**
 * The `redis` store's kept event log (one operator per Redis): `<prefix>:events`, a list of
 * the events the log holds (JSON, oldest first, trimmed to the log's size after each push),
 * and `<prefix>:events:meta`, `{epoch, clean}`.
 *
 * Redis is written after an event is sent (a network round trip cannot come first), so a
 * process that dies may have sent events Redis never got. The log is therefore continued only
 * after a clean stop: `load` marks the log running (`clean: null`) before anything is sent,
 * and `close` pushes what is pending and records the last sequence as `clean`. After a crash,
 * or a push that failed, the next process starts a new epoch: resuming clients get a snapshot,
 * never a replay with a hole. (The `file` store writes before sending, so it continues after
 * a crash too: event-file.ts.)
 */
import { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import { registryEventSchema, streamEpochSchema } from '../../common/wire.js';
import type { RegistryEvent } from '../../common/wire.js';
import type { EventLog } from '../events/log.js';
import type { KeptEvents } from './event-file.js';
import type { RedisConnection } from './resp.js';

const metaSchema = z.strictObject({
  epoch: streamEpochSchema,
  /** The last sequence pushed before a clean stop; null while a process runs. */
  clean: z.int().min(0).nullable(),
});

/** The kept log of a list's items and its meta, when it can be continued; else why not. Pure. */
export function keptFromRedis(
  items: readonly string[],
  metaText: string | undefined,
): { kept: KeptEvents } | { why: string } {
  const meta = metaSchema.safeParse(parseJson(metaText));
  if (!meta.success) return { why: 'no valid meta' };
  if (meta.data.clean === null) return { why: 'the previous process did not stop cleanly' };
  const events: RegistryEvent[] = [];
  for (const item of items) {
    const value = parseJson(item);
    if (!registryEventSchema.safeParse(value).success) return { why: 'an item is not an event' };
    const event = value as RegistryEvent;
    const previous = events.at(-1);
    if (previous !== undefined && event.seq !== previous.seq + 1)
      return { why: `event ${event.seq} follows ${previous.seq}` };
    events.push(event);
  }
  const first = events[0];
  if (first === undefined) return { why: 'no events kept' };
  const lastSeq = first.seq - 1 + events.length;
  if (lastSeq !== meta.data.clean)
    return { why: `the events end at ${lastSeq}, the clean stop was at ${meta.data.clean}` };
  return { kept: { epoch: meta.data.epoch, after: first.seq - 1, events, lastSeq } };
}

export interface RedisEventsOptions {
  redis: RedisConnection;
  prefix: string;
  logger: Logger;
  where: Record<string, unknown>;
}

export class RedisEvents {
  private readonly keys: { list: string; meta: string };
  private log: EventLog | undefined;
  private pending: string[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  /** An event could not be pushed: the log is not continued after this process. */
  private lost = false;

  constructor(private readonly opts: RedisEventsOptions) {
    this.keys = { list: `${opts.prefix}:events`, meta: `${opts.prefix}:events:meta` };
  }

  /** What a clean stop kept; marks the log running before anything can be sent. */
  async load(): Promise<KeptEvents | undefined> {
    const { redis } = this.opts;
    const items = await redis.command(['LRANGE', this.keys.list, '0', '-1']);
    const meta = await redis.command(['GET', this.keys.meta]);
    const got = keptFromRedis(
      Array.isArray(items) ? items.map(String) : [],
      typeof meta === 'string' ? meta : undefined,
    );
    if ('why' in got) {
      if (meta !== null)
        this.opts.logger.warn(
          { ...this.opts.where, key: this.keys.list, reason: got.why },
          'kept event log cannot be continued: a new epoch starts (resuming clients get a snapshot)',
        );
      await redis.command(['DEL', this.keys.meta]);
      return undefined;
    }
    await redis.command(['SET', this.keys.meta, JSON.stringify({ ...metaOf(got.kept.epoch) })]);
    return got.kept;
  }

  /** Keeps `log` from now on: a log that does not continue what was kept starts the list afresh. */
  attach(log: EventLog, kept: KeptEvents | undefined): void {
    this.log = log;
    if (kept === undefined || kept.epoch !== log.epoch) {
      this.pending = log.held().map((e) => JSON.stringify(e));
      // On the one connection, in order: before any push.
      const fresh = [
        this.opts.redis.command(['DEL', this.keys.list]),
        this.opts.redis.command(['SET', this.keys.meta, JSON.stringify(metaOf(log.epoch))]),
      ];
      Promise.all(fresh).catch((err: unknown) => this.failed(err, 0));
    } else {
      // Events appended after the restore (the start's own) are not in the list yet.
      this.pending = (log.since(kept.lastSeq) ?? []).map((e) => JSON.stringify(e));
    }
    log.persistTo((_event, json) => {
      this.pending.push(json);
      this.schedule();
    });
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /** Pushes what is pending, one push at a time; never throws. */
  private async flush(): Promise<void> {
    if (this.flushing !== undefined) {
      await this.flushing;
      if (this.pending.length > 0) this.schedule();
      return;
    }
    const batch = this.pending;
    if (batch.length === 0 || this.log === undefined) return;
    this.pending = [];
    const keep = this.log.size;
    this.flushing = this.push(batch, keep).finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async push(batch: readonly string[], keep: number): Promise<void> {
    try {
      await this.opts.redis.command(['RPUSH', this.keys.list, ...batch]);
      await this.opts.redis.command(['LTRIM', this.keys.list, String(-keep), '-1']);
    } catch (err) {
      this.failed(err, batch.length);
    }
  }

  private failed(err: unknown, events: number): void {
    if (!this.lost)
      this.opts.logger.error(
        { err, ...this.opts.where, key: this.keys.list, events },
        'event log push to redis failed: after a restart, resuming clients get a snapshot',
      );
    this.lost = true;
  }

  /** Pushes what is pending and, when nothing was lost, records the clean stop. */
  async close(): Promise<void> {
    const log = this.log;
    if (log === undefined) return;
    log.persistTo(undefined);
    while (this.flushing !== undefined || this.pending.length > 0) {
      if (this.flushing !== undefined) await this.flushing;
      else await this.flush();
    }
    if (this.lost) return;
    try {
      await this.opts.redis.command([
        'SET',
        this.keys.meta,
        JSON.stringify({ epoch: log.epoch, clean: log.lastSeq }),
      ]);
    } catch (err) {
      this.opts.logger.error(
        { err, ...this.opts.where, key: this.keys.meta },
        'could not record the clean stop: after a restart, resuming clients get a snapshot',
      );
    }
  }
}

function metaOf(epoch: string): z.infer<typeof metaSchema> {
  return { epoch, clean: null };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
