/**
 * A subscriber that reads as fast as events come is never taken for a slow consumer: the bytes
 * the fan-out holds back for the turn's one write per socket (events/write-batch.ts) are not
 * the client's lag. A burst of events made in one turn of the event loop (a mass
 * deregistration, a reconcile applying many changes) larger than a small
 * `--event-stream-buffer-bytes` reaches a reading subscriber whole, without a resync marker.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { get } from 'node:http';
import type { ClientRequest } from 'node:http';
import WebSocket from 'ws';
import { registerRequestSchema } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import { eventually, startOperator } from '../../test/helpers/operator.js';
import type { TestOperator } from '../../test/helpers/operator.js';

let op: TestOperator | undefined;
const sockets: WebSocket[] = [];
const requests: ClientRequest[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const req of requests.splice(0)) req.destroy();
  await op?.stop();
  op = undefined;
});

function subscribe(url: string): Promise<MaxineEvent[]> {
  const ws = new WebSocket(url);
  sockets.push(ws);
  const events: MaxineEvent[] = [];
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as MaxineEvent));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(events));
    ws.once('error', reject);
  });
}

/** A Server-Sent Events subscriber: each `data:` line's envelope. */
function subscribeSse(url: string): Promise<MaxineEvent[]> {
  const events: MaxineEvent[] = [];
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => {
        text += chunk;
        const lines = text.split('\n');
        text = lines.pop() ?? '';
        for (const line of lines)
          if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as MaxineEvent);
      });
      resolve(events);
    });
    requests.push(req);
    req.on('error', reject);
  });
}

function burst(o: TestOperator): void {
  // ~1.2 KiB per event, 200 events in one turn: ~240 KiB, far below what loopback takes.
  for (let i = 0; i < 200; i++)
    o.operator.registry.register(
      registerRequestSchema.parse({
        service: 'web',
        namespace: 'shop',
        id: `w-${i}`,
        host: '10.0.0.1',
        port: 8080,
        ttlSeconds: 3600,
        metadata: { blob: 'x'.repeat(1000) },
      }),
    );
}

/** Makes the burst and expects every event of it, in order, and no resync marker. */
async function expectWholeBurst(o: TestOperator, events: MaxineEvent[]): Promise<void> {
  const first = o.operator.events.lastSeq;
  burst(o);
  const last = o.operator.events.lastSeq;
  await eventually(
    () => Promise.resolve(events.some((e) => e.seq === last || e.type === 'resync')),
    10_000,
    'the burst',
  );
  expect(events.filter((e) => e.type === 'resync')).toEqual([]);
  await eventually(() => Promise.resolve(events.at(-1)?.seq === last), 10_000, 'every event');
  expect(events.map((e) => e.seq)).toEqual(
    Array.from({ length: last - first }, (_, i) => first + 1 + i),
  );
}

describe('a one-turn burst to a reading subscriber', () => {
  it.each([16 * 1024, 64 * 1024])(
    'with a %d-byte send buffer arrives whole, without a resync marker',
    async (bufferBytes) => {
      op = await startOperator({ config: { eventStreamBufferBytes: bufferBytes } });
      const events = await subscribe(`${op.wsUrl}/api/v1/events?services=shop/*`);
      await expectWholeBurst(op, events);
    },
  );

  it('over Server-Sent Events with a 16384-byte send buffer arrives whole, without a resync marker', async () => {
    op = await startOperator({ config: { eventStreamBufferBytes: 16 * 1024 } });
    const events = await subscribeSse(`${op.url}/api/v1/events?services=shop/*`);
    await expectWholeBurst(op, events);
  });
});
