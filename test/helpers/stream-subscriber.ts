/**
 * An event-stream subscriber for resume tests: the epoch its handshake named and every message,
 * parsed and as sent (a replay must be byte for byte what was sent before).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from '@jest/globals';
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

/**
 * The fixture of a test file that runs operator processes on a kept store: the children and
 * sockets its tests start (killed and closed after each test), and a temp `root` (removed after
 * the file) holding the `resources` folder the operators read.
 */
export function operatorProcesses(prefix: string): {
  children: ChildProcess[];
  sockets: WebSocket[];
  root: string;
  resources: string;
} {
  const children: ChildProcess[] = [];
  const sockets: WebSocket[] = [];
  afterEach(() => {
    for (const ws of sockets.splice(0)) ws.terminate();
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });
  const root = mkdtempSync(join(tmpdir(), prefix));
  const resources = join(root, 'resources');
  mkdirSync(resources);
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  return { children, sockets, root, resources };
}
