/**
 * What every request meets first, over raw sockets: absolute-form targets are served like
 * origin-form, paths are case-sensitive (404, not 405), an `Upgrade: h2c` is ignored and the
 * request served as HTTP/1.1, slow headers and bodies get the catalog's 408, unknown query
 * parameters (`__proto__` too) are 400, the per-address limit answers 429 before
 * authentication, and `/metrics` asks for a principal when `--metrics-auth` is on.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { writeTokens, lockedDown } from '../helpers/auth.js';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** ms from the first byte sent to the socket's close (or the wait's end). */
  ms: number;
}

/** Writes `text` on a fresh connection (in `parts`, `gapMs` apart) and reads until close. */
function raw(
  port: number,
  parts: string | readonly string[],
  opts: { gapMs?: number; waitMs?: number } = {},
): Promise<RawAnswer> {
  const pieces = typeof parts === 'string' ? [parts] : parts;
  const { gapMs = 0, waitMs = 5_000 } = opts;
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('close', () => {
      clearTimeout(timer);
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers,
        body: rest.join('\r\n\r\n'),
        ms: Date.now() - started,
      });
    });
    socket.on('connect', () => {
      let i = 0;
      const next = (): void => {
        if (socket.destroyed) return;
        socket.write(pieces[i] ?? '');
        i += 1;
        if (i < pieces.length) setTimeout(next, gapMs);
      };
      next();
    });
  });
}

const close = 'Host: 127.0.0.1\r\nConnection: close\r\n';
const registration = JSON.stringify({
  service: 'web',
  namespace: 'shop',
  host: '10.0.0.7',
  port: 8080,
});

describe('the request edge (standalone defaults)', () => {
  let op: TestOperator;
  let port: number;
  beforeAll(async () => {
    op = await startOperator({ config: { headersTimeoutMs: 1000, bodyTimeoutMs: 400 } });
    port = Number(new URL(op.url).port);
    const res = await fetch(`${op.url}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: registration,
    });
    expect(res.status).toBe(201);
  });
  afterAll(() => op.stop());

  it.each([
    ['GET', 'http://127.0.0.1/api/v1/discover/shop/web', 200],
    ['HEAD', 'http://127.0.0.1:7710/api/v1/discover/shop/web?all=true', 200],
    ['GET', 'HTTP://example.test/api/v1/services', 200],
    ['GET', 'http://example.test/api/v1/services/shop/web', 200],
    ['GET', 'http://example.test', 404],
  ])(
    'serves the absolute-form target %s %s like origin-form (%i)',
    async (method, target, want) => {
      const answer = await raw(port, `${method} ${target} HTTP/1.1\r\n${close}\r\n`);
      expect(answer.status).toBe(want);
    },
  );

  it('serves an absolute-form registration and heartbeat', async () => {
    const reg = await raw(
      port,
      `POST http://127.0.0.1/api/v1/instances HTTP/1.1\r\n${close}Content-Type: application/json\r\nContent-Length: ${registration.length}\r\n\r\n${registration}`,
    );
    expect(reg.status).toBe(200); // the same instance again: renewed
    const id = (JSON.parse(reg.body) as { instance: { id: string } }).instance.id;
    const beat = await raw(
      port,
      `PUT http://127.0.0.1/api/v1/instances/${id}/heartbeat HTTP/1.1\r\n${close}\r\n`,
    );
    expect(beat.status).toBe(200);
  });

  it.each([
    ['GET', '/API/V1/DISCOVER/shop/web'],
    ['GET', '/Api/v1/services'],
    ['POST', '/API/V1/INSTANCES'],
    ['PUT', '/api/v1/INSTANCES/web-1/heartbeat'],
    ['GET', '/API/V1/EVENTS'],
  ])('answers %s %s (a path that differs only in case) with 404', async (method, path) => {
    const answer = await raw(
      port,
      `${method} ${path} HTTP/1.1\r\n${close}Content-Length: 0\r\n\r\n`,
    );
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND' } });
  });

  it('still answers 405 for a path that exists with another method', async () => {
    const answer = await raw(port, `PATCH /api/v1/services HTTP/1.1\r\n${close}\r\n`);
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe('GET');
  });

  it('ignores `Upgrade: h2c` and answers as HTTP/1.1', async () => {
    const upgrade =
      'Host: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
    const list = await raw(port, `GET /api/v1/services HTTP/1.1\r\n${upgrade}\r\n`);
    expect(list.status).toBe(200);
    expect(list.headers.connection).toBe('close');
    expect(JSON.parse(list.body)).toMatchObject({ services: [{ namespace: 'shop', name: 'web' }] });
    const found = await raw(port, `GET /api/v1/discover/shop/web HTTP/1.1\r\n${upgrade}\r\n`);
    expect(found.status).toBe(200);
    // A body sent with the upgrade request arrives whole, also when it comes in pieces.
    const head = `POST /api/v1/instances HTTP/1.1\r\n${upgrade}Content-Type: application/json\r\nContent-Length: ${registration.length}\r\n\r\n`;
    const reg = await raw(port, [head + registration.slice(0, 10), registration.slice(10)], {
      gapMs: 50,
    });
    expect(reg.status).toBe(200);
  });

  it('refuses an h2c-upgrade body over the body limit by its length, gathering nothing', async () => {
    const upgrade = 'Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n';
    const head = `POST /api/v1/instances HTTP/1.1\r\n${upgrade}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n`;
    const res = await raw(port, head);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'BODY_TOO_LARGE' } });
  });

  it('survives a client that resets an h2c-upgrade request half-way', async () => {
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(
            `POST /api/v1/instances HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"serv`,
          );
          setTimeout(() => {
            socket.resetAndDestroy();
            resolve();
          }, 30);
        });
      });
    }
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${op.url}/healthz`)).status).toBe(200);
  });

  it('answers a body that does not arrive in time with 408 and closes', async () => {
    const answer = await raw(
      port,
      `POST /api/v1/instances HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"service":`,
    );
    expect(answer.status).toBe(408);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'REQUEST_TIMEOUT' } });
    expect(answer.ms).toBeLessThan(3_000);
  });

  it('answers a body trickling in a byte at a time with 408 once its time is up', async () => {
    const head = `PUT /api/v1/instances/web-1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`;
    const trickle = [head, ...Array<string>(60).fill(' ')];
    const answer = await raw(port, trickle, { gapMs: 50 });
    expect(answer.status).toBe(408);
    expect(answer.ms).toBeLessThan(3_000);
  });

  it('answers headers that do not arrive in time with the catalog 408', async () => {
    const answer = await raw(port, `GET /api/v1/services HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'REQUEST_TIMEOUT' } });
    expect(answer.ms).toBeLessThan(4_000);
  });

  it.each([
    '/api/v1/discover/shop/web?__proto__=1',
    '/api/v1/discover/shop/web?constructor=1',
    '/api/v1/discover/shop/web?zone=a&__proto__=x',
    '/api/v1/services?__proto__=1',
    '/api/v1/resources?__proto__=1',
  ])('refuses the unknown query parameter of %s with 400', async (path) => {
    const answer = await raw(port, `GET ${path} HTTP/1.1\r\n${close}\r\n`);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
  });

  it('keeps /metrics open in standalone mode by default', async () => {
    expect((await fetch(`${op.url}/metrics`)).status).toBe(200);
  });
});

describe('the per-address limit', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({
      config: { anonymous: false, addressRateLimit: 5, addressRateBurst: 5 },
    });
  });
  afterAll(() => op.stop());

  it('refuses an address past its budget with 429 and Retry-After before authenticating it', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 8; i++) {
      last = await fetch(`${op.url}/api/v1/services`, {
        headers: { authorization: 'Bearer not-a-token' },
      });
      statuses.push(last.status);
      await last.text();
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429, 429]);
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // The fast paths and the WebSocket handshake are behind the same bucket.
    const fast = await fetch(`${op.url}/api/v1/discover/shop/web`);
    expect(fast.status).toBe(429);
    const handshake = await raw(
      Number(new URL(op.url).port),
      `GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(handshake.status).toBe(429);
    expect(Number(handshake.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(handshake.body)).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    await new Promise((r) => setTimeout(r, 1_100));
    const metrics = await (await fetch(`${op.url}/metrics`)).text();
    expect(metrics).toMatch(/^maxine_address_rate_limited_total 5$/m);
    expect(metrics).toMatch(/^maxine_address_rate_limit_addresses 1$/m);
  });
});

describe('--metrics-auth', () => {
  let op: TestOperator;
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'maxine-edge-'));
    const staticTokensFile = await writeTokens(work, {
      root: 'root-token-0123456789',
      carol: 'carol-token-0123456789',
    });
    op = await startOperator({
      config: {
        ...lockedDown(staticTokensFile),
        metricsAuth: true,
      },
    });
  });
  afterAll(async () => {
    await op.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('answers /metrics only to a principal that may read every service', async () => {
    const get = (token?: string) =>
      fetch(`${op.url}/metrics`, {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
    expect((await get()).status).toBe(401);
    expect((await get('carol-token-0123456789')).status).toBe(403);
    const ok = await get('root-token-0123456789');
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('maxine_services');
  });
});
