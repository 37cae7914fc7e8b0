/**
 * The audit log: every mutating operation, every denial and every authentication failure as
 * one structured pino record — who, what, which object, outcome, request id — written to its
 * own files (not the operational log), rotated by size with pino-roll and pruned to the
 * newest `keep` files. Tokens and secrets never reach it: records are built from identities,
 * never from headers, and the logger redacts the usual fields as a second line of defence.
 * `export()` reads a time range back as NDJSON for the admin-only export endpoint.
 *
 * Refusals anyone can cause without a credential (authentication failures, the per-address
 * rate limit) are noise an attacker controls: they go to files of their own
 * (`auth-failures.N.ndjson`, rotated and pruned apart), and repeated ones of one address are
 * folded into one record with a count (audit-aggregate.ts). A flood therefore neither fills
 * the log nor rotates out the decisions on real principals.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import type { Logger } from 'pino';
import roll from 'pino-roll';
import { RefusalAggregator } from './audit-aggregate.js';

export type AuditOutcome = 'allowed' | 'denied' | 'unauthenticated' | 'rate_limited' | 'failed';

export interface AuditEntry {
  /** `ServiceAccount shop/web`, `User alice`, `anonymous`. */
  who: string;
  /** What was attempted: `register`, `deregister`, `discover`, `resource.apply`, … */
  action: string;
  /** The object acted on: `service shop/web`, `instance shop.web-0.web`. */
  object?: string;
  outcome: AuditOutcome;
  /** Why (the deciding ACL or intention, the authentication failure). */
  reason?: string;
  reqId?: string;
  /** The client address (IPv4-mapped IPv6 written as IPv4). */
  address?: string;
  /**
   * An allowed read recorded under `--audit-allowed-reads sample:N`: this record stands for N
   * allowed reads (itself and the N − 1 before it, not written).
   */
  sampled?: number;
}

/** What anyone can cause without a credential: kept apart and folded (see above). */
const NOISE: ReadonlySet<AuditOutcome> = new Set(['unauthenticated', 'rate_limited']);

export interface AuditLogOptions {
  dir: string;
  /** Rotate at this size (pino-roll syntax: `10m`, `500k`). */
  size?: string;
  /** Rotated files kept besides the current one. */
  keep?: number;
  /** Rotation and pruning of the unauthenticated noise (its own files). */
  noiseSize?: string;
  noiseKeep?: number;
  /** Repeated refusals of one address within this window are one record (ms). */
  aggregateWindowMs?: number;
  /** Open aggregation windows at most. */
  aggregateMaxKeys?: number;
  now?: () => number;
  /** Told of each refusal the aggregation counts instead of writing. */
  folded?: () => void;
}

const FILE = 'audit';
const NOISE_FILE = 'auth-failures';
const EXTENSION = '.ndjson';

type RollStream = Awaited<ReturnType<typeof roll>>;

interface Sink {
  logger: Logger;
  stream: RollStream;
  prefix: string;
}

async function openSink(dir: string, prefix: string, size: string, keep: number): Promise<Sink> {
  const stream = await roll({
    file: join(dir, prefix),
    extension: EXTENSION,
    size,
    limit: { count: keep },
    mkdir: true,
  });
  // The file opens asynchronously; records written before are buffered, but export needs it.
  await new Promise<void>((resolve) => stream.once('ready', resolve));
  const logger = pino(
    {
      base: { audit: true },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['*.authorization', '*.token', '*.password', '*.secret', 'token', 'authorization'],
        censor: '[redacted]',
      },
    },
    stream,
  );
  return { logger, stream, prefix };
}

export class AuditLog {
  private readonly aggregator: RefusalAggregator;
  private readonly ticker: NodeJS.Timeout;
  private readonly now: () => number;

  private constructor(
    private readonly main: Sink,
    private readonly noise: Sink,
    private readonly dir: string,
    opts: AuditLogOptions,
  ) {
    this.now = opts.now ?? Date.now;
    const windowMs = opts.aggregateWindowMs ?? 60_000;
    this.aggregator = new RefusalAggregator((entry) => noise.logger.info(entry), {
      windowMs,
      maxKeys: opts.aggregateMaxKeys ?? 10_000,
      ...(opts.folded && { folded: opts.folded }),
    });
    this.ticker = setInterval(() => this.aggregator.flush(this.now()), Math.min(windowMs, 1000));
    this.ticker.unref();
  }

  /** Folding windows open now (bounded by the aggregator's key limit, plus one per outcome). */
  get foldingWindows(): number {
    return this.aggregator.size;
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    await mkdir(opts.dir, { recursive: true });
    const main = await openSink(opts.dir, FILE, opts.size ?? '10m', opts.keep ?? 10);
    const noise = await openSink(
      opts.dir,
      NOISE_FILE,
      opts.noiseSize ?? '10m',
      opts.noiseKeep ?? 3,
    );
    return new AuditLog(main, noise, opts.dir, opts);
  }

  record(entry: AuditEntry): void {
    if (NOISE.has(entry.outcome)) this.aggregator.add(entry, this.now());
    else this.main.logger.info(entry);
  }

  /**
   * The records with `from <= time < to` (ISO strings or ms) of both files, in time order.
   * Open aggregation windows are written first, so the counts so far are in the export.
   */
  async *export(range: { from?: number; to?: number } = {}): AsyncGenerator<string> {
    this.aggregator.flush(this.now(), true);
    // What was recorded so far is on disk before it is read back.
    await Promise.all([flushed(this.main.stream), flushed(this.noise.stream)]);
    const inRange = (time: number): boolean =>
      (range.from === undefined || time >= range.from) &&
      (range.to === undefined || time < range.to);
    yield* mergeByTime(
      this.records(this.main.prefix, inRange),
      this.records(this.noise.prefix, inRange),
    );
  }

  private async *records(
    prefix: string,
    inRange: (time: number) => boolean,
  ): AsyncGenerator<{ time: number; line: string }> {
    const files = (await readdir(this.dir))
      .filter((f) => f.startsWith(`${prefix}.`) && f.endsWith(EXTENSION))
      .sort((a, b) => fileNumber(a) - fileNumber(b));
    for (const file of files) {
      const lines = createInterface({ input: createReadStream(join(this.dir, file)) });
      for await (const line of lines) {
        const time = timeOf(line);
        if (time !== undefined && inRange(time)) yield { time, line };
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    this.aggregator.flush(this.now(), true);
    await Promise.all([ended(this.main.stream), ended(this.noise.stream)]);
  }
}

function flushed(stream: RollStream): Promise<void> {
  return new Promise<void>((resolve) => stream.flush(() => resolve()));
}

function ended(stream: RollStream): Promise<void> {
  return new Promise<void>((resolve) => {
    stream.once('close', resolve);
    stream.end();
  });
}

/** Two time-ordered record streams as one (the first wins ties). */
async function* mergeByTime(
  a: AsyncGenerator<{ time: number; line: string }>,
  b: AsyncGenerator<{ time: number; line: string }>,
): AsyncGenerator<string> {
  let x = await a.next();
  let y = await b.next();
  while (x.done !== true || y.done !== true) {
    if (y.done === true || (x.done !== true && x.value.time <= y.value.time)) {
      yield (x.value as { line: string }).line;
      x = await a.next();
    } else {
      yield y.value.line;
      y = await b.next();
    }
  }
}

function fileNumber(name: string): number {
  return Number(/\.(\d+)\.ndjson$/.exec(name)?.[1] ?? 0);
}

function timeOf(line: string): number | undefined {
  try {
    const t = (JSON.parse(line) as { time?: unknown }).time;
    return typeof t === 'string' ? Date.parse(t) : undefined;
  } catch {
    return undefined;
  }
}
