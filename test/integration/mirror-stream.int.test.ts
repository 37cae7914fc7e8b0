/**
 * The sidecar's registry copy against a real operator: it syncs a snapshot that arrives in
 * many chunks with a per-message limit far below the snapshot's size, and when the operator
 * closes its stream with 4401 (the JWT expired) it reads its token again and reconnects.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerRequestSchema } from '../../common/wire.js';
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
});
