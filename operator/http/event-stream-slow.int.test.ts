/**
 * The slow-consumer policy on real sockets: a subscriber that stops reading (its socket
 * paused) is sent the `resync` marker once its send buffer passes the bound, gets nothing
 * more while it is behind (the queued bytes stay bounded), and once it reads again it gets a
 * snapshot and follows live events; a subscriber reading at the same time gets every event,
 * in order. One that does not drain within the stall limit is dropped. And the instance
 * filters (zone, version, metadata) apply to live events and to the snapshot alike.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import WebSocket from 'ws';
import { maxineEventSchema } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import { metric, register } from '../../test/helpers/event-stream.js';
import { eventually, startOperator } from '../../test/helpers/operator.js';
import type { TestOperator } from '../../test/helpers/operator.js';

let op: TestOperator | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await op?.stop();
  op = undefined;
});

interface Subscriber {
  ws: WebSocket;
  events: MaxineEvent[];
}

function subscribe(url: string): Promise<Subscriber> {
  const ws = new WebSocket(url);
  sockets.push(ws);
  const events: MaxineEvent[] = [];
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as MaxineEvent));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, events }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BUFFER = 64 * 1024;
/** ~3 KiB per event: more than the kernel's socket buffers take in a few thousand. */
const BLOB = { b1: 'x'.repeat(1000), b2: 'y'.repeat(1000), b3: 'z'.repeat(1000) };

/**
 * Registers `count` instances in batches, leaving the event loop free between them so a
 * reading subscriber (in this process) keeps up; returns the ids.
 */
async function burst(o: TestOperator, count: number, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}-${i}`;
    register(o, { id, metadata: BLOB });
    ids.push(id);
    if (i % 10 === 9) await pause(1);
  }
  return ids;
}

describe('a slow consumer', () => {
  it('is sent the resync marker, holds a bounded buffer, and resumes with a snapshot while a reading subscriber gets every event in order', async () => {
    op = await startOperator({
      config: { eventStreamBufferBytes: BUFFER, snapshotStallMs: 30_000 },
    });
    const url = `${op.wsUrl}/api/v1/events?services=shop/*`;
    const fast = await subscribe(url);
    const slow = await subscribe(url);
    slow.ws.pause(); // stops reading its socket: the kernel's buffers fill, then the operator's
    const first = op.operator.events.lastSeq;

    const ids = await burst(op, 6000, 'b');
    const last = op.operator.events.lastSeq;
    await eventually(
      () => Promise.resolve(fast.events.at(-1)?.seq === last),
      20_000,
      'the reading subscriber has every event',
    );
    // The reading subscriber: every event, in order, no marker, no snapshot.
    const seqs = fast.events.map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: last - first }, (_, i) => first + 1 + i));
    expect(fast.events.filter((e) => e.type === 'service_registered')).toHaveLength(ids.length);
    expect(fast.events.some((e) => e.type === 'resync' || e.type === 'resync_begin')).toBe(false);

    // The slow one was moved to snapshot resumption once, and what is queued for it is bounded.
    expect(await metric(op, 'maxine_event_stream_resyncs_total{reason="slow_consumer"}')).toBe(1);
    const queued = await metric(op, 'maxine_event_stream_queued_bytes');
    expect(queued).toBeGreaterThan(0);
    expect(queued).toBeLessThanOrEqual(BUFFER + 8 * 1024); // the bound, one event, the marker
    expect(await metric(op, 'maxine_event_stream_subscribers{transport="websocket"}')).toBe(2);
    expect(slow.events).toHaveLength(0); // it reads nothing yet

    // It reads again: the backlog, the marker (where it stands), a snapshot, then live events.
    slow.ws.resume();
    await eventually(
      () => Promise.resolve(slow.events.some((e) => e.type === 'resync_end')),
      20_000,
      'the slow subscriber’s snapshot',
    );
    const markerAt = slow.events.findIndex((e) => e.type === 'resync');
    expect(markerAt).toBeGreaterThan(0);
    const marker = maxineEventSchema.parse(slow.events[markerAt]);
    const before = slow.events.slice(0, markerAt);
    // Everything before the marker is the stream as sent, in order, and the marker says where
    // it stands: the last event it was sent.
    expect(before.map((e) => e.seq)).toEqual(
      Array.from({ length: before.length }, (_, i) => first + 1 + i),
    );
    expect(marker).toMatchObject({
      type: 'resync',
      seq: before.at(-1)!.seq,
      data: { reason: 'slow_consumer', epoch: op.operator.events.epoch },
    });
    expect(before.length).toBeLessThan(last - first); // it did fall behind
    const after = slow.events.slice(markerAt + 1);
    expect(after[0]?.type).toBe('resync_begin');
    const end = after.find((e) => e.type === 'resync_end');
    expect(end).toMatchObject({ seq: last, data: { instances: ids.length } });

    // Live again.
    register(op, { id: 'after-resync' });
    await eventually(
      () => Promise.resolve(slow.events.some((e) => e.instance?.id === 'after-resync')),
      5000,
      'a live event after the snapshot',
    );
    await eventually(
      () => Promise.resolve(fast.events.some((e) => e.instance?.id === 'after-resync')),
      5000,
      'the reading subscriber’s live event',
    );
    expect(await metric(op, 'maxine_event_stream_resyncs_total{reason="slow_consumer"}')).toBe(1);
    expect(await metric(op, 'maxine_snapshots_total{outcome="completed"}')).toBe(1);
  }, 60_000);

  it('that does not drain within the stall limit is dropped (1013), and the others go on', async () => {
    op = await startOperator({
      config: { eventStreamBufferBytes: BUFFER, snapshotStallMs: 1000 },
    });
    const url = `${op.wsUrl}/api/v1/events`;
    const fast = await subscribe(url);
    const slow = await subscribe(url);
    slow.ws.pause();
    await burst(op, 4000, 'c');
    await eventually(
      async () =>
        (await metric(op!, 'maxine_event_stream_drops_total{reason="slow_consumer"}')) === 1,
      10_000,
      'the slow subscriber dropped',
    );
    await eventually(
      async () =>
        (await metric(op!, 'maxine_event_stream_subscribers{transport="websocket"}')) === 1,
      10_000,
      'only the reading subscriber left',
    );
    expect(
      op.logs.some(
        (l) => l.msg === 'slow event subscriber did not drain in time; closed with 1013',
      ),
    ).toBe(true);
    expect(await metric(op, 'maxine_event_stream_queued_bytes')).toBe(0);
    register(op, { id: 'later' });
    await eventually(
      () => Promise.resolve(fast.events.some((e) => e.instance?.id === 'later')),
      5000,
      'the reading subscriber still served',
    );
    expect(fast.ws.readyState).toBe(WebSocket.OPEN);
  }, 30_000);
});

describe('instance filters', () => {
  it('zone=, version= and metadata= select the instance events and the snapshot’s instances', async () => {
    op = await startOperator();
    register(op, { id: 'a-gold', zone: 'a', version: 'v2', metadata: { tier: 'gold' } });
    register(op, { id: 'b-gold', zone: 'b', version: 'v2', metadata: { tier: 'gold' } });
    register(op, { id: 'a-plain', zone: 'a', version: 'v2' });
    const sub = await subscribe(
      `${op.wsUrl}/api/v1/events?snapshot=true&zone=a&version=v2&metadata=tier=gold&metadata=team=pay`,
    );
    await eventually(
      () => Promise.resolve(sub.events.some((e) => e.type === 'resync_end')),
      5000,
      'the snapshot',
    );
    // The snapshot has no instance matching both metadata pairs yet.
    const items = (): string[] =>
      sub.events.flatMap((e) =>
        e.type === 'resync_chunk' ? e.data.services.flatMap((s) => s.items.map((i) => i.id)) : [],
      );
    expect(items()).toEqual([]);
    register(op, {
      id: 'a-both',
      zone: 'a',
      version: 'v2',
      metadata: { tier: 'gold', team: 'pay' },
    });
    register(op, {
      id: 'b-both',
      zone: 'b',
      version: 'v2',
      metadata: { tier: 'gold', team: 'pay' },
    });
    register(op, { id: 'a-v1', zone: 'a', version: 'v1', metadata: { tier: 'gold', team: 'pay' } });
    op.operator.registry.deregister('a-both');
    await eventually(
      () => Promise.resolve(sub.events.some((e) => e.type === 'service_deregistered')),
      5000,
      'the deregistration',
    );
    const instanceEvents = sub.events.filter((e) => e.instance !== undefined);
    expect(instanceEvents.map((e) => [e.type, e.instance?.id])).toEqual([
      ['service_registered', 'a-both'],
      ['service_deregistered', 'a-both'],
    ]);

    // A second subscriber with one pair: the snapshot lists only the matching instances.
    const gold = await subscribe(`${op.wsUrl}/api/v1/events?snapshot=true&metadata=tier=gold`);
    await eventually(
      () => Promise.resolve(gold.events.some((e) => e.type === 'resync_end')),
      5000,
      'the second snapshot',
    );
    const goldItems = gold.events.flatMap((e) =>
      e.type === 'resync_chunk' ? e.data.services.flatMap((s) => s.items.map((i) => i.id)) : [],
    );
    expect(goldItems.sort()).toEqual(['a-gold', 'a-v1', 'b-both', 'b-gold']);
  });

  it.each([
    ['a metadata filter without "="', 'metadata=tier'],
    ['a metadata key given twice', 'metadata=tier=gold&metadata=tier=silver'],
    ['zone given twice', 'zone=a&zone=b'],
    ['a malformed zone', 'zone=a%20b'],
  ])('refuses %s with 400 VALIDATION_FAILED', async (_name, query) => {
    op ??= await startOperator();
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(`${op!.wsUrl}/api/v1/events?${query}`);
      ws.once('unexpected-response', (_req, r) => {
        let body = '';
        r.on('data', (d: Buffer) => (body += d.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      ws.once('open', () => reject(new Error('accepted')));
      ws.once('error', () => undefined);
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
  });
});
