/**
 * EventStream over real sockets against a scripted Server-Sent Events server, for what a real
 * operator does rarely or only under load: resume with Last-Event-ID, the `closed 4401` comment,
 * a message that does not parse, a refusal that retrying cannot fix, a silent connection, and an
 * iterator whose reader falls behind its bound.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ClientError, EventStream } from '../src/index.js';
import type { MaxineEvent } from '../src/index.js';

/** One connection as the scripted server saw it. */
interface Visit {
  headers: IncomingHttpHeaders;
  url: string;
  res: ServerResponse;
}

let server: Server | undefined;
const streams: EventStream[] = [];
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

/** A server that hands each request to `script` with its number (0 for the first). */
async function scripted(
  script: (visit: Visit, n: number) => void,
): Promise<{ url: string; visits: Visit[] }> {
  const visits: Visit[] = [];
  server = createServer((req, res) => {
    const visit = { headers: req.headers, url: req.url ?? '', res };
    visits.push(visit);
    script(visit, visits.length - 1);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, visits };
}

function sse(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'maxine-stream-epoch': 'e',
  });
}

function event(seq: number, name = 'gone'): string {
  return JSON.stringify({
    seq,
    type: 'service_deleted',
    time: 't',
    service: { namespace: 'shop', name },
    data: { declared: false },
  });
}

function open(
  url: string,
  extra: Partial<ConstructorParameters<typeof EventStream>[0]> = {},
): EventStream {
  const stream = new EventStream({ baseUrl: url, backoff: { baseMs: 20, maxMs: 100 }, ...extra });
  streams.push(stream);
  return stream;
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe('EventStream', () => {
  it('resumes with Last-Event-ID after a drop, and reads the token again for each connection', async () => {
    const { url, visits } = await scripted(({ res }, n) => {
      sse(res);
      if (n === 0) res.end(`id: e:5\nevent: service_deleted\ndata: ${event(5)}\n\n`);
      else res.write(`id: e:6\ndata: ${event(6)}\n\n`);
    });
    let reads = 0;
    const seen: number[] = [];
    const stream = open(url, {
      token: () => `t${++reads}`,
      query: { services: ['shop/*'], snapshot: true },
    });
    stream.on('event', (e) => seen.push(e.seq));
    await until('two events', () => seen.length === 2);
    expect(seen).toEqual([5, 6]);
    expect(visits[0]!.headers['last-event-id']).toBeUndefined();
    expect(visits[0]!.url).toBe('/api/v1/events?services=shop%2F*&snapshot=true');
    expect(visits[1]!.headers['last-event-id']).toBe('e:5');
    expect(visits.map((v) => v.headers.authorization)).toEqual(['Bearer t1', 'Bearer t2']);
    expect(visits[0]!.headers.accept).toBe('text/event-stream');
    expect(stream.lastEventId).toBe('e:6');
  });

  it('reports the closed-4401 comment as UNAUTHENTICATED and reconnects', async () => {
    const { url, visits } = await scripted(({ res }, n) => {
      sse(res);
      if (n === 0) res.end(': closed 4401 credential expired: reconnect with a fresh token\n\n');
    });
    const errors: ClientError[] = [];
    const closes: (number | undefined)[] = [];
    const stream = open(url);
    stream.on('error', (e) => errors.push(e));
    stream.on('disconnect', ({ code }) => closes.push(code));
    await until('a reconnect', () => visits.length === 2);
    expect(closes).toEqual([4401]);
    expect(errors.map((e) => [e.status, e.code])).toEqual([[401, 'UNAUTHENTICATED']]);
  });

  it('skips a message that does not parse (BAD_RESPONSE) and delivers the next', async () => {
    const { url } = await scripted(({ res }) => {
      sse(res);
      res.write(
        `data: {"seq":1,"type":"service_deleted"}\n\ndata: not json\n\ndata: ${event(2)}\n\n`,
      );
    });
    const errors: string[] = [];
    const seen: MaxineEvent[] = [];
    const stream = open(url);
    stream.on('error', (e) => errors.push(e.code));
    stream.on('event', (e) => seen.push(e));
    await until('the valid event', () => seen.length === 1);
    expect(seen[0]).toMatchObject({ seq: 2, type: 'service_deleted' });
    expect(errors).toEqual(['BAD_RESPONSE', 'BAD_RESPONSE']);
  });

  it('stops on a refusal that retrying cannot fix (400 VALIDATION_FAILED), retries a 429', async () => {
    const { url, visits } = await scripted(({ res }, n) => {
      const [status, code] = n === 0 ? [429, 'TOO_MANY_STREAMS'] : [400, 'VALIDATION_FAILED'];
      res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify({ error: { code, message: 'no' } }));
    });
    const stream = open(url);
    const closed = new Promise<ClientError | undefined>((r) => stream.once('close', r));
    const error = await closed;
    expect(error).toBeInstanceOf(ClientError);
    expect(error).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(visits).toHaveLength(2);
    expect(stream.isClosed).toBe(true);
  });

  it('reads no more than 64 KiB of a refusal whose body never ends, and retries', async () => {
    const chunk = 'x'.repeat(16 * 1024);
    const { url, visits } = await scripted(({ res }) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const errors: ClientError[] = [];
    const stream = open(url, { idleTimeoutMs: 60_000 });
    stream.on('error', (e) => errors.push(e));
    await until('two refused connections', () => errors.length >= 2 && visits.length >= 2);
    expect(errors[0]).toMatchObject({ status: 500, code: 'BAD_RESPONSE' });
  });

  it('refuses a line that never ends at maxMessageChars (BUFFER_FULL) and connects again', async () => {
    const { url, visits } = await scripted(({ res }) => {
      sse(res);
      const pump = (): void => {
        while (!res.destroyed && res.write('data: ' + 'y'.repeat(8192)));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const errors: string[] = [];
    const stream = open(url, { maxMessageChars: 100_000 });
    stream.on('error', (e) => errors.push(e.code));
    await until('a second connection', () => visits.length >= 2);
    expect(errors[0]).toBe('BUFFER_FULL');
  });

  it('backs off from a server that cuts every connection right after one event', async () => {
    let seq = 0;
    const { url, visits } = await scripted(({ res }) => {
      sse(res);
      seq += 1;
      res.end(`id: e:${seq}\ndata: ${event(seq)}\n\n`);
    });
    const seen: number[] = [];
    const stream = open(url, { backoff: { baseMs: 20, maxMs: 5000 } });
    stream.on('event', (e) => seen.push(e.seq));
    await new Promise((r) => setTimeout(r, 2000));
    expect(seen.length).toBeGreaterThanOrEqual(3); // it keeps reconnecting and resuming…
    expect(visits.length).toBeLessThan(12); // …with a back-off (20, 40, 80, … ms), not every 10-20 ms
  });

  it('takes a silent connection for dead after idleTimeoutMs and makes another', async () => {
    const { url, visits } = await scripted(({ res }) => sse(res)); // headers, then nothing
    open(url, { idleTimeoutMs: 200 });
    await until('a second connection', () => visits.length >= 2);
  });

  it('ends an async iterator whose reader fell maxBuffered events behind with BUFFER_FULL', async () => {
    const { url } = await scripted(({ res }) => {
      sse(res);
      res.write(Array.from({ length: 10 }, (_, i) => `data: ${event(i + 1)}\n\n`).join(''));
    });
    const stream = open(url, { maxBuffered: 3 });
    const iterator = stream[Symbol.asyncIterator]();
    let delivered = 0;
    stream.on('event', () => (delivered += 1));
    await until('all ten events', () => delivered === 10);
    const got: number[] = [];
    let failure: unknown;
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) break;
        got.push(next.value.seq);
      }
    } catch (err) {
      failure = err;
    }
    expect(got).toEqual([1, 2, 3]); // what fitted; then the refusal, not a silent gap
    expect(failure).toMatchObject({ code: 'BUFFER_FULL' });
  });
});
