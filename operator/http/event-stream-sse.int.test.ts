/**
 * The event stream as Server-Sent Events (`GET /api/v1/events`, `Accept: text/event-stream`)
 * on real sockets: events arrive as `id: EPOCH:SEQ` / `event: TYPE` / `data: JSON`, filters
 * apply, a reconnect with `Last-Event-ID` replays exactly what was missed, an id of another
 * log or too old gets a snapshot, the same authentication, limits, heartbeats, credential
 * expiry and slow-consumer policy as on the WebSocket.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { get } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { maxineEventSchema } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import { metric, register } from '../../test/helpers/event-stream.js';
import { jwtIssuer, lockedDown, writeTokens } from '../../test/helpers/auth.js';
import { eventually, startOperator } from '../../test/helpers/operator.js';
import type { TestOperator } from '../../test/helpers/operator.js';

const TOKENS = { alice: 'alice-token-0123456789abcdef' };
let work: string;
let tokensFile: string;
let op: TestOperator | undefined;
const clients: SseClient[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'maxine-sse-'));
  tokensFile = await writeTokens(work, TOKENS);
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.req.destroy();
  await op?.stop();
  op = undefined;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
}

/** A Server-Sent Events client on node:http (so its socket can be paused). */
class SseClient {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  body = '';
  ended = false;
  private text = '';

  constructor(
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.body += chunk;
      this.text += chunk;
      let at: number;
      while ((at = this.text.indexOf('\n\n')) !== -1) {
        this.block(this.text.slice(0, at));
        this.text = this.text.slice(at + 2);
      }
    });
    res.on('end', () => (this.ended = true));
    res.on('close', () => (this.ended = true));
  }

  private block(block: string): void {
    const message: SseMessage = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else {
        const colon = line.indexOf(':');
        const field = line.slice(0, colon) as keyof SseMessage;
        message[field] = line.slice(colon + 1).replace(/^ /, '');
      }
    }
    if (message.data !== undefined) this.messages.push(message);
  }

  get events(): MaxineEvent[] {
    return this.messages.map((m) => maxineEventSchema.parse(JSON.parse(m.data!)));
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  get headers(): IncomingHttpHeaders {
    return this.res.headers;
  }
}

function sse(
  url: string,
  headers: Record<string, string> = {},
  accept = 'text/event-stream',
): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept, ...headers } }, (res) => {
      const client = new SseClient(req, res);
      clients.push(client);
      resolve(client);
    });
    req.on('error', reject);
  });
}

const until = (what: string, predicate: () => boolean, ms = 5000) =>
  eventually(() => Promise.resolve(predicate()), ms, what);

describe('Server-Sent Events', () => {
  it('delivers the envelope as id/event/data, with the service and instance filters', async () => {
    op = await startOperator();
    const epoch = op.operator.events.epoch;
    const shop = await sse(`${op.url}/api/v1/events?services=shop/*`);
    const zoneA = await sse(`${op.url}/api/v1/events?zone=a`);
    expect(shop.status).toBe(200);
    expect(shop.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(shop.headers['cache-control']).toMatch(/no-cache/);
    expect(shop.headers['maxine-stream-epoch']).toBe(epoch);

    register(op, { id: 'w-a', zone: 'a' });
    register(op, { id: 'w-b', zone: 'b' });
    register(op, { id: 'l-a', service: 'ledger', namespace: 'bank', zone: 'a' });
    await until('three registrations', () => shop.messages.length >= 3);
    await until('zone a', () => zoneA.events.some((e) => e.instance?.id === 'l-a'));

    for (const m of shop.messages) {
      const event = maxineEventSchema.parse(JSON.parse(m.data!));
      expect(m.id).toBe(`${epoch}:${event.seq}`);
      expect(m.event).toBe(event.type);
    }
    expect(shop.events.map((e) => [e.type, e.service?.name, e.instance?.id])).toEqual([
      ['service_updated', 'web', undefined],
      ['service_registered', 'web', 'w-a'],
      ['service_registered', 'web', 'w-b'],
    ]);
    expect(zoneA.events.filter((e) => e.instance).map((e) => e.instance?.id)).toEqual([
      'w-a',
      'l-a',
    ]);
    expect(await metric(op, 'maxine_event_stream_subscribers{transport="sse"}')).toBe(2);
  });

  it('a reconnect with Last-Event-ID replays exactly what was missed, then live events', async () => {
    op = await startOperator();
    const first = await sse(`${op.url}/api/v1/events`);
    register(op, { id: 'r-1' });
    register(op, { id: 'r-2' });
    await until('two registrations', () => first.events.filter((e) => e.instance).length === 2);
    const lastId = first.messages.at(-1)!.id!;
    first.req.destroy();
    await until(
      'the first stream gone',
      () => op!.operator.events.subscribers === 0 || first.ended,
    );
    const missedFrom = op.operator.events.lastSeq;
    register(op, { id: 'r-3' });
    register(op, { id: 'r-4', service: 'cart' });
    op.operator.registry.deregister('r-1');
    const expected = op.operator.events.since(missedFrom)!.map((e) => e.seq);
    expect(expected.length).toBeGreaterThanOrEqual(4);

    // The URL still says snapshot=true: Last-Event-ID wins, as EventSource sends both.
    const again = await sse(`${op.url}/api/v1/events?snapshot=true`, { 'last-event-id': lastId });
    await until('the replay', () => again.events.length === expected.length);
    expect(again.events.map((e) => e.seq)).toEqual(expected);
    expect(again.events.some((e) => e.type.startsWith('resync'))).toBe(false);
    register(op, { id: 'r-5' });
    await until('live after the replay', () => again.events.some((e) => e.instance?.id === 'r-5'));
  });

  it('an id of another log, or older than the log, gets a snapshot; only resync_end carries an id', async () => {
    op = await startOperator();
    register(op, { id: 's-1' });
    register(op, { id: 's-2' });
    const epoch = op.operator.events.epoch;
    for (const lastEventId of ['another0epoch:1', `${epoch}:1`, '1']) {
      const c = await sse(`${op.url}/api/v1/events`, { 'last-event-id': lastEventId });
      await until('a snapshot', () => c.events.some((e) => e.type === 'resync_end'));
      const types = c.messages.map((m) => m.event);
      expect(types[0]).toBe('resync_begin');
      expect(types.at(-1)).toBe('resync_end');
      const end = c.events.at(-1)!;
      expect(end).toMatchObject({ seq: op.operator.events.lastSeq, data: { instances: 2 } });
      expect(c.messages.at(-1)!.id).toBe(`${epoch}:${end.seq}`);
      expect(c.messages.slice(0, -1).every((m) => m.id === undefined)).toBe(true);
      c.req.destroy();
    }
  });

  it('refuses a malformed Last-Event-ID or query with 400 VALIDATION_FAILED', async () => {
    op = await startOperator();
    for (const [path, headers] of [
      ['/api/v1/events', { 'last-event-id': 'not an id' }],
      ['/api/v1/events?metadata=novalue', {}],
      ['/api/v1/events?types=nope', {}],
    ] as const) {
      const c = await sse(`${op.url}${path}`, headers);
      await until('the answer', () => c.ended);
      expect(c.status).toBe(400);
      expect(JSON.parse(c.body)).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
    }
  });

  it('needs a principal (401 without one), and counts against the per-principal cap (429)', async () => {
    op = await startOperator({
      config: { anonymous: false, staticTokensFile: tokensFile, eventStreamMaxPerPrincipal: 1 },
    });
    const anonymous = await sse(`${op.url}/api/v1/events`);
    await until('the answer', () => anonymous.ended);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer realm="maxine"');
    expect(JSON.parse(anonymous.body)).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });

    const auth = { authorization: `Bearer ${TOKENS.alice}` };
    const one = await sse(`${op.url}/api/v1/events`, auth);
    expect(one.status).toBe(200);
    const two = await sse(`${op.url}/api/v1/events`, auth);
    await until('the refusal', () => two.ended);
    expect(two.status).toBe(429);
    expect(two.headers['retry-after']).toBe('5');
    expect(JSON.parse(two.body)).toMatchObject({ error: { code: 'TOO_MANY_STREAMS' } });
    // The slot comes back when the stream closes.
    one.req.destroy();
    await eventually(
      async () => {
        const c = await sse(`${op!.url}/api/v1/events`, auth);
        return c.status === 200;
      },
      3000,
      'a freed slot',
    );
  });

  it('shows only what the caller may read, as the WebSocket does', async () => {
    const file = await writeTokens(work, {
      ...TOKENS,
      bob: { token: 'bob-token-0123456789abcdef', groups: ['shop-team'] },
    });
    op = await startOperator({
      config: lockedDown(file),
      files: {
        'acls.yaml': `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: shop-team, namespace: shop }
spec:
  subjects:
    - { kind: Group, name: shop-team }
  rules:
    - services: ['shop/*']
      verbs: [read]
`,
      },
    });
    register(op, { id: 'w-1' });
    register(op, { id: 'l-1', service: 'ledger', namespace: 'bank' });
    const bob = await sse(`${op.url}/api/v1/events?snapshot=true`, {
      authorization: 'Bearer bob-token-0123456789abcdef',
    });
    expect(bob.status).toBe(200);
    await until('the snapshot', () => bob.events.some((e) => e.type === 'resync_end'));
    const listed = bob.events.flatMap((e) =>
      e.type === 'resync_chunk' ? e.data.services.map((x) => `${x.namespace}/${x.name}`) : [],
    );
    expect(listed).toEqual(['shop/web']);
    register(op, { id: 'l-2', service: 'ledger', namespace: 'bank' });
    register(op, { id: 'w-2' });
    await until('the shop event', () => bob.events.some((e) => e.instance?.id === 'w-2'));
    expect(bob.events.some((e) => e.service?.namespace === 'bank')).toBe(false);
  });

  it('keeps an idle stream open with heartbeat comments', async () => {
    op = await startOperator({ config: { eventStreamSseHeartbeatMs: 150 } });
    const c = await sse(`${op.url}/api/v1/events`);
    await until('two heartbeats', () => c.comments.filter((x) => x === 'ping').length >= 2, 3000);
    expect(c.ended).toBe(false);
  });

  it('outlives the request timeouts (they bound receiving the request, not the answer)', async () => {
    op = await startOperator({ config: { headersTimeoutMs: 1000, bodyTimeoutMs: 100 } });
    const c = await sse(`${op.url}/api/v1/events`);
    await new Promise((r) => setTimeout(r, 2500));
    expect(c.ended).toBe(false);
    register(op, { id: 'late' });
    await until('an event after the timeouts', () =>
      c.events.some((e) => e.instance?.id === 'late'),
    );
  });

  it('is closed when its credential expires, saying so', async () => {
    const issuer = await jwtIssuer(work);
    op = await startOperator({ config: { anonymous: false, ...issuer.config } });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await issuer.sign({ sub: 'dave', expires: exp });
    const c = await sse(`${op.url}/api/v1/events`, { authorization: `Bearer ${token}` });
    expect(c.status).toBe(200);
    await until('the end of the stream', () => c.ended, 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
    expect(c.comments.some((x) => x.startsWith('closed 4401'))).toBe(true);
    expect(await metric(op, 'maxine_event_stream_credential_closes_total{reason="expired"}')).toBe(
      1,
    );
  });

  it('a client that stops reading gets the resync marker, then a snapshot once it reads again', async () => {
    op = await startOperator({ config: { eventStreamBufferBytes: 64 * 1024 } });
    const slow = await sse(`${op.url}/api/v1/events`);
    slow.res.pause();
    const blob = { b1: 'x'.repeat(1000), b2: 'y'.repeat(1000), b3: 'z'.repeat(1000) };
    for (let i = 0; i < 6000; i++) {
      register(op, { id: `p-${i}`, metadata: blob });
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
    }
    await eventually(
      async () =>
        (await metric(op!, 'maxine_event_stream_resyncs_total{reason="slow_consumer"}')) === 1,
      10_000,
      'the slow consumer marked',
    );
    expect(await metric(op, 'maxine_event_stream_queued_bytes')).toBeLessThanOrEqual(72 * 1024);
    slow.res.resume();
    await until('the snapshot', () => slow.messages.some((m) => m.event === 'resync_end'), 20_000);
    const at = slow.messages.findIndex((m) => m.event === 'resync');
    const marker = slow.events[at]!;
    expect(marker).toMatchObject({ type: 'resync', data: { reason: 'slow_consumer' } });
    expect(slow.messages[at]!.id).toBe(`${op.operator.events.epoch}:${marker.seq}`);
    expect(slow.events[at - 1]!.seq).toBe(marker.seq);
    expect(slow.messages[at + 1]!.event).toBe('resync_begin');
    expect(slow.events.at(-1)).toMatchObject({ type: 'resync_end', data: { instances: 6000 } });
  }, 60_000);

  it('leaves the WebSocket path and the plain GET as they were', async () => {
    op = await startOperator();
    const plain = await sse(`${op.url}/api/v1/events`, {}, 'application/json');
    await until('the answer', () => plain.ended);
    expect(plain.status).toBe(426);
    expect(plain.headers.upgrade).toBe('websocket');
  });
});
