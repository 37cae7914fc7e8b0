/**
 * A TCP port whose SYNs go unanswered, deterministically and on loopback: a child process
 * listens with a backlog of 1 and then blocks its event loop before it could accept, and the
 * accept queue is filled with held connections; the kernel drops every later SYN, so a
 * connect to the port hangs (as to a blackholed address) until the caller gives up.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Socket } from 'node:net';

export interface Blackhole {
  readonly port: number;
  close(): void;
}

const NEVER_ACCEPTS = `
const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n', () =>
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0),
  );
});`;

export async function startBlackhole(): Promise<Blackhole> {
  const child = spawn(process.execPath, ['-e', NEVER_ACCEPTS], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  const held: Socket[] = [];
  const close = (): void => {
    for (const s of held) s.destroy();
    child.kill('SIGKILL');
  };
  for (let i = 0; i < 16; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    held.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 300);
    });
    if (!connected) return { port, close };
  }
  close();
  throw new Error('the accept queue never filled: connects to the port do not hang');
}
