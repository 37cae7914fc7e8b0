/**
 * Fan-out at scale over real sockets: 1,000 WebSocket subscribers in this process, each with
 * a sidecar's filter, and a burst of events made over REST at once (registrations, heartbeats
 * that change health, deregistrations). Every subscriber whose filter wants them gets every
 * event of the burst, complete and in the log's order; those whose filter does not get none.
 * The machine is shared, so only completeness and order are asserted, never latency
 * (bench/events-fanout.js measures that).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import WebSocket from 'ws';
import type { MaxineEvent } from '../../common/wire.js';
import { RESYNC_TYPES } from '../../common/wire.js';
import { api, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const SUBSCRIBERS = 1000;
/** Every tenth subscriber watches other services only: it must get nothing of the burst. */
const elsewhere = (i: number): boolean => i % 10 === 9;
const WAVE = 50;

interface Subscriber {
  ws: WebSocket;
  seqs: number[];
  /** Messages that were not JSON events, or frames that were not text. */
  bad: number;
}

let op: TestOperator;
const subscribers: Subscriber[] = [];

beforeAll(async () => {
  op = await startOperator({
    config: {
      logLevel: 'warn',
      eventStreamMaxPerPrincipal: SUBSCRIBERS + 10,
      eventStreamMaxConnections: SUBSCRIBERS + 10,
      addressRateLimit: 0,
    },
  });
});

afterAll(async () => {
  await Promise.all(
    subscribers.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.ws.readyState === WebSocket.CLOSED) return resolve();
          s.ws.once('close', () => resolve());
          s.ws.terminate();
        }),
    ),
  );
  await op.stop();
});

function open(i: number): Promise<Subscriber> {
  const services = elsewhere(i)
    ? [`shop/elsewhere-${i % 7}`, 'other/*']
    : ['shop/orders', `shop/dep-${i % 13}`, `shop/dep-${(i + 5) % 13}`];
  const query = new URLSearchParams({
    services: services.join(','),
    caller: `shop/client-${i}`,
    ...(i % 10 === 0 && { snapshot: 'true' }),
  });
  const ws = new WebSocket(`${op.wsUrl}/api/v1/events?${query.toString()}`);
  const s: Subscriber = { ws, seqs: [], bad: 0 };
  ws.on('message', (data: Buffer, binary: boolean) => {
    try {
      const event = JSON.parse(data.toString('utf8')) as MaxineEvent;
      if (binary) s.bad += 1;
      if (!RESYNC_TYPES.has(event.type)) s.seqs.push(event.seq);
    } catch {
      s.bad += 1;
    }
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(s));
    ws.once('error', reject);
  });
}

async function register(host: string): Promise<string> {
  const res = await api(op.url, 'POST', '/api/v1/instances', {
    namespace: 'shop',
    service: 'orders',
    host,
    port: 8080,
  });
  expect(res.status).toBe(201);
  return (res.body as { instance: { id: string } }).instance.id;
}

describe('event fan-out to 1,000 subscribers', () => {
  it('delivers a burst of REST-made events to every subscriber that wants them, complete and in order', async () => {
    // Instances the burst will flip and deregister, made before anyone subscribes.
    const pool: string[] = [];
    for (let i = 0; i < 20; i++) pool.push(await register(`10.0.0.${i + 1}`));

    for (let from = 0; from < SUBSCRIBERS; from += WAVE) {
      const wave = [];
      for (let i = from; i < Math.min(SUBSCRIBERS, from + WAVE); i++) wave.push(open(i));
      subscribers.push(...(await Promise.all(wave)));
    }
    expect(op.operator.events.subscribers).toBeGreaterThanOrEqual(SUBSCRIBERS - SUBSCRIBERS / 10);

    // What the log fans out during the burst, in its order: the truth each subscriber is held
    // to (heartbeats go only to those who ask for them by type; a sidecar does not).
    const truth: number[] = [];
    const unsubscribe = op.operator.events.subscribe((e) => {
      if (e.type === 'service_heartbeat') return;
      if (e.service?.namespace === 'shop' && e.service.name === 'orders') truth.push(e.seq);
    });
    // The burst: 30 registrations, 10 heartbeats turning instances critical, 10 deregistrations, at once.
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) calls.push(register(`10.0.1.${i + 1}`));
    for (const id of pool.slice(0, 10)) {
      calls.push(
        api(op.url, 'PUT', `/api/v1/instances/${id}/heartbeat`, { status: 'critical' }).then(
          (res) => expect(res.status).toBe(200),
        ),
      );
    }
    for (const id of pool.slice(10)) {
      calls.push(
        api(op.url, 'DELETE', `/api/v1/instances/${id}`).then((res) =>
          expect([200, 204]).toContain(res.status),
        ),
      );
    }
    await Promise.all(calls);
    unsubscribe();
    expect(truth).toHaveLength(50);

    const watching = subscribers.filter((_, i) => !elsewhere(i));
    const complete = (s: Subscriber): boolean => s.seqs.length >= truth.length;
    const deadline = Date.now() + 120_000;
    while (!watching.every(complete) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    // Anything late for the others would have come by now (they share the sockets' order).
    await new Promise((r) => setTimeout(r, 200));

    const incomplete = watching.filter((s) => !complete(s)).length;
    expect(incomplete).toBe(0);
    const wrong = watching.filter((s) => JSON.stringify(s.seqs) !== JSON.stringify(truth));
    expect(wrong).toHaveLength(0);
    const others = subscribers.filter((_, i) => elsewhere(i));
    expect(others.map((s) => s.seqs.length)).toEqual(others.map(() => 0));
    expect(subscribers.reduce((n, s) => n + s.bad, 0)).toBe(0);
    // Nobody was cut off as a slow consumer on the way.
    expect(subscribers.every((s) => s.ws.readyState === WebSocket.OPEN)).toBe(true);
  }, 240_000);
});
