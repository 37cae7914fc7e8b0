/** Starts a real operator (in-process, real sockets on port 0) over a temporary resource folder. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { configSchema } from '../../operator/config.js';
import type { OperatorConfig } from '../../operator/config.js';
import { createOperator } from '../../operator/operator.js';
import { loadKubeParts } from '../../operator/kube/load-parts.js';
import type { Operator } from '../../operator/operator.js';
import type { Clock } from '../../operator/registry/clock.js';
import { createLogger } from '../../common/logger.js';
import type { MaxineEvent } from '../../common/wire.js';

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export interface TestOperator {
  url: string;
  wsUrl: string;
  dir: string;
  operator: Operator;
  logs: LogLine[];
  write(file: string, text: string): Promise<void>;
  stop(): Promise<void>;
}

/** A stream pino can write to, and the log lines written to it, parsed. */
export function logSink(): { sink: Writable; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { sink, logs };
}

export async function startOperator(
  options: { files?: Record<string, string>; config?: Partial<OperatorConfig>; clock?: Clock } = {},
): Promise<TestOperator> {
  const dir = await mkdtemp(join(tmpdir(), 'maxine-test-'));
  for (const [file, text] of Object.entries(options.files ?? {}))
    await writeFile(join(dir, file), text);
  const { sink, logs } = logSink();
  const config = configSchema.parse({
    port: 0,
    resources: dir,
    logLevel: 'debug',
    ...options.config,
  });
  if (config.mode === 'kubernetes') await loadKubeParts();
  const operator = createOperator(config, createLogger('debug', sink), options.clock);
  const address = await operator.start();
  return {
    url: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}`,
    dir,
    operator,
    logs,
    write: (file, text) => writeFile(join(dir, file), text),
    async stop() {
      await operator.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text === '' ? undefined : JSON.parse(text),
    headers: res.headers,
  };
}

/** A WebSocket subscriber that collects events and can wait for a condition. */
export class EventClient {
  readonly events: MaxineEvent[] = [];
  private waiters: (() => void)[] = [];
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.events.push(JSON.parse(data.toString()) as MaxineEvent);
      for (const w of this.waiters) w();
    });
  }

  static async connect(url: string): Promise<EventClient> {
    const ws = new WebSocket(url);
    const client = new EventClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Resolves with the events once `predicate` holds, or rejects after `ms`. */
  async until(predicate: (events: MaxineEvent[]) => boolean, ms = 3000): Promise<MaxineEvent[]> {
    if (predicate(this.events)) return this.events;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out; got ${JSON.stringify(this.events.map((e) => e.type))}`)),
        ms,
      );
      const check = (): void => {
        if (predicate(this.events)) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve(this.events);
        }
      };
      this.waiters.push(check);
    });
  }

  types(): string[] {
    return this.events.map((e) => e.type);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** Polls `fn` until it returns a truthy value, or fails after `ms` naming `what` waited for. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  ms = 2000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
