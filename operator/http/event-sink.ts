/**
 * Where an event stream's messages go: a WebSocket, or the response of a Server-Sent Events
 * GET (operator/http/event-stream.ts runs the stream; these only write, frame and measure).
 */
import type { ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import { sseEventId } from '../../common/wire.js';

/** Whether a GET asks for Server-Sent Events (`Accept: text/event-stream`). */
export function wantsEventStream(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept
    .split(',')
    .some((range) => range.split(';')[0]?.trim().toLowerCase() === 'text/event-stream');
}

export type Transport = 'websocket' | 'sse';

/** What a message is, for the transports that frame it (SSE's `event:` and `id:`). */
export interface Framing {
  type: string;
  /** The seq to name in `id:`; none for messages a client cannot resume from (mid-snapshot). */
  id?: number;
}

export type Payload = string | Buffer;

/** Where a stream's messages go: a WebSocket, or the response of a Server-Sent Events GET. */
export interface Sink {
  readonly transport: Transport;
  /** Whether messages can still be written. */
  readonly open: boolean;
  /** Bytes queued in this process, not yet taken by the kernel. */
  readonly buffered: number;
  /** Sends one message: its JSON text, or the UTF-8 bytes of it (the same for every subscriber). */
  send(json: Payload, framing: Framing): void;
  /** Sends, and calls `done` once the connection took the message (with an error if not). */
  write(json: Payload, framing: Framing, done: (err?: Error | null) => void): void;
  close(code: number, reason: string): void;
  terminate(): void;
  /** Keeps an idle connection open (SSE: a comment line; a WebSocket is pinged apart). */
  heartbeat(): void;
}

const TEXT = { binary: false } as const;

export function webSocketSink(ws: WebSocket): Sink {
  return {
    transport: 'websocket',
    get open() {
      return ws.readyState === ws.OPEN;
    },
    get buffered() {
      return ws.bufferedAmount;
    },
    // Shared bytes go out as a text frame too: they are the UTF-8 of the JSON.
    send: (json) => ws.send(json, TEXT),
    write: (json, _framing, done) => ws.send(json, TEXT, done),
    close(code, reason) {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
    },
    terminate: () => ws.terminate(),
    heartbeat: () => undefined,
  };
}

/**
 * Server-Sent Events: `id: EPOCH:SEQ`, `event: TYPE`, `data: JSON` (the JSON of an envelope
 * never holds a line break). A close writes its code and reason as a comment line, then ends
 * the response; the connection goes with it (`Connection: close`).
 */
const DOUBLE_NEWLINE = Buffer.from('\n\n');

export function sseSink(res: ServerResponse, epoch: () => string): Sink {
  let ended = false;
  const head = (f: Framing): string =>
    `${f.id === undefined ? '' : `id: ${sseEventId(epoch(), f.id)}\n`}event: ${f.type}\ndata: `;
  /** One message as one write: a text frame, or the shared bytes between head and tail. */
  const frame = (json: Payload, f: Framing): Payload =>
    typeof json === 'string'
      ? `${head(f)}${json}\n\n`
      : Buffer.concat([Buffer.from(head(f)), json, DOUBLE_NEWLINE]);
  return {
    transport: 'sse',
    get open() {
      return !ended && !res.destroyed && res.writable;
    },
    get buffered() {
      return res.writableLength;
    },
    send(json, framing) {
      res.write(frame(json, framing));
    },
    write(json, framing, done) {
      res.write(frame(json, framing), done);
    },
    close(code, reason) {
      if (ended || res.destroyed) return;
      ended = true;
      res.end(`: closed ${code} ${reason}\n\n`);
    },
    terminate: () => res.destroy(),
    heartbeat() {
      if (!ended) res.write(': ping\n\n');
    },
  };
}
