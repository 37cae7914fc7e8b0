/**
 * The fan-out hot path over a real operator and real sockets: the events made in one turn of
 * the event loop reach a subscriber's socket in one write (not a write syscall per event),
 * as text frames carrying each event's JSON, complete and in order; an event made in a later
 * turn is not held back by the batch before it.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { Socket } from 'node:net';
import WebSocket from 'ws';
import { registerRequestSchema } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import { startOperator } from '../../test/helpers/operator.js';
import type { TestOperator } from '../../test/helpers/operator.js';

/** The two methods a net.Socket writes through (one call per write syscall batch). */
const socketWrites = Socket.prototype as unknown as {
  _writev: (...args: unknown[]) => void;
  _write: (...args: unknown[]) => void;
};

let op: TestOperator | undefined;
afterEach(async () => {
  jest.restoreAllMocks();
  await op?.stop();
  op = undefined;
});

interface Received {
  event: MaxineEvent;
  binary: boolean;
  raw: string;
}

async function subscribe(url: string): Promise<{ ws: WebSocket; got: Received[] }> {
  const ws = new WebSocket(url);
  const got: Received[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => {
    const raw = data.toString('utf8');
    got.push({ event: JSON.parse(raw) as MaxineEvent, binary, raw });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, got };
}

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

describe('event fan-out', () => {
  it('sends the events of one turn to a subscriber in one socket write, as text frames of their JSON, in order', async () => {
    op = await startOperator();
    const port = Number(new URL(op.url).port);
    const { ws, got } = await subscribe(`${op.wsUrl}/api/v1/events?services=shop/orders`);
    const writev = jest.spyOn(socketWrites, '_writev');
    const write = jest.spyOn(socketWrites, '_write');
    /** Write calls of the operator's side of a connection (its local port is the operator's). */
    const serverWrites = (): number =>
      [...writev.mock.contexts, ...write.mock.contexts].filter(
        (s) => (s as Socket).localPort === port,
      ).length;
    const registry = op.operator.registry;
    const made: MaxineEvent[] = [];
    const unsubscribe = op.operator.events.subscribe((e) => made.push(e));
    // A burst made in one turn: twenty registrations (and one of another service, not wanted).
    for (let i = 0; i < 20; i++) {
      registry.register(
        registerRequestSchema.parse({
          namespace: 'shop',
          service: 'orders',
          host: `10.0.0.${i + 1}`,
          port: 8080,
          metadata: { note: 'zürich' }, // not ASCII: bytes, not characters, go out
        }),
      );
    }
    registry.register(
      registerRequestSchema.parse({
        namespace: 'shop',
        service: 'other',
        host: '10.9.9.9',
        port: 1,
      }),
    );
    unsubscribe();
    // The twenty registrations, after the event that made the undeclared service.
    const wanted = made.filter((e) => e.service?.name === 'orders');
    expect(wanted.map((e) => e.type)).toEqual([
      'service_updated',
      ...Array<string>(20).fill('service_registered'),
    ]);
    await until(() => got.length >= wanted.length);
    expect(got.map((g) => g.event)).toEqual(wanted);
    expect(got.map((g) => g.raw)).toEqual(wanted.map((e) => JSON.stringify(e)));
    expect(got.every((g) => !g.binary)).toBe(true);
    expect(serverWrites()).toBe(1); // one write for the 21 frames, not 21
    // An event of a later turn goes out in that turn, on its own.
    registry.register(
      registerRequestSchema.parse({
        namespace: 'shop',
        service: 'orders',
        host: '10.0.1.1',
        port: 1,
      }),
    );
    await until(() => got.length === wanted.length + 1);
    expect(got.at(-1)?.event.instance?.host).toBe('10.0.1.1');
    expect(serverWrites()).toBe(2);
    ws.close();
  });
});
