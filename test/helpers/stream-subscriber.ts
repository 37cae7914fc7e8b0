/**
 * An event-stream subscriber for resume tests: the epoch its handshake named and every message,
 * parsed and as sent (a replay must be byte for byte what was sent before).
 */
import type { ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import { STREAM_EPOCH_HEADER } from '../../common/wire.js';

export interface Wire {
  seq: number;
  type: string;
  [key: string]: unknown;
}

/** A subscriber: the epoch of its handshake and every message, as parsed and as sent. */
export async function subscribe(sockets: WebSocket[], base: string, query = '') {
  const url = `${base.replace('http', 'ws')}/api/v1/events?types=service_registered${query}`;
  const ws = new WebSocket(url);
  sockets.push(ws);
  const messages: { parsed: Wire; raw: string }[] = [];
  ws.on('message', (data: Buffer) => {
    const raw = data.toString();
    messages.push({ parsed: JSON.parse(raw) as Wire, raw });
  });
  const epoch = await new Promise<string>((resolve, reject) => {
    ws.once('upgrade', (res) => resolve(String(res.headers[STREAM_EPOCH_HEADER])));
    ws.once('error', reject);
  });
  await new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.OPEN) resolve();
    else ws.once('open', () => resolve());
  });
  return { ws, epoch, messages };
}

export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function exited(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
}
