/**
 * One sidecar mirror, two operators (as two replicas: each numbers its own event log, here
 * from the same start so their sequence ranges overlap) behind one address that switches
 * between them: a `since=` from one replica's log reaching the other gets a snapshot of that
 * other, never a replay of its events numbered above it; a resume on the same replica stays a
 * replay. The epoch travels in the handshake header and in `resync_begin`. An operator
 * restarted on the same `file` store continues its epoch: the copy resumes with a replay.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createLogger } from '../../common/logger.js';
import { registerRequestSchema, STREAM_EPOCH_HEADER } from '../../common/wire.js';
import { ManualClock } from '../../operator/registry/clock.js';
import { RegistryMirror } from '../../sidecar/mirror.js';
import { eventually, logSink, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { startTcpFront } from '../helpers/tcp-front.js';
import type { TcpFront } from '../helpers/tcp-front.js';

const ops: TestOperator[] = [];
let mirror: RegistryMirror | undefined;
let front: TcpFront | undefined;

afterEach(async () => {
  mirror?.stop();
  mirror = undefined;
  await front?.close();
  front = undefined;
  for (const op of ops.splice(0)) await op.stop();
});

/** Waits for a synchronous condition. */
const until = (check: () => boolean, ms = 2000, what?: string): Promise<boolean> =>
  eventually(() => Promise.resolve(check()), ms, what);

const portOf = (op: TestOperator): number => Number(new URL(op.url).port);

function register(op: TestOperator, service: string, count: number): void {
  for (let i = 0; i < count; i++)
    op.operator.registry.register(
      registerRequestSchema.parse({
        id: `${service}-${i}`,
        service,
        namespace: 'shop',
        host: `10.0.0.${i + 1}`,
        port: 80,
        ttlSeconds: 3600,
      }),
    );
}

describe('since= across replicas (stream epoch)', () => {
  it('a since from one replica gets a snapshot at the other; a resume on the same replica replays', async () => {
    // Same clock start: both logs number from the same base, so A's seqs fall in B's range.
    const a = await startOperator({ clock: new ManualClock() });
    const b = await startOperator({ clock: new ManualClock() });
    ops.push(a, b);
    expect(a.operator.events.lastSeq).toBe(b.operator.events.lastSeq);
    expect(a.operator.events.epoch).not.toBe(b.operator.events.epoch);
    register(a, 'only-on-a', 2);
    register(b, 'only-on-b', 6);
    expect(b.operator.events.lastSeq).toBeGreaterThan(a.operator.events.lastSeq);

    front = await startTcpFront(portOf(a));
    const { sink, logs } = logSink();
    let resyncs = 0;
    mirror = new RegistryMirror({
      operatorUrl: front.url,
      logger: createLogger('debug', sink, 'sidecar'),
      reconnectBaseMs: 20,
      reconnectMaxMs: 100,
      onResync: () => (resyncs += 1),
    });
    mirror.start();
    await mirror.synchronised();
    expect(mirror.state.instances('shop', 'only-on-a')).toHaveLength(2);
    register(a, 'only-on-a-later', 1);
    await until(() => mirror!.state.instances('shop', 'only-on-a-later').length === 1, 5000);
    const seqFromA = mirror.status().lastSeq!;
    expect(seqFromA).toBeLessThan(b.operator.events.lastSeq);

    // To B: its log holds events above A's seq, which are not what the mirror missed.
    front.to(portOf(b));
    await until(() => resyncs === 2, 5000, 'a snapshot from B');
    expect(mirror.state.instances('shop', 'only-on-b')).toHaveLength(6);
    expect(mirror.state.instances('shop', 'only-on-a')).toHaveLength(0);
    expect(mirror.state.instances('shop', 'only-on-a-later')).toHaveLength(0);
    expect(b.logs).toContainEqual(
      expect.objectContaining({
        msg: 'since= is from another event log (another replica or process): sending a snapshot',
        since: seqFromA,
        epoch: a.operator.events.epoch,
        ours: b.operator.events.epoch,
      }),
    );
    expect(logs.filter((l) => l.msg === 'registry copy synced').at(-1)).toMatchObject({
      epoch: b.operator.events.epoch,
    });

    // A drop and a reconnect to B itself: a replay of what was missed, no snapshot.
    register(b, 'only-on-b-later', 1);
    await until(() => mirror!.state.instances('shop', 'only-on-b-later').length === 1, 5000);
    front.to(portOf(b));
    await until(() => mirror!.status().reconnects >= 2 && mirror!.status().connected);
    register(b, 'only-on-b-after-drop', 1);
    await until(() => mirror!.state.instances('shop', 'only-on-b-after-drop').length === 1, 5000);
    expect(resyncs).toBe(2);

    // And back to A: B's seq is not A's either.
    front.to(portOf(a));
    await until(() => resyncs === 3, 5000, 'a snapshot from A');
    expect(mirror.state.instances('shop', 'only-on-a')).toHaveLength(2);
    expect(mirror.state.instances('shop', 'only-on-b')).toHaveLength(0);
  });

  it('every handshake names the epoch; resync_begin carries it', async () => {
    const a = await startOperator();
    ops.push(a);
    const ws = new WebSocket(`${a.wsUrl}/api/v1/events?snapshot=true`);
    const header = new Promise<string | undefined>((resolve) =>
      ws.on('upgrade', (res) => resolve(res.headers[STREAM_EPOCH_HEADER] as string | undefined)),
    );
    const first = new Promise<{ type: string; data: { epoch?: string } }>((resolve) =>
      ws.once('message', (data: Buffer) =>
        resolve(JSON.parse(data.toString()) as { type: string; data: { epoch?: string } }),
      ),
    );
    expect(await header).toBe(a.operator.events.epoch);
    expect(await first).toMatchObject({
      type: 'resync_begin',
      data: { epoch: a.operator.events.epoch },
    });
    ws.close();

    // A malformed epoch is bad input: 400 at the handshake.
    const bad = await new Promise<number>((resolve, reject) => {
      const req = request(`${a.url}/api/v1/events?since=1&epoch=no%20spaces`, {
        headers: {
          connection: 'upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(bad).toBe(400);
  });
});

describe('since= across an operator restart with the file store', () => {
  it("a sidecar's copy resumes with a replay, not a snapshot, when the restarted operator kept its log", async () => {
    const storeDir = await mkdtemp(join(tmpdir(), 'maxine-mirror-store-'));
    const resources = await mkdtemp(join(tmpdir(), 'maxine-mirror-res-'));
    const config = { store: 'file' as const, storeDir, resources };
    try {
      const a = await startOperator({ config });
      ops.push(a);
      register(a, 'before-restart', 2);
      front = await startTcpFront(portOf(a));
      const { sink } = logSink();
      let resyncs = 0;
      mirror = new RegistryMirror({
        operatorUrl: front.url,
        logger: createLogger('debug', sink, 'sidecar'),
        reconnectBaseMs: 20,
        reconnectMaxMs: 100,
        onResync: () => (resyncs += 1),
      });
      mirror.start();
      await mirror.synchronised();
      expect(resyncs).toBe(1);

      // Missed while the sidecar is cut off, then the operator restarts on the same store.
      front.to(0);
      register(a, 'missed', 1);
      ops.splice(ops.indexOf(a), 1);
      await a.stop();
      const b = await startOperator({ config });
      ops.push(b);
      expect(b.operator.events.epoch).toBe(a.operator.events.epoch);
      front.to(portOf(b));
      await until(() => mirror!.state.instances('shop', 'missed').length === 1, 5000, 'replay');
      expect(mirror.state.instances('shop', 'before-restart')).toHaveLength(2);
      expect(resyncs).toBe(1);
    } finally {
      await rm(storeDir, { recursive: true, force: true });
      await rm(resources, { recursive: true, force: true });
    }
  });
});
