/** The redis store against a real redis-server, in process: what it reads back and writes. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry as PromRegistry } from 'prom-client';
import { pino } from 'pino';
import { startRedis } from '../../test/helpers/redis.js';
import type { RedisServer } from '../../test/helpers/redis.js';
import { EventLog } from '../events/log.js';
import { ManualClock } from '../registry/clock.js';
import { Registry } from '../registry/registry.js';
import { RedisStore } from './redis.js';
import { RedisConnection } from './resp.js';
import { serviceSpecSchema } from '../../common/resources.js';

let server: RedisServer;
let raw: RedisConnection;
beforeAll(async () => {
  server = await startRedis();
  raw = new RedisConnection('127.0.0.1', server.port, 2000);
});
afterAll(async () => {
  raw.close();
  await server.stop();
});

function storeWith(prefix: string, lines: Record<string, unknown>[] = []) {
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return new RedisStore({
    url: server.url,
    prefix,
    renewIntervalMs: 60_000,
    timeoutMs: 1000,
    logger,
    prom: new PromRegistry(),
  });
}

describe('RedisStore', () => {
  it('writes registrations, raises the sequence only, and a new store reads them back', async () => {
    const clock = new ManualClock();
    const events = new EventLog(100, clock, 5000);
    const registry = new Registry({
      clock,
      emit: (e) => void events.append(e),
      allowUndeclared: true,
      defaultTtlSeconds: 30,
      defaultRemoveAfterSeconds: 60,
      massExpiryThreshold: 0.5,
      massExpiryMinInstances: 10,
    });
    // A sequence above this operator's: its writes must not lower it.
    await raw.command(['SET', 't1:seq', '999999999']);
    const a = storeWith('t1');
    await a.load();
    a.attach(registry, events);
    const kept = registry.register({
      namespace: 'shop',
      service: 'web',
      host: 'h',
      port: 1,
      weight: 1,
    }).instance;
    const gone = registry.register({
      namespace: 'shop',
      service: 'web',
      host: 'g',
      port: 1,
      weight: 1,
    }).instance;
    registry.deregister(gone.id);
    await a.committed();
    expect(events.lastSeq).toBeLessThan(999999999);
    await a.close();
    const b = storeWith('t1');
    const state = await b.load();
    expect(state.instances.map((i) => i.id)).toEqual([kept.id]);
    expect(state.instances[0]).toEqual(registry.persisted(kept.id));
    expect(state.seq).toBe(999999999);
    expect(await raw.command(['GET', 't1:seq'])).toBe('999999999');
    await b.close();
  });

  it('leaves out a value that is not a valid record, saying which', async () => {
    await raw.command(['HSET', 't2:instances', 'bad', '{"id":"bad"}', 'worse', 'not json']);
    const lines: Record<string, unknown>[] = [];
    const store = storeWith('t2', lines);
    expect((await store.load()).instances).toEqual([]);
    expect(lines.map((l) => l.instance).sort()).toEqual(['bad', 'worse']);
    expect(lines[0]).toMatchObject({
      key: 't2:instances',
      msg: expect.stringContaining('left out'),
    });
    await store.close();
  });
});

describe('RedisStore config versions', () => {
  const registryOn = (clock: ManualClock) =>
    new Registry({
      clock,
      emit: () => undefined,
      allowUndeclared: true,
      defaultTtlSeconds: 30,
      defaultRemoveAfterSeconds: 60,
      massExpiryThreshold: 0.5,
      massExpiryMinInstances: 10,
    });

  it('keeps each service config record in <prefix>:config; a restarted registry keeps its versions', async () => {
    const clock = new ManualClock();
    const first = registryOn(clock);
    first.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '1' } }));
    const a = storeWith('cfg1');
    await a.load();
    a.attach(first, new EventLog(100, clock));
    a.keepConfigs(first.configs);
    // Written at attach (applied before) and on each change.
    first.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '2' } }));
    const stored = async () =>
      JSON.parse(String(await raw.command(['HGET', 'cfg1:config', 'shop/cart']))) as {
        version: number;
      };
    const deadline = Date.now() + 5000;
    while ((await stored()).version !== 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(await stored()).toMatchObject({ version: 2, entries: [{ version: 1 }, { version: 2 }] });
    await a.close();

    const b = storeWith('cfg1');
    const kept = await b.load();
    const second = registryOn(clock);
    second.configs.seed(kept.configs ?? []);
    second.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '2' } }));
    expect(second.snapshotOf('shop', 'cart')?.configVersion).toBe(2);
    second.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '3' } }));
    expect(second.snapshotOf('shop', 'cart')?.configVersion).toBe(3);
    await b.close();
  });
});
