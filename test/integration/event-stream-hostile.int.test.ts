/**
 * Event-stream subscribers that send the server what it never asked for, on real sockets:
 * oversized frames, invalid UTF-8, fragment floods, message and ping floods, bytes that are not
 * WebSocket frames at all, and a ping flood from a client that never reads. Each is closed with
 * a clear code, a log line and a count (operator/http/subscriber-input.ts); a well-behaved
 * subscriber on the same operator keeps receiving events throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let probes = 0;
let good: { ws: WebSocket; messages: string[] };
const opened: (WebSocket | Socket)[] = [];

beforeAll(async () => {
  op = await startOperator();
  good = await subscribe();
});
afterAll(async () => {
  for (const c of opened) {
    if (c instanceof WebSocket) c.terminate();
    else c.destroy();
  }
  await op.stop();
});

async function subscribe(): Promise<{ ws: WebSocket; messages: string[] }> {
  const ws = new WebSocket(`${op.wsUrl}/api/v1/events`);
  opened.push(ws);
  const messages: string[] = [];
  ws.on('message', (d: Buffer) => messages.push(d.toString()));
  ws.on('error', () => undefined);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, messages };
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

async function metric(line: string): Promise<number> {
  const text = await (await fetch(`${op.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found === undefined ? NaN : Number(found.slice(line.length + 1));
}

const refusedMetric = (reason: string) =>
  `maxine_event_stream_refused_input_total{reason="${reason}"}`;

/** The good subscriber still gets what happens in the registry. */
async function goodStillServed(host: string): Promise<void> {
  expect(good.ws.readyState).toBe(WebSocket.OPEN);
  const r = await api(op.url, 'POST', '/api/v1/instances', { service: 'probe', host, port: 1 });
  expect(r.status).toBe(201);
  await eventually(
    () => Promise.resolve(good.messages.some((m) => m.includes(`"host":"${host}"`))),
    5000,
    `the good subscriber's event for ${host}`,
  );
}

/** A client-to-server frame (masked with a zero key, as RFC 6455 allows). */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len])
      : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 255]);
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

/** A raw socket past the handshake; `read` false: it never reads a byte again. */
function rawStream(read: boolean): Promise<{ socket: Socket; received: () => Buffer }> {
  const port = Number(new URL(op.url).port);
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        'GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${Buffer.from('0123456789abcdef').toString('base64')}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    opened.push(socket);
    socket.on('error', () => undefined);
    socket.once('data', (d: Buffer) => {
      if (!d.toString().startsWith('HTTP/1.1 101')) return reject(new Error(d.toString()));
      if (!read) socket.pause();
      else socket.on('data', (more: Buffer) => (got = Buffer.concat([got, more])));
      resolve({ socket, received: () => got });
    });
  });
}

describe('a subscriber that sends garbage is closed with a clear code; the others are unaffected', () => {
  it.each<[string, (ws: WebSocket) => void, number, string]>([
    ['an oversized text message: 1009', (ws) => ws.send('x'.repeat(8192)), 1009, 'too_large'],
    [
      'an oversized binary message: 1009',
      (ws) => ws.send(Buffer.alloc(64 * 1024)),
      1009,
      'too_large',
    ],
    [
      'a fragmented message past the bound: 1009',
      (ws) => {
        for (let i = 0; i < 10; i++) ws.send('y'.repeat(1000), { fin: false });
      },
      1009,
      'too_large',
    ],
    [
      'invalid UTF-8 in a text message: 1007',
      (ws) => ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false }),
      1007,
      'invalid_utf8',
    ],
    [
      'a flood of empty fragments: 1008',
      (ws) => {
        for (let i = 0; i < 20_000; i++) ws.send('', { fin: false });
      },
      1008,
      'flood',
    ],
    [
      'a flood of small text messages: 1008',
      (ws) => {
        for (let i = 0; i < 1000; i++) ws.send('{"subscribe":"*"}');
      },
      1008,
      'flood',
    ],
    [
      'a flood of binary messages: 1008',
      (ws) => {
        for (let i = 0; i < 1000; i++) ws.send(Buffer.from([i & 255]));
      },
      1008,
      'flood',
    ],
    [
      'a flood of pings: 1008',
      (ws) => {
        for (let i = 0; i < 1000; i++) ws.ping('p');
      },
      1008,
      'flood',
    ],
    [
      'a flood of unsolicited pongs: 1008',
      (ws) => {
        for (let i = 0; i < 1000; i++) ws.pong();
      },
      1008,
      'flood',
    ],
  ])('%s', async (_name, attack, code, reason) => {
    const before = await metric(refusedMetric(reason));
    const logsBefore = op.logs.length;
    const { ws } = await subscribe();
    const closed = closeOf(ws);
    attack(ws);
    expect((await closed).code).toBe(code);
    await eventually(
      async () => (await metric(refusedMetric(reason))) === before + 1,
      5000,
      `${reason} counted`,
    );
    const line = op.logs
      .slice(logsBefore)
      .find((l) => l.level === 'warn' && String(l.msg).startsWith('event subscriber sent'));
    expect(line).toMatchObject({ who: expect.any(String), closeCode: code });
    await goodStillServed(`10.78.${code - 1000}.${++probes}`);
  });

  it('a well-behaved keep-alive (a text message now and then, pings, pongs) stays open', async () => {
    const { ws } = await subscribe();
    for (let i = 0; i < 20; i++) {
      ws.send('keepalive');
      ws.ping();
      await new Promise((r) => setTimeout(r, 10));
    }
    await goodStillServed('10.77.0.1');
    expect(ws.readyState).toBe(WebSocket.OPEN);
    const closed = closeOf(ws);
    ws.close();
    await closed;
  });

  it('bytes that are not WebSocket frames close the stream with 1002 (protocol error)', async () => {
    const before = await metric(refusedMetric('protocol_error'));
    const { socket, received } = await rawStream(true);
    // HTTP text, read as a frame: reserved bits set, unmasked: not a client frame.
    socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await eventually(() => Promise.resolve(received().length >= 4), 5000, 'a close frame');
    // The close frame: opcode 8, then the 2-byte code.
    expect(received()[0]).toBe(0x88);
    expect(received().readUInt16BE(2)).toBe(1002);
    await eventually(
      async () => (await metric(refusedMetric('protocol_error'))) === before + 1,
      5000,
      'protocol_error counted',
    );
    socket.destroy();
    await goodStillServed('10.77.2.2');
  });

  it('a client that floods pings and never reads is closed with 1008 and cut', async () => {
    const before = await metric(refusedMetric('flood'));
    const { socket } = await rawStream(false);
    const ping = frame(0x9, Buffer.alloc(125, 1));
    for (let i = 0; i < 5000; i++) socket.write(ping);
    await eventually(
      async () => (await metric(refusedMetric('flood'))) === before + 1,
      5000,
      'the ping flood counted',
    );
    // Cut: only the good subscriber remains.
    await eventually(
      async () => (await metric('maxine_event_stream_connections')) === 1,
      5000,
      'the flooder gone',
    );
    await goodStillServed('10.77.3.3');
  });
});
