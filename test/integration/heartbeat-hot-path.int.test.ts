/**
 * The heartbeat hot path (issue 17) on a real operator with real sockets. A heartbeat that
 * nobody takes events of (a subscriber of the default types, as every sidecar is) builds no
 * event, while one that asks for `service_heartbeat` gets each; a heartbeat's answer is as
 * before; and its ISO times come from kept minute prefixes, not a Date and a toISOString each
 * (the regression: each heartbeat wrote a minute's prefix again three or four times).
 */
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { ManualClock } from '../../operator/registry/clock.js';
import { api, EventClient, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let clock: ManualClock;
const ids: string[] = [];

const heartbeat = (id: string) =>
  api(op.url, 'PUT', `/api/v1/instances/${id}/heartbeat`, { status: 'passing' });

beforeAll(async () => {
  clock = new ManualClock(Date.parse('2026-12-06T19:59:30Z'));
  op = await startOperator({ clock, config: { defaultTtlSeconds: 30, sweepIntervalMs: 60_000 } });
  for (const host of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) {
    const res = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'api',
      namespace: 'shop',
      host,
      port: 8080,
    });
    expect(res.status).toBe(201);
    ids.push(res.body.instance.id as string);
  }
});
afterAll(async () => {
  await op.stop();
});

/** Writes `request` to the operator in one write and resolves with all it answered. */
function rawRequest(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(op.url).port), '127.0.0.1', () => socket.end(request));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

/** The heartbeat events the operator's log builds while `work` runs. */
async function heartbeatEventsBuilt(work: () => Promise<void>): Promise<number> {
  const append = jest.spyOn(op.operator.events, 'append');
  try {
    await work();
    return append.mock.calls.filter(([draft]) => draft.type === 'service_heartbeat').length;
  } finally {
    append.mockRestore();
  }
}

describe('heartbeats on the hot path', () => {
  it('build no event while no subscriber takes heartbeats, and one for each while one does', async () => {
    // A sidecar's subscription: every service, the default types (no heartbeats).
    const sidecar = await EventClient.connect(`${op.wsUrl}/api/v1/events?services=*/*`);
    try {
      const built = await heartbeatEventsBuilt(async () => {
        for (const id of ids) expect((await heartbeat(id)).status).toBe(200);
      });
      expect(built).toBe(0);

      const watcher = await EventClient.connect(
        `${op.wsUrl}/api/v1/events?services=shop/api&types=service_heartbeat`,
      );
      try {
        // Subscribed once a heartbeat reaches it; from then on each heartbeat is an event.
        await eventually(async () => {
          await heartbeat(ids[0]!);
          return watcher.events.length > 0;
        });
        const builtWhileWatched = await heartbeatEventsBuilt(async () => {
          for (const id of ids) await heartbeat(id);
        });
        expect(builtWhileWatched).toBe(ids.length);
        const idsOf = (events: typeof watcher.events) =>
          events.map((e) => (e.type === 'service_heartbeat' ? e.data.id : e.type));
        const seen = await watcher.until(
          (e) => JSON.stringify(idsOf(e).slice(-ids.length)) === JSON.stringify(ids),
        );
        expect(idsOf(seen).slice(-ids.length)).toEqual(ids);
      } finally {
        await watcher.close();
      }
      // Its unsubscription reaches the log: heartbeats build nothing again.
      await eventually(
        async () => (await heartbeatEventsBuilt(async () => void (await heartbeat(ids[1]!)))) === 0,
      );
      expect(sidecar.types()).toEqual([]); // the sidecar was sent no heartbeat all along
    } finally {
      await sidecar.close();
    }
  });

  it('answers with its times, written from kept minute prefixes (no toISOString per heartbeat)', async () => {
    const answers: { lastHeartbeat: string; expiresAt: string; now: number }[] = [];
    const toISOString = jest.spyOn(Date.prototype, 'toISOString');
    let calls: number;
    try {
      // 90 heartbeats, 1 s apart: across the hour, three minutes of heartbeats and of leases.
      for (let i = 0; i < 90; i++) {
        clock.advance(1000);
        const res = await heartbeat(ids[i % ids.length]!);
        expect(res.status).toBe(200);
        const { lastHeartbeat, lease } = res.body.instance;
        answers.push({ lastHeartbeat, expiresAt: lease.expiresAt, now: clock.now() });
      }
      calls = toISOString.mock.calls.length;
    } finally {
      toISOString.mockRestore();
    }
    // Once per minute the answers name (heartbeats' and leases' minutes): 3 + 3, not 4 per heartbeat.
    expect(calls).toBeLessThanOrEqual(10);
    for (const a of answers) {
      expect(a.lastHeartbeat).toBe(new Date(a.now).toISOString());
      expect(a.expiresAt).toBe(new Date(a.now + 30_000).toISOString());
    }
  });

  it('reads a body that came with its head without a listener of its own (no closures, timer or promise per heartbeat)', async () => {
    const added: string[] = [];
    const watch = (req: IncomingMessage) => {
      if (req.url?.endsWith('/heartbeat') === true)
        req.on('newListener', (name: string | symbol) => added.push(String(name)));
    };
    op.operator.server.prependListener('request', watch);
    try {
      // Head and body in one write, as a sidecar's keep-alive client sends a small body.
      const body = '{"status":"passing"}';
      const answer = await rawRequest(
        `PUT /api/v1/instances/${ids[0]!}/heartbeat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer).toContain('"health":{"status":"passing","reason":"check"}');
    } finally {
      op.operator.server.removeListener('request', watch);
    }
    // Read from the request's buffer: readJsonBody's data/end/error/close listeners not added.
    expect(added.filter((n) => ['data', 'end', 'error', 'close'].includes(n))).toEqual([]);
  });

  it.each([
    ['no body', undefined, undefined, 200, undefined],
    ['an empty object', 'application/json', '{}', 200, undefined],
    [
      'a check result',
      'application/json; charset=utf-8',
      '{"status":"warning","output":"slow"}',
      200,
      undefined,
    ],
    ['blanks', 'application/json', '  ', 200, undefined],
    ['malformed JSON', 'application/json', '{"status":', 400, 'MALFORMED_JSON'],
    ['JSON null', 'application/json', 'null', 400, 'VALIDATION_FAILED'],
    ['an unknown field', 'application/json', '{"state":"up"}', 400, 'VALIDATION_FAILED'],
    ['a text body', 'text/plain', 'passing', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['another charset', 'application/json; charset=latin1', '{}', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a chunked body', 'application/json', { chunked: '{"status":"passing"}' }, 200, undefined],
  ])(
    'answers a heartbeat with %s as before, sent whole or in parts (%#)',
    async (_what, type, body, status, code) => {
      const path = `/api/v1/instances/${ids[2]!}/heartbeat`;
      const head = type === undefined ? '' : `content-type: ${type}\r\n`;
      const whole =
        body === undefined
          ? ''
          : typeof body === 'string'
            ? `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
            : `transfer-encoding: chunked\r\n\r\n${body.chunked.length.toString(16)}\r\n${body.chunked}\r\n0\r\n\r\n`;
      // In one write (the body read from the parser's buffer at once)...
      const raw = await rawRequest(
        `PUT ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${head}${whole === '' ? '\r\n' : whole}`,
      );
      expect(raw).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      // ...and through fetch, which writes the body after the head (read as it arrives).
      const res = await fetch(`${op.url}${path}`, {
        method: 'PUT',
        headers: type === undefined ? {} : { 'content-type': type },
        body: typeof body === 'object' ? body.chunked : body,
      });
      const text = await res.text();
      expect(res.status).toBe(status);
      const rawBody = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      if (code !== undefined) {
        expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe(code);
        expect((JSON.parse(rawBody) as { error: { code: string } }).error.code).toBe(code);
      } else {
        expect((JSON.parse(text) as { instance: { id: string } }).instance.id).toBe(ids[2]);
        expect((JSON.parse(rawBody) as { instance: { id: string } }).instance.id).toBe(ids[2]);
      }
    },
  );

  it('refuses a heartbeat body over the limit, declared or chunked, with 413', async () => {
    const big = JSON.stringify({ status: 'passing', output: 'x'.repeat(2 * 1024 * 1024) });
    const declared = await fetch(`${op.url}/api/v1/instances/${ids[2]!}/heartbeat`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    expect(declared.status).toBe(413);
    const chunked = await fetch(`${op.url}/api/v1/instances/${ids[2]!}/heartbeat`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    });
    expect(chunked.status).toBe(413);
  });

  it("refuses a malformed instance id in the path with the path schema's 400", async () => {
    const res = await api(op.url, 'PUT', '/api/v1/instances/-bad-/heartbeat', {
      status: 'passing',
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(JSON.stringify(res.body.error)).toContain('id');
  });
});
