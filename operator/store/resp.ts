/**
 * Just enough of the Redis protocol (RESP2) for the redis store: commands as arrays of bulk
 * strings, pipelined on one connection, replies matched in order, each with a timeout. The
 * parser is pure and table-tested; the connection is the I/O edge.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';

export type Reply = string | number | null | RespError | Reply[];

/** An error reply (`-ERR ...`). */
export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespError';
  }
}

export function encodeCommand(args: readonly string[]): Buffer {
  let out = `*${args.length}\r\n`;
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return Buffer.from(out);
}

/** Turns the bytes of a connection into replies, across chunk boundaries. */
export class RespParser {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Reply[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: Reply[] = [];
    for (;;) {
      const parsed = parseReply(this.buffer, 0);
      if (parsed === undefined) break;
      out.push(parsed.reply);
      this.buffer = this.buffer.subarray(parsed.end);
    }
    return out;
  }
}

/** One reply starting at `at`, and where it ends; undefined when it is not all there yet. */
function parseReply(buf: Buffer, at: number): { reply: Reply; end: number } | undefined {
  const lineEnd = buf.indexOf('\r\n', at);
  if (lineEnd === -1) return undefined;
  const type = String.fromCharCode(buf[at] ?? 0);
  const line = buf.toString('utf8', at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { reply: line, end: next };
    case '-':
      return { reply: new RespError(line), end: next };
    case ':':
      return { reply: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { reply: null, end: next };
      if (buf.length < next + length + 2) return undefined;
      return { reply: buf.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { reply: null, end: next };
      const items: Reply[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, end);
        if (item === undefined) return undefined;
        items.push(item.reply);
        end = item.end;
      }
      return { reply: items, end };
    }
    default:
      throw new RespError(`unexpected reply type ${JSON.stringify(type)}`);
  }
}

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One connection to Redis, opened on first use and again after it was lost. A command that
 * gets no reply within `timeoutMs` fails, and the connection is dropped (a stopped server
 * must not hold writes forever).
 */
export class RedisConnection {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private readonly pending: Pending[] = [];
  private parser = new RespParser();

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly timeoutMs: number,
  ) {}

  /** Sends one command; resolves with its reply, rejects on an error reply or a lost connection. */
  async command(args: readonly string[]): Promise<Reply> {
    const socket = await this.open();
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(
        () => this.drop(new Error(`no reply from Redis within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      this.pending.push({ resolve, reject, timer });
      socket.write(encodeCommand(args));
    }).then((reply) => {
      if (reply instanceof RespError) throw reply;
      return reply;
    });
  }

  close(): void {
    this.drop(new Error('connection closed'));
  }

  private open(): Promise<Socket> {
    if (this.socket !== undefined) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`cannot connect to Redis at ${this.host}:${this.port}: timed out`));
      }, this.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        this.socket = socket;
        this.parser = new RespParser();
        socket.on('data', (chunk: Buffer) => this.receive(chunk));
        socket.on('error', (err) => this.drop(new Error(`connection to Redis: ${err.message}`)));
        socket.on('close', () => this.drop(new Error('connection to Redis lost')));
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to Redis at ${this.host}:${this.port}: ${err.message}`));
      });
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private receive(chunk: Buffer): void {
    let replies: Reply[];
    try {
      replies = this.parser.push(chunk);
    } catch (err) {
      this.drop(err as Error);
      return;
    }
    for (const reply of replies) {
      const waiting = this.pending.shift();
      if (waiting === undefined) continue;
      clearTimeout(waiting.timer);
      waiting.resolve(reply);
    }
  }

  /** Fails every command in flight and forgets the socket (the next command reconnects). */
  private drop(err: Error): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.removeAllListeners('close');
    socket?.destroy();
    for (const waiting of this.pending.splice(0)) {
      clearTimeout(waiting.timer);
      waiting.reject(err);
    }
  }
}
