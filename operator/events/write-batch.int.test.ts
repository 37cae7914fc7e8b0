/**
 * WriteBatch over real TCP sockets: the writes a turn of the event loop makes to a held socket
 * leave in one write call at the end of that turn, complete and in order; a socket ended or
 * destroyed while held is no trouble.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { createServer, Socket } from 'node:net';
import type { Server } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { Registry as PromRegistry } from 'prom-client';
import { WriteBatch } from './write-batch.js';

/** The two methods a net.Socket writes through (one call per write syscall batch). */
const socketWrites = Socket.prototype as unknown as {
  _writev: (...args: unknown[]) => void;
  _write: (...args: unknown[]) => void;
};

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  jest.restoreAllMocks();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(
    servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))),
  );
});

/** A connected pair: the server's side (written to) and what the client side received. */
async function pair(): Promise<{ side: Socket; received: () => string; ended: Promise<void> }> {
  let server: Server | undefined;
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer(resolve);
  });
  if (server === undefined) throw new Error('no server');
  servers.push(server);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const client = new Socket();
  sockets.push(client);
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  client.connect(port, '127.0.0.1');
  const side = await accepted;
  sockets.push(side);
  return { side, received: () => Buffer.concat(chunks).toString('utf8'), ended };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

describe('WriteBatch', () => {
  it('sends the writes of one turn to a held socket in one write call, in order, at the end of the turn', async () => {
    const { side, received } = await pair();
    const writev = jest.spyOn(socketWrites, '_writev');
    const write = jest.spyOn(socketWrites, '_write');
    const prom = new PromRegistry();
    const batch = new WriteBatch(prom);
    const messages = Array.from({ length: 20 }, (_, i) => `message ${i};`);
    for (const m of messages) {
      batch.hold(side); // every send holds it; only the first corks
      side.write(Buffer.from(m));
    }
    expect(side.writableCorked).toBe(1);
    expect(batch.size).toBe(1);
    expect(writev.mock.calls.length + write.mock.calls.length).toBe(0); // nothing left yet
    await turn();
    expect(side.writableCorked).toBe(0);
    expect(writev.mock.calls.length + write.mock.calls.length).toBe(1);
    expect(batch.stats).toEqual({ flushes: 1, sockets: 1 });
    await until(() => received() === messages.join(''));
    // The next turn holds again.
    batch.hold(side);
    side.write('more');
    await turn();
    await until(() => received().endsWith('more'));
    expect(batch.stats).toEqual({ flushes: 2, sockets: 2 });
    const metrics = await prom.metrics();
    expect(metrics).toMatch(/^maxine_event_fanout_turns_total 2$/m);
    expect(metrics).toMatch(/^maxine_event_fanout_socket_writes_total 2$/m);
  });

  it('without it, each write leaves on its own (what the batch saves)', async () => {
    const { side, received } = await pair();
    const writev = jest.spyOn(socketWrites, '_writev');
    const write = jest.spyOn(socketWrites, '_write');
    for (let i = 0; i < 5; i++) side.write(`m${i}`);
    await until(() => received() === 'm0m1m2m3m4');
    // The first goes out at once; the others queue behind it and leave once it is done.
    expect(writev.mock.calls.length + write.mock.calls.length).toBeGreaterThanOrEqual(2);
  });

  it('writes a held socket out within the turn each time it holds the flush size, so a huge turn holds little', async () => {
    const { side, received } = await pair();
    const writev = jest.spyOn(socketWrites, '_writev');
    const write = jest.spyOn(socketWrites, '_write');
    const batch = new WriteBatch(undefined, 4096);
    const chunk = 'x'.repeat(1000);
    let most = 0;
    for (let i = 0; i < 40; i++) {
      batch.hold(side);
      side.write(`${i}:${chunk};`);
      most = Math.max(most, side.writableLength);
    }
    // Written out during the turn, never holding much more than the flush size.
    expect(writev.mock.calls.length + write.mock.calls.length).toBeGreaterThanOrEqual(5);
    expect(most).toBeLessThan(4096 + 2 * 1010);
    await turn();
    const expected = Array.from({ length: 40 }, (_, i) => `${i}:${chunk};`).join('');
    await until(() => received().length === expected.length);
    expect(received()).toBe(expected);
  });

  it('flushes a socket ended while held, and ignores one destroyed while held', async () => {
    const a = await pair();
    const batch = new WriteBatch();
    batch.hold(a.side);
    a.side.write('last words');
    a.side.end(); // end uncorks by itself
    await a.ended;
    expect(a.received()).toBe('last words');
    const b = await pair();
    batch.hold(b.side);
    b.side.write('lost');
    b.side.destroy();
    batch.hold(b.side); // a destroyed socket is not held again
    await turn();
    expect(batch.size).toBe(0);
    await turn(); // the flush of a gone socket threw nothing
  });
});
