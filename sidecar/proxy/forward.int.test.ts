/**
 * The forward-proxy listener over real sockets: absolute-form requests of an app that set
 * `HTTP_PROXY`, hosts that are not services, CONNECT, and a fast-check run of random request
 * lines and headers on raw sockets (the sidecar never crashes, always answers a well-formed
 * status, and nothing malformed reaches the upstream).
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  call,
  instance,
  json,
  rawExchange,
  Routes,
  startProxy,
  startUpstream,
} from '../../test/helpers/proxy.js';
import type { Answer, ProxyRig, Upstream } from '../../test/helpers/proxy.js';

let up: Upstream;
let rig: ProxyRig;
let upstreamParseErrors = 0;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      res.end(
        JSON.stringify({
          url: req.url,
          host: req.headers.host,
          body: Buffer.concat(chunks).toString(),
        }),
      ),
    );
  });
  // Parse errors only: an aborted proxied request (the app went away) is a reset, not malformed.
  up.server.on('clientError', (err: NodeJS.ErrnoException) => {
    if (err.code?.startsWith('HPE_') === true) upstreamParseErrors++;
  });
  const routes = new Routes();
  routes.set('shop', 'orders', [instance('a', up.port)]);
  routes.set('billing', 'invoices', [instance('b', up.port)]);
  rig = await startProxy(routes);
});

afterAll(async () => {
  await rig.close();
  await up.close();
});

/** A request the way an HTTP_PROXY-aware client sends it: absolute form, to the proxy. */
function viaProxy(url: string, init: { method?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const host = new URL(url).host;
    const req = request(
      {
        host: '127.0.0.1',
        port: rig.forwardPort,
        path: url,
        method: init.method ?? 'GET',
        headers: { host },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            raw: res.rawHeaders,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('forward-proxy listener (HTTP_PROXY=http://127.0.0.1:7712)', () => {
  it('http://{service}.{namespace}/... reaches the service with path, query and body', async () => {
    const answer = await viaProxy('http://invoices.billing/pay/1?x=2', {
      method: 'POST',
      body: 'b',
    });
    expect(answer.status).toBe(200);
    expect(json(answer)).toEqual({ url: '/pay/1?x=2', host: 'invoices.billing', body: 'b' });
  });

  it('http://{service}/... is the pod’s namespace; a port in the URL is ignored', async () => {
    expect(json(await viaProxy('http://orders/a'))).toMatchObject({ url: '/a', host: 'orders' });
    expect(json(await viaProxy('http://orders.shop:8080/b'))).toMatchObject({
      url: '/b',
      host: 'orders.shop',
    });
  });

  it('origin form with a Host header works too (a client pointed straight at the proxy)', async () => {
    const answer = await call(rig.forwardPort, '/c', { headers: { host: 'orders.shop' } });
    expect(json(answer)).toMatchObject({ url: '/c', host: 'orders.shop' });
  });

  it.each([
    ['http://www.example.com/', 'www.example.com'],
    ['http://10.0.0.1/', '10.0.0.1'],
    ['http://payments/', 'payments'],
    ['http://orders.elsewhere/', 'orders.elsewhere'],
  ])('%s → 502 UNKNOWN_PROXY_HOST naming the host, never forwarded', async (url, host) => {
    const before = up.seen.length;
    const answer = await viaProxy(url);
    expect(answer.status).toBe(502);
    expect(json(answer).error.code).toBe('UNKNOWN_PROXY_HOST');
    expect(json(answer).error.message).toContain(`"${host}"`);
    expect(up.seen.length).toBe(before);
  });

  it('CONNECT is refused with 405 CONNECT_NOT_SUPPORTED', async () => {
    const raw = await rawExchange(
      rig.forwardPort,
      'CONNECT orders.shop:443 HTTP/1.1\r\nHost: orders.shop:443\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(raw).toContain('"CONNECT_NOT_SUPPORTED"');
  });

  it('a pipelined request that does not parse is answered after the one in flight, not inside it', async () => {
    const raw = await rawExchange(
      rig.forwardPort,
      'GET http://orders.shop/first HTTP/1.1\r\nHost: orders.shop\r\n\r\n\u0001BAD\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(raw).toContain('"url":"/first"');
    expect(raw.indexOf('HTTP/1.1 400')).toBeGreaterThan(raw.indexOf('"url":"/first"'));
  });

  it('https:// in absolute form is refused with 400 (tunnels are not proxied)', async () => {
    const answer = await call(rig.forwardPort, 'https://orders.shop/x', {
      headers: { host: 'orders.shop' },
    });
    expect(answer.status).toBe(400);
    expect(json(answer).error.code).toBe('PROXY_BAD_DESTINATION');
  });

  it('headers over maxHeaderSize → 431; TE with Content-Length → 400; nothing forwarded', async () => {
    const before = up.seen.length;
    const big = await rawExchange(
      rig.forwardPort,
      `GET http://orders.shop/ HTTP/1.1\r\nHost: orders.shop\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    const smuggle = await rawExchange(
      rig.forwardPort,
      'POST http://orders.shop/ HTTP/1.1\r\nHost: orders.shop\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://orders.shop/admin HTTP/1.1\r\nHost: orders.shop\r\n\r\n',
    );
    expect(smuggle).toMatch(/^HTTP\/1\.1 400 /);
    expect(smuggle).toContain('"AMBIGUOUS_MESSAGE_LENGTH"');
    expect(smuggle.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(up.seen.length).toBe(before);
  });
});

/** Sends raw bytes and resolves with what came back once a head is complete (or after 1 s). */
function exchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let got = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 1000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      got += chunk;
      if (got.includes('\r\n\r\n')) done();
    });
    socket.on('error', () => undefined);
    socket.on('close', done);
  });
}

const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

describe('property: random request lines and headers on raw sockets', () => {
  const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/);
  const junk = fc.string({ unit: 'binary-ascii', maxLength: 40 });
  const printable = fc.stringMatching(/^[!-~][ -~]{0,30}$/);
  const value = fc.oneof({ weight: 6, arbitrary: printable }, junk);
  const method = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE') },
    fc.constantFrom(
      'GET',
      'POST',
      'PUT',
      'DELETE',
      'PATCH',
      'HEAD',
      'OPTIONS',
      'CONNECT',
      'TRACE',
      'get',
    ),
    token,
    junk,
  );
  const target = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('http://orders.shop/a', 'http://orders/b?c=d') },
    fc.constantFrom(
      'http://orders.shop/',
      'http://orders/x?y=1',
      'http://invoices.billing/a/../b',
      'http://ORDERS.SHOP:1/',
      'http://orders.shop:99999/',
      'http://www.example.com/',
      'http://127.0.0.1:7711/v1/config',
      'https://orders.shop/',
      '/plain',
      '*',
      'orders.shop:443',
      'http://orders.shop/%00%0d%0a',
      'http://user:pw@orders.shop/',
    ),
    junk.map((s) => `http://orders.shop/${s}`),
    junk,
  );
  const version = fc.constantFrom(
    'HTTP/1.1',
    'HTTP/1.1',
    'HTTP/1.1',
    'HTTP/1.1',
    'HTTP/1.1',
    'HTTP/1.0',
    'HTTP/2.0',
    'HTTP/1.1x',
    '',
    'http/1.1',
  );
  const header = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(token, token) },
    fc.tuple(
      fc.constantFrom(
        'Host',
        'Content-Length',
        'Transfer-Encoding',
        'Connection',
        'Keep-Alive',
        'Upgrade',
        'TE',
        'Trailer',
        'Proxy-Authorization',
        'Proxy-Connection',
        'Expect',
        'X-Forwarded-For',
        'Cookie',
        'traceparent',
      ),
      fc.oneof(
        fc.constantFrom(
          'orders.shop',
          'chunked',
          'gzip, chunked',
          'chunked, gzip',
          '0',
          '5',
          '-1',
          '1e3',
          'close',
          'keep-alive, Host',
          'websocket',
          '100-continue',
          'x-internal',
        ),
        value,
      ),
    ),
    fc.tuple(token, value),
    fc.tuple(junk, junk),
  );
  const body = fc.constantFrom('', 'hello', '5\r\nhello\r\n0\r\n\r\n', '0\r\n\r\n', 'zz\r\n\r\n');

  it('never crashes, always answers a well-formed status, forwards nothing malformed', async () => {
    const seenBefore = up.seen.length;
    await fc.assert(
      fc.asyncProperty(
        method,
        target,
        version,
        fc.array(header, { maxLength: 6 }),
        body,
        fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
        async (m, t, v, hs, b, hostless) => {
          // Mostly with a Host header (node refuses HTTP/1.1 without one), sometimes without.
          const host = hostless ? '' : 'Host: orders.shop\r\n';
          const head = `${m} ${t} ${v}\r\n${host}${hs.map(([n, val]) => `${n}: ${val}\r\n`).join('')}\r\n`;
          const answer = await exchange(
            rig.forwardPort,
            Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(b)]),
          );
          // Either a complete, well-formed status line, or (a request still incomplete, e.g. a
          // Content-Length longer than the bytes sent) no answer yet — never garbage.
          if (answer !== '') expect(answer).toMatch(/^HTTP\/1\.[01] [1-5]\d\d [^\r\n]*\r\n/);
        },
      ),
      { numRuns: 300 },
    );
    // The listener still serves a normal call afterwards.
    expect(json(await viaProxy('http://orders.shop/after'))).toMatchObject({ url: '/after' });
    expect(upstreamParseErrors).toBe(0);
    for (const seen of up.seen.slice(seenBefore)) {
      expect(seen.url.startsWith('/')).toBe(true);
      expect(['orders.shop', 'orders', 'invoices.billing']).toContain(seen.headers.host);
      const names = seen.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      expect(names.filter((n) => n === 'content-length').length).toBeLessThanOrEqual(1);
      expect(names.includes('content-length') && names.includes('transfer-encoding')).toBe(false);
      for (const hop of HOP_BY_HOP.filter((h) => h !== 'connection' && h !== 'transfer-encoding')) {
        expect(names).not.toContain(hop);
      }
    }
  });
});
