/**
 * MaxineClient against a scripted HTTP server (real sockets) doing what a hostile or broken
 * operator, or a careless caller, does: close() while a registration is being answered, close()
 * twice, a report function that never settles, an answer that breaks off mid-body.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ClientError, MaxineClient } from '../src/index.js';
import type { Instance } from '../src/index.js';
import { testInstance } from './instance.js';

let server: Server | undefined;
const clients: MaxineClient[] = [];
afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

const instance = (id: string, ttlSeconds = 1): Instance => testInstance(id, ttlSeconds);

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

/** A server answering as `script` says; it records `METHOD path` of every request. */
async function scripted(
  script: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; calls: string[] }> {
  const calls: string[] = [];
  server = createServer((req, res) => {
    calls.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => script(req, res));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

/** Registration answers: POST after `postDelayMs`, heartbeats at once, DELETE after `deleteDelayMs`. */
function registry(postDelayMs = 0, deleteDelayMs = 0) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method === 'POST')
      setTimeout(() => json(res, 201, { instance: instance('a') }), postDelayMs);
    else if (req.method === 'DELETE') setTimeout(() => json(res, 200, {}), deleteDelayMs);
    else json(res, 200, { instance: instance('a') });
  };
}

function client(url: string): MaxineClient {
  const c = new MaxineClient({ baseUrl: url });
  clients.push(c);
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const input = { service: 'web', namespace: 'shop', host: '10.0.0.1', port: 80 };

describe('MaxineClient against a hostile or slow server', () => {
  it('close() during register(): the granted instance is deregistered and no heartbeat follows', async () => {
    const { url, calls } = await scripted(registry(300));
    const c = client(url);
    const registering = c.register(input);
    const settled = registering.catch((err: unknown) => err);
    await sleep(50);
    await c.close();
    expect(calls).toEqual(['POST /api/v1/instances', 'DELETE /api/v1/instances/a']);
    const error = await settled;
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).code).toBe('CLOSED');
    await sleep(500); // more than a heartbeat interval (333 ms) of the 1 s lease
    expect(calls).toEqual(['POST /api/v1/instances', 'DELETE /api/v1/instances/a']);
  });

  it('register() and events() after close() are refused with CLOSED, and nothing is sent', async () => {
    const { url, calls } = await scripted(registry());
    const c = client(url);
    await c.close();
    await expect(c.register(input)).rejects.toMatchObject({ code: 'CLOSED' });
    expect(() => c.events()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await sleep(100);
    expect(calls).toEqual([]);
  });

  it('a second close() waits for the deregistration the first one started', async () => {
    const { url, calls } = await scripted(registry(0, 300));
    const c = client(url);
    const me = await c.register(input);
    const first = me.close();
    let secondDone = false;
    const second = me.close().then(() => (secondDone = true));
    await sleep(100);
    expect(calls).toContain('DELETE /api/v1/instances/a');
    expect(secondDone).toBe(false); // the DELETE is not answered yet
    await Promise.all([first, second]);
    expect(secondDone).toBe(true);
  });

  it('close() does not hang on a report function that never settles, and deregisters', async () => {
    const { url, calls } = await scripted(registry());
    const c = client(url);
    let asked = 0;
    const me = await c.register(input, {
      report: () => {
        asked += 1;
        return new Promise(() => undefined);
      },
    });
    await sleep(450); // the first beat (at 333 ms) is waiting for the report
    expect(asked).toBe(1);
    const closed = me.close().then(() => 'closed');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<string>((r) => (timer = setTimeout(() => r('hung'), 2000)));
    const outcome = await Promise.race([closed, hung]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
    expect(calls).toEqual(['POST /api/v1/instances', 'DELETE /api/v1/instances/a']);
  });

  it('an answer that breaks off mid-body is a ClientError NETWORK, not a TypeError', async () => {
    const { url } = await scripted((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"instance":');
      setTimeout(() => res.destroy(), 50);
    });
    const c = client(url);
    const error = await c.discover('shop/web').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClientError);
    expect(error).toMatchObject({ code: 'NETWORK', status: 0 });
    await expect(c.register(input)).rejects.toMatchObject({ code: 'NETWORK' });
  });

  it('an answer longer than maxAnswerBytes is BUFFER_FULL, read no further, whether its length is declared or not', async () => {
    let written = 0;
    const { url } = await scripted((req, res) => {
      if (req.url?.includes('declared') === true) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '10000000' });
        res.write('{"instance":');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      // Never ends: 64 KiB every few milliseconds until the client goes away.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const timer = setInterval(() => {
        if (res.destroyed) clearInterval(timer);
        else {
          res.write(chunk);
          written += chunk.length;
        }
      }, 2);
      res.on('close', () => clearInterval(timer));
    });
    const c = new MaxineClient({ baseUrl: url, maxAnswerBytes: 1024 * 1024, timeoutMs: 20_000 });
    clients.push(c);
    const started = Date.now();
    await expect(c.discover('shop/web')).rejects.toMatchObject({
      code: 'BUFFER_FULL',
      status: 200,
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(written).toBeLessThan(8 * 1024 * 1024);
    await expect(c.discover('shop/declared')).rejects.toMatchObject({ code: 'BUFFER_FULL' });
  });

  it('a token function that never answers: the call fails within timeoutMs and close() does not hang', async () => {
    const { url, calls } = await scripted(registry());
    const c = new MaxineClient({
      baseUrl: url,
      token: () => new Promise<string>(() => undefined),
      timeoutMs: 300,
    });
    clients.push(c);
    await expect(c.discover('shop/web')).rejects.toMatchObject({
      code: 'NETWORK',
      message: expect.stringContaining('the token source did not answer within 300 ms'),
    });
    await expect(c.register(input)).rejects.toMatchObject({ code: 'NETWORK' });
    await c.close();
    expect(calls).toEqual([]);
  });

  it('synced() rejects at once with the refusal when the cache stream stopped for good, and with CLOSED after close()', async () => {
    await scripted((_req, res) =>
      json(res, 400, {
        error: { code: 'VALIDATION_FAILED', message: 'Invalid query: services[0]' },
      }),
    );
    const address = server!.address() as AddressInfo;
    const c = new MaxineClient({
      baseUrl: `http://127.0.0.1:${address.port}`,
      cache: { services: ['Not A Pattern!'] },
    });
    clients.push(c);
    c.on('error', () => undefined);
    const started = Date.now();
    await expect(c.synced(5000)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(c.synced(5000)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });

    const other = new MaxineClient({
      baseUrl: `http://127.0.0.1:${address.port}`,
      cache: { services: ['shop/*'] },
    });
    other.on('error', () => undefined);
    const waiting = other.synced(5000);
    await other.close();
    await expect(waiting).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it.each([
    ['an empty body', ''],
    ['{}', '{}'],
    ['instance null', '{"instance":null,"instances":{"0":1}}'],
  ])(
    'a 200 discovery answer with %s is BAD_RESPONSE, not an undefined instance',
    async (_what, body) => {
      const { url } = await scripted((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
      const c = client(url);
      await expect(c.discover('shop/web')).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
      await expect(c.discoverAll('shop/web')).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
    },
  );

  it('a token function that throws: register() rejects with its error, the stream reports NETWORK and retries', async () => {
    const { url, calls } = await scripted(registry());
    const boom = new Error('no token yet');
    const c = new MaxineClient({
      baseUrl: url,
      backoff: { baseMs: 20, maxMs: 50 },
      token: () => {
        throw boom;
      },
    });
    clients.push(c);
    await expect(c.register(input)).rejects.toBe(boom);
    const errors: ClientError[] = [];
    c.events().on('error', (e) => errors.push(e));
    await sleep(300);
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors[0]).toMatchObject({ code: 'NETWORK', message: 'Error: no token yet' });
    expect(calls).toEqual([]);
  });
});
