/**
 * The audit log: every mutating operation, every denial and every authentication failure as
 * one structured pino record — who, what, which object, outcome, request id — written to its
 * own files (not the operational log), rotated by size with pino-roll and pruned to the
 * newest `keep` files. Tokens and secrets never reach it: records are built from identities,
 * never from headers, and the logger redacts the usual fields as a second line of defence.
 * `export()` reads a time range back as NDJSON for the admin-only export endpoint.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import type { Logger } from 'pino';
import roll from 'pino-roll';

export type AuditOutcome = 'allowed' | 'denied' | 'unauthenticated' | 'failed';

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
}

export interface AuditLogOptions {
  dir: string;
  /** Rotate at this size (pino-roll syntax: `10m`, `500k`). */
  size?: string;
  /** Rotated files kept besides the current one. */
  keep?: number;
}

const FILE = 'audit';
const EXTENSION = '.ndjson';

export class AuditLog {
  private constructor(
    private readonly logger: Logger,
    private readonly stream: Awaited<ReturnType<typeof roll>>,
    private readonly dir: string,
  ) {}

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    await mkdir(opts.dir, { recursive: true });
    const stream = await roll({
      file: join(opts.dir, FILE),
      extension: EXTENSION,
      size: opts.size ?? '10m',
      limit: { count: opts.keep ?? 10 },
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
    return new AuditLog(logger, stream, opts.dir);
  }

  record(entry: AuditEntry): void {
    this.logger.info(entry);
  }

  /** The records with `from <= time < to` (ISO strings or ms), oldest file first. */
  async *export(range: { from?: number; to?: number } = {}): AsyncGenerator<string> {
    // What was recorded so far is on disk before it is read back.
    await new Promise<void>((resolve) => this.stream.flush(() => resolve()));
    const files = (await readdir(this.dir))
      .filter((f) => f.startsWith(`${FILE}.`) && f.endsWith(EXTENSION))
      .sort((a, b) => fileNumber(a) - fileNumber(b));
    for (const file of files) {
      const lines = createInterface({ input: createReadStream(join(this.dir, file)) });
      for await (const line of lines) {
        const time = timeOf(line);
        if (time === undefined) continue;
        if (range.from !== undefined && time < range.from) continue;
        if (range.to !== undefined && time >= range.to) continue;
        yield line;
      }
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.stream.once('close', resolve);
      this.stream.end();
    });
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
