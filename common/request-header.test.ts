import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { headerOf } from './request-header.js';

const NAMES = [
  'authorization',
  'x-maxine-source',
  'x-maxine-kubernetes-authorization',
  'host',
  'user-agent',
  'x-request-id',
  'absent',
];

/** What `req.headers` says for each name, and what headerOf says, for each request received. */
let seen: { node: (string | undefined)[]; ours: (string | undefined)[] }[] = [];
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const ours = NAMES.map((n) => headerOf(req, n)); // before req.headers is ever built
    const node = NAMES.map((n) => {
      const v = req.headers[n];
      return Array.isArray(v) ? v.join(', ') : v;
    });
    seen.push({ node, ours });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** Sends one raw request (header lines as given) and waits for the answer. */
function send(lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET / HTTP/1.1\r\n${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', () => undefined);
    socket.on('end', () => resolve());
    socket.on('error', reject);
  });
}

describe('headerOf: a header from rawHeaders, as req.headers has it', () => {
  it.each([
    ['one of each', ['Host: a', 'Authorization: Bearer t1', 'X-Maxine-Source: ns/client']],
    [
      'repeated: authorization keeps the first, others are joined with ", "',
      [
        'Host: a',
        'authorization: Bearer first',
        'AUTHORIZATION: Bearer second',
        'x-maxine-source: ns/one',
        'X-MAXINE-SOURCE: ns/two',
        'x-maxine-kubernetes-authorization: Bearer k1',
        'X-Maxine-Kubernetes-Authorization: Bearer k2',
        'User-Agent: u1',
        'user-agent: u2',
        'X-Request-Id: r1',
        'x-request-id: r2',
      ],
    ],
    ['mixed case, empty values', ['HoSt: a', 'aUtHoRiZaTiOn:', 'x-maxine-source: ']],
    ['none of them but host', ['Host: a']],
  ])('%s', async (_what, lines) => {
    seen = [];
    await send(lines);
    expect(seen).toHaveLength(1);
    const [only] = seen;
    expect(only?.ours).toEqual(only?.node);
  });

  it('reads a stand-in without rawHeaders from its headers', () => {
    expect(headerOf({ headers: { authorization: 'Bearer x' } }, 'authorization')).toBe('Bearer x');
    expect(headerOf({ headers: { 'x-a': ['1', '2'] } }, 'x-a')).toBe('1, 2');
    expect(headerOf({ headers: {} }, 'x-a')).toBeUndefined();
  });

  it('takes the first of repeated authorization headers and joins repeated others', () => {
    const req = {
      headers: {},
      rawHeaders: [
        'Authorization',
        'Bearer a',
        'authorization',
        'Bearer b',
        'X-A',
        '1',
        'x-a',
        '2',
      ],
    };
    expect(headerOf(req, 'authorization')).toBe('Bearer a');
    expect(headerOf(req, 'x-a')).toBe('1, 2');
  });
});
