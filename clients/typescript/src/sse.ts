/**
 * A Server-Sent Events parser (the WHATWG event-stream format) as a pure, incremental state
 * machine: text in, messages and comments out. Bounded: a message (or a line) larger than
 * `maxMessageChars` is refused with BUFFER_FULL instead of growing without end.
 */
import { ClientError } from '../../../common/client.js';

export interface SseMessage {
  /** `id:`; undefined when the message carried none (the last id stays what it was). */
  id: string | undefined;
  /** `event:`; `message` when absent. */
  event: string;
  data: string;
}

export type SseItem = { kind: 'message'; message: SseMessage } | { kind: 'comment'; text: string };

/** The operator's snapshot chunks are 64 KiB by default; one large instance may exceed that. */
export const DEFAULT_MAX_MESSAGE_CHARS = 8 * 1024 * 1024;

export class SseParser {
  private partial = '';
  private data: string[] = [];
  private dataChars = 0;
  private id: string | undefined;
  private event = '';
  /** A `\r` ended the last chunk: a `\n` starting the next one belongs to it. */
  private pendingCr = false;

  constructor(private readonly maxMessageChars = DEFAULT_MAX_MESSAGE_CHARS) {}

  /** Feeds decoded text; returns the messages and comments it completed, in order. */
  push(text: string): SseItem[] {
    let chunk = text;
    if (this.pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.pendingCr = false;
    const out: SseItem[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.partial + chunk.slice(start, i), out);
      this.partial = '';
      if (c === 13) {
        if (i + 1 < chunk.length && chunk.charCodeAt(i + 1) === 10) i++;
        else if (i + 1 === chunk.length) this.pendingCr = true;
      }
      start = i + 1;
    }
    this.partial += chunk.slice(start);
    if (this.partial.length + this.dataChars > this.maxMessageChars) throw this.tooLarge();
    return out;
  }

  private line(line: string, out: SseItem[]): void {
    if (line === '') {
      this.dispatch(out);
      return;
    }
    if (line.startsWith(':')) {
      out.push({ kind: 'comment', text: line.slice(1).trimStart() });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.dataChars += value.length + 1;
      if (this.dataChars > this.maxMessageChars) throw this.tooLarge();
      this.data.push(value);
    } else if (field === 'id') {
      if (!value.includes('\0')) this.id = value;
    } else if (field === 'event') this.event = value;
    // `retry:` and unknown fields: ignored (the client's back-off decides reconnects).
  }

  private dispatch(out: SseItem[]): void {
    const id = this.id;
    this.id = undefined;
    const event = this.event === '' ? 'message' : this.event;
    this.event = '';
    if (this.data.length === 0) return;
    const data = this.data.join('\n');
    this.data = [];
    this.dataChars = 0;
    out.push({ kind: 'message', message: { id, event, data } });
  }

  private tooLarge(): ClientError {
    this.partial = '';
    this.data = [];
    this.dataChars = 0;
    return new ClientError(
      0,
      'BUFFER_FULL',
      `an event-stream message is larger than ${this.maxMessageChars} characters`,
    );
  }
}

/** The close the operator announces in a comment before it ends a stream (`closed 4401 …`). */
export function closeOfComment(text: string): { code: number; reason: string } | undefined {
  const match = /^closed (\d{4}) ?(.*)$/.exec(text);
  return match === null ? undefined : { code: Number(match[1]), reason: match[2] ?? '' };
}
