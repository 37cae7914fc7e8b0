/**
 * The sidecar's registry copy against a real operator: it syncs a snapshot that arrives in
 * many chunks with a per-message limit far below the snapshot's size, and when the operator
 * closes its stream with 4401 (the JWT expired) it reads its token again and reconnects.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { registerRequestSchema } from '../../common/wire.js';
import type { RegistryEventDraft } from '../../common/wire.js';
import { createLogger } from '../../common/logger.js';
import { RegistryMirror } from '../../sidecar/mirror.js';
import { jwtIssuer } from '../helpers/auth.js';
import { eventually, logSink, startOperator } from '../helpers/operator.js';
import type { LogLine, TestOperator } from '../helpers/operator.js';

let op: TestOperator | undefined;
let mirror: RegistryMirror | undefined;
let work: string | undefined;

afterEach(async () => {
  mirror?.stop();
  mirror = undefined;
  await op?.stop();
  op = undefined;
  if (work !== undefined) await rm(work, { recursive: true, force: true });
  work = undefined;
});

function sidecarLogger(): { logger: ReturnType<typeof createLogger>; lines: LogLine[] } {
  const { sink, logs } = logSink();
  return { logger: createLogger('debug', sink, 'sidecar'), lines: logs };
}

describe('the sidecar mirror and the chunked event stream', () => {
  it('syncs a snapshot many times larger than its message limit', async () => {
    op = await startOperator({ config: { snapshotChunkBytes: 16 * 1024 } });
    for (let i = 0; i < 3000; i++)
      op.operator.registry.register(
        registerRequestSchema.parse({
          id: `i-${i}`,
          service: `svc-${i % 5}`,
          namespace: 'shop',
          host: `10.1.${i >> 8}.${i & 255}`,
          port: 80,
          ttlSeconds: 3600,
          metadata: { blob: 'y'.repeat(300) },
        }),
      );
    const { logger, lines } = sidecarLogger();
    mirror = new RegistryMirror({ operatorUrl: op.url, logger, maxMessageBytes: 32 * 1024 });
    mirror.start();
    await mirror.synchronised();
    const total = [0, 1, 2, 3, 4]
      .map((k) => mirror!.state.instances('shop', `svc-${k}`).length)
      .reduce((a, b) => a + b, 0);
    expect(total).toBe(3000);
    expect(mirror.status()).toMatchObject({ connected: true, synced: true, reconnects: 0 });
    const synced = lines.find((l) => l.msg === 'registry copy synced');
    expect(synced).toMatchObject({ services: 5, instances: 3000 });
    expect(synced?.chunks as number).toBeGreaterThan(50);
  });

  it('on 4401 reads its token again and reconnects', async () => {
    work = await mkdtemp(join(tmpdir(), 'maxine-mirror-'));
    const issuer = await jwtIssuer(work);
    op = await startOperator({ config: { anonymous: false, ...issuer.config } });
    const mint = (expSeconds: number) =>
      issuer.sign({ sub: 'sidecar-test', expires: Math.floor(Date.now() / 1000) + expSeconds });
    const tokenFile = join(work, 'token');
    await writeFile(tokenFile, await mint(2));
    let reads = 0;
    const { logger, lines } = sidecarLogger();
    mirror = new RegistryMirror({
      operatorUrl: op.url,
      logger,
      token: async () => {
        reads += 1;
        return (await readFile(tokenFile, 'utf8')).trim();
      },
    });
    mirror.start();
    await mirror.synchronised();
    expect(reads).toBe(1);
    // The kubelet rotates the projected token in place before the old one expires.
    await writeFile(tokenFile, await mint(600));
    await eventually(
      () =>
        Promise.resolve(
          lines.some((l) => l.msg.includes('token expired or revoked') && l.code === 4401),
        ),
      6000,
      'the 4401 close',
    );
    await eventually(
      () => Promise.resolve(reads === 2 && mirror!.status().connected),
      5000,
      'a reconnect with the token read again',
    );
    expect(mirror.status().reconnects).toBe(1);
    const closes = op.logs.filter((l) => l.msg.startsWith('event stream closed: its credential'));
    expect(closes).toHaveLength(1);
  });

  it('skips an event that fails the envelope schema, logs its issues and counts it', async () => {
    op = await startOperator();
    const reg = (id: string, host: string) =>
      op!.operator.registry.register(
        registerRequestSchema.parse({ id, service: 'api', namespace: 'shop', host, port: 80 }),
      );
    reg('good-1', '10.3.0.1');
    const { logger, lines } = sidecarLogger();
    mirror = new RegistryMirror({ operatorUrl: op.url, logger });
    mirror.start();
    await mirror.synchronised();
    // A producer bug the type check would have caught: an instance with no address.
    const broken = { ...op.operator.registry.getInstance('good-1')!, id: 'broken' };
    delete (broken as Partial<typeof broken>).host;
    op.operator.events.append({
      type: 'service_registered',
      service: { namespace: 'shop', name: 'api' },
      instance: broken,
      data: { renewed: false },
    } as unknown as RegistryEventDraft);
    reg('good-2', '10.3.0.2');
    await eventually(
      () => Promise.resolve(mirror!.state.instances('shop', 'api').length === 2),
      3000,
      'the valid event after the invalid one',
    );
    expect(
      mirror.state
        .instances('shop', 'api')
        .map((i) => i.id)
        .sort(),
    ).toEqual(['good-1', 'good-2']);
    expect(mirror.status()).toMatchObject({ connected: true, reconnects: 0, invalidEvents: 1 });
    const warned = lines.find((l) => l.msg === 'event stream sent an invalid event; skipped it');
    expect(warned).toMatchObject({ type: 'service_registered', invalidEvents: 1 });
    expect(warned?.issues).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: 'instance.host' })]),
    );
    // The copy resumes after the last event applied, not after the skipped one.
    expect(mirror.state.lastSeq).toBe(op.operator.events.lastSeq);
  });

  it('abandons a snapshot whose chunk fails the schema, counts it, and asks for a new one', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    const urls: string[] = [];
    const item = (id: string, port: unknown) => ({
      id,
      service: { namespace: 'shop', name: 'api' },
      host: '10.4.0.1',
      port,
      weight: 1,
      metadata: {},
      health: { status: 'passing' },
      source: 'registration',
      registeredAt: '2026-01-01T00:00:00.000Z',
    });
    server.on('connection', (ws, req) => {
      urls.push(req.url ?? '');
      const send = (type: string, data: unknown) =>
        ws.send(JSON.stringify({ seq: 7, type, time: '2026-01-01T00:00:00.000Z', data }));
      send('resync_begin', { services: 1 });
      // The first connection's chunk has an instance whose port is a string.
      const port = urls.length === 1 ? '80' : 80;
      send('resync_chunk', {
        services: [{ namespace: 'shop', name: 'api', items: [item('a', port)] }],
      });
      send('resync_end', { services: 1, chunks: 1, instances: 1 });
    });
    try {
      const { logger, lines } = sidecarLogger();
      const { port } = server.address() as AddressInfo;
      mirror = new RegistryMirror({
        operatorUrl: `http://127.0.0.1:${port}`,
        logger,
        reconnectBaseMs: 10,
      });
      mirror.start();
      await mirror.synchronised();
      expect(urls).toHaveLength(2);
      expect(urls.every((u) => u.includes('snapshot=true'))).toBe(true);
      expect(mirror.state.instances('shop', 'api').map((i) => i.port)).toEqual([80]);
      expect(mirror.status()).toMatchObject({ synced: true, invalidEvents: 1, reconnects: 1 });
      const warned = lines.find((l) => l.msg.startsWith('event stream sent an invalid snapshot'));
      expect(warned).toMatchObject({ type: 'resync_chunk', seq: 7 });
    } finally {
      mirror?.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the sidecar mirror and the slow-consumer marker', () => {
  it('keeps its copy on a resync marker and swaps in the snapshot that follows, on the same connection', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    const time = '2026-01-01T00:00:00.000Z';
    const item = (id: string) => ({
      id,
      service: { namespace: 'shop', name: 'api' },
      host: '10.5.0.1',
      port: 80,
      weight: 1,
      metadata: {},
      health: { status: 'passing' },
      source: 'registration',
      registeredAt: time,
    });
    let connections = 0;
    let marked: () => void = () => undefined;
    server.on('connection', (ws) => {
      connections += 1;
      const send = (seq: number, type: string, data: unknown) =>
        ws.send(JSON.stringify({ seq, type, time, data }));
      const snapshot = (seq: number, ids: string[]) => {
        send(seq, 'resync_begin', { services: 1, intentionDefault: 'allow' });
        send(seq, 'resync_chunk', {
          services: [{ namespace: 'shop', name: 'api', items: ids.map(item) }],
        });
        send(seq, 'resync_end', { services: 1, chunks: 1, instances: ids.length });
      };
      snapshot(7, ['a']);
      marked = () => {
        send(7, 'resync', { reason: 'slow_consumer', epoch: 'e1' });
        snapshot(9, ['a', 'b']);
      };
    });
    try {
      const { logger, lines } = sidecarLogger();
      const { port } = server.address() as AddressInfo;
      mirror = new RegistryMirror({ operatorUrl: `http://127.0.0.1:${port}`, logger });
      mirror.start();
      await mirror.synchronised();
      expect(mirror.state.instances('shop', 'api').map((i) => i.id)).toEqual(['a']);
      marked();
      await eventually(
        () => Promise.resolve(mirror!.state.lastSeq === 9),
        3000,
        'the snapshot after the marker',
      );
      expect(
        mirror.state
          .instances('shop', 'api')
          .map((i) => i.id)
          .sort(),
      ).toEqual(['a', 'b']);
      expect(mirror.status()).toMatchObject({ connected: true, reconnects: 0, invalidEvents: 0 });
      expect(connections).toBe(1);
      expect(
        lines.find((l) => l.msg.startsWith('operator marked the event stream behind')),
      ).toMatchObject({ seq: 7, reason: 'slow_consumer' });
    } finally {
      mirror?.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the sidecar mirror when its scope changes', () => {
  it('asks for a snapshot of the new scope, even when events of the old stream were still applied', async () => {
    // A stream that sends a snapshot and, in the same socket write, an event after it: the
    // event reaches the mirror after the rescope terminated that stream.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    const urls: URL[] = [];
    const time = new Date().toISOString();
    wss.on('connection', (ws, req) => {
      urls.push(new URL(req.url ?? '/', 'http://x'));
      const socket = (ws as unknown as { _socket: Socket })._socket;
      socket.cork();
      for (const message of [
        { seq: 10, type: 'resync_begin', time, data: { services: 0, intentionDefault: 'allow' } },
        { seq: 10, type: 'resync_end', time, data: { services: 0, chunks: 0, instances: 0 } },
        {
          seq: 11,
          type: 'acl_changed',
          time,
          service: { namespace: 'shop', name: '*' },
          data: { acl: { namespace: 'shop', name: 'a' }, change: 'applied' },
        },
      ])
        ws.send(JSON.stringify(message));
      socket.uncork();
    });
    await new Promise((resolve) => wss.once('listening', resolve));
    const { logger } = sidecarLogger();
    let scope = ['shop/web'];
    mirror = new RegistryMirror({
      operatorUrl: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      logger,
      scope: () => scope,
      reconnectBaseMs: 10,
      onResync: () => {
        scope = ['pay/ledger', 'shop/web'];
        mirror?.rescope();
      },
    });
    try {
      mirror.start();
      await eventually(() => Promise.resolve(urls.length >= 2), 5000, 'the second connection');
      expect(urls[1]!.searchParams.get('services')).toBe('pay/ledger,shop/web');
      expect(urls[1]!.searchParams.get('snapshot')).toBe('true');
      expect(urls[1]!.searchParams.get('since')).toBeNull();
    } finally {
      mirror.stop();
      await new Promise((resolve) => wss.close(resolve));
    }
  });
});
