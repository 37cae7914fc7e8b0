/**
 * The shared redis store against a real redis-server, in process: two operators (registry,
 * event log, store each) on one Redis agree on registrations, events and their numbers, a
 * heartbeat at one renews a lease the other expires, the replay log outlives a restart, a
 * lost subscription is taken up again with a reload, and a start without Redis recovers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry as PromRegistry } from 'prom-client';
import { pino } from 'pino';
import { serviceSpecSchema } from '../../common/resources.js';
import { startRedis } from '../../test/helpers/redis.js';
import type { RedisServer } from '../../test/helpers/redis.js';
import { MaxineError } from '../../common/errors.js';
import { EventLog } from '../events/log.js';
import { ManualClock } from '../registry/clock.js';
import { Registry } from '../registry/registry.js';
import { SharedRedisStore } from './redis-shared.js';
import { RedisConnection } from './resp.js';

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

interface Op {
  registry: Registry;
  events: EventLog;
  store: SharedRedisStore;
  clock: ManualClock;
  lines: Record<string, unknown>[];
}
const open: Op[] = [];
afterEach(async () => {
  for (const op of open.splice(0)) await op.store.close();
});

/** One operator: what operator.ts composes, without HTTP. */
async function operator(
  prefix: string,
  identity: string,
  url = server.url,
  massExpiryMinInstances = 100,
): Promise<Op> {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  // Lease times are real ones (Redis expires keys on its own clock); the tests move them on.
  const clock = new ManualClock(Date.now());
  const events = new EventLog(1000, clock, 0);
  const store: SharedRedisStore = new SharedRedisStore({
    url,
    prefix,
    renewIntervalMs: 50,
    timeoutMs: 1000,
    lockMs: 1000,
    graceMs: 60_000,
    maxEvents: 1000,
    maxBytes: 1024 * 1024,
    events,
    now: () => clock.now(),
    logger,
    prom: new PromRegistry(),
    retryMs: 100,
    identity,
  });
  const registry = new Registry({
    clock,
    emit: (draft) => store.publish(draft),
    allowUndeclared: true,
    defaultTtlSeconds: 30,
    defaultRemoveAfterSeconds: 60,
    massExpiryThreshold: 0.9,
    massExpiryMinInstances,
  });
  const kept = await store.load();
  registry.restore(kept.instances);
  store.attach(registry);
  const op = { registry, events, store, clock, lines };
  open.push(op);
  return op;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const web = (host: string) => ({
  namespace: 'shop',
  service: 'web',
  host,
  port: 80,
  weight: 1,
});

describe('SharedRedisStore (two operators, one real redis-server)', () => {
  it('a registration at A is discovered at B, with the same events under the same numbers', async () => {
    const a = await operator('s1', 'A');
    const b = await operator('s1', 'B');
    const started = Date.now();
    const { instance } = a.registry.register(web('10.0.0.1'));
    await a.store.committed();
    await until(() => b.registry.getInstance(instance.id) !== undefined);
    const delayMs = Date.now() - started;
    expect(delayMs).toBeLessThan(1000);
    // B registers too: one sequence, whoever made the change.
    const other = b.registry.register(web('10.0.0.2')).instance;
    await b.store.committed();
    await until(() => a.registry.getInstance(other.id) !== undefined);
    await until(() => a.events.lastSeq === b.events.lastSeq && a.events.lastSeq > 0);
    const seen = (op: Op) =>
      (op.events.since(op.events.firstSeq - 1) ?? []).map((e) => [e.seq, e.type]);
    expect(seen(a)).toEqual(seen(b));
    const seqs = seen(a).map(([seq]) => Number(seq));
    expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] ?? 0) + i)); // continuous
    expect(seen(a).map(([, type]) => type)).toEqual([
      'service_updated', // the undeclared service, made by A's registration
      'service_registered',
      'service_registered',
    ]);
    // B applied A's change without publishing it again.
    expect(await raw.command(['XLEN', 's1:events'])).toBe(3);

    b.registry.deregister(instance.id);
    await b.store.committed();
    await until(() => a.registry.getInstance(instance.id) === undefined);
    expect(await raw.command(['EXISTS', `s1:i:${instance.id}`])).toBe(0);
  });

  it("keys expire with the lease plus the grace; a heartbeat at B renews A's lease, written coalesced", async () => {
    const a = await operator('s2', 'A');
    const b = await operator('s2', 'B');
    const { instance } = a.registry.register(web('10.0.0.3'));
    await a.store.committed();
    const pttl = Number(await raw.command(['PTTL', `s2:i:${instance.id}`]));
    // 30 s lease + 60 s grace + one 50 ms renewal interval, from the registration.
    expect(pttl).toBeGreaterThan(90_000 - 2000);
    expect(pttl).toBeLessThanOrEqual(90_050);
    await until(() => b.registry.getInstance(instance.id) !== undefined);

    // 20 heartbeats at B within one renewal interval: one write, not twenty.
    for (const op of [a, b]) op.clock.advance(20_000);
    const before = Number(await raw.command(['INFO', 'commandstats']).then(evalCalls));
    const renewedAt = b.clock.now();
    for (let i = 0; i < 20; i++) b.registry.heartbeat(instance.id, {});
    await until(async () => {
      const value = await raw.command(['GET', `s2:i:${instance.id}`]);
      return String(value).includes(`"lastHeartbeat":${renewedAt}`);
    });
    const after = Number(await raw.command(['INFO', 'commandstats']).then(evalCalls));
    expect(after - before).toBe(1);

    // A leads expiry; 40 s after registering, its own view has the lease lapsed, but the
    // renewal in Redis (B's heartbeat) keeps it passing.
    let swept = 0;
    a.store.runExpiry(() => {
      swept += 1;
      a.registry.sweep();
    }, 50);
    await until(() => a.store.isExpiryLeader);
    for (const op of [a, b]) op.clock.advance(20_000);
    await until(() => swept >= 2);
    expect(a.registry.getInstance(instance.id)?.health.status).toBe('passing');
    expect(b.store.isExpiryLeader).toBe(false);

    // No more heartbeats: the lease lapses, then the grace passes, and the leader removes it;
    // B learns it from the stream.
    for (const op of [a, b]) op.clock.advance(100_000);
    await until(() => b.registry.getInstance(instance.id) === undefined);
    expect(a.registry.getInstance(instance.id)).toBeUndefined();
    const types = (b.events.since(b.events.firstSeq - 1) ?? []).map((e) => e.type);
    expect(types).toEqual([
      'service_updated',
      'service_registered',
      'service_unhealthy',
      'service_deregistered',
      'service_deleted',
    ]);
  });

  it('a record written after its lease and grace (held by the mass-expiry guard) is not deleted by a past expiry', async () => {
    const a = await operator('s9', 'A', server.url, 1);
    const { instance } = a.registry.register(web('10.0.0.4'));
    await a.store.committed();
    a.clock.advance(200_000); // past 30 s lease + 60 s grace
    const swept = a.registry.sweep(); // the guard holds the removal; the lapse is written
    expect(swept).toMatchObject({ lapsed: 1, removed: 0, guardActive: true });
    await a.store.committed();
    expect(await raw.command(['GET', `s9:i:${instance.id}`])).toContain('"lastHeartbeat"');
    const pttl = Number(await raw.command(['PTTL', `s9:i:${instance.id}`]));
    // One renewal interval from the operator's now (200 s ahead of Redis's clock here), not
    // the lease's end + grace (90 s after registering, already past in the operator's view).
    expect(pttl).toBeGreaterThan(150_000);
    expect(pttl).toBeLessThanOrEqual(200_050);
  });

  it('the expiry lock passes to the other operator when its holder is gone', async () => {
    const a = await operator('s3', 'A');
    a.store.runExpiry(() => undefined, 50);
    await until(() => a.store.isExpiryLeader);
    const b = await operator('s3', 'B');
    b.store.runExpiry(() => undefined, 50);
    await new Promise((r) => setTimeout(r, 500));
    expect(b.store.isExpiryLeader).toBe(false);
    expect(await raw.command(['GET', 's3:expiry-lock'])).toBe('A');
    await a.store.close();
    open.splice(open.indexOf(a), 1);
    await until(() => b.store.isExpiryLeader, 3000);
    expect(b.lines.some((l) => l.msg === 'expiry lock taken: this operator expires leases')).toBe(
      true,
    );
  });

  it('since= means the same after a restart: the replay log is read back from Redis', async () => {
    const a = await operator('s4', 'A');
    for (let i = 0; i < 5; i++) a.registry.register(web(`10.0.1.${i}`));
    await a.store.committed();
    await until(() => a.events.size === 6);
    const before = a.events.since(a.events.firstSeq + 1) ?? [];
    await a.store.close();
    open.splice(open.indexOf(a), 1);
    const again = await operator('s4', 'A2');
    expect(again.events.lastSeq).toBe(a.events.lastSeq);
    expect(again.events.since(a.events.firstSeq + 1)).toEqual(before);
    expect(again.registry.stats().instances.total).toBe(5);
  });

  it('the replay log in Redis is bounded by count', async () => {
    const a = await operator('s5', 'A');
    for (let i = 0; i < 1200; i++)
      a.registry.register(web(`10.1.${Math.floor(i / 200)}.${i % 200}`));
    await a.store.committed();
    expect(Number(await raw.command(['XLEN', 's5:events']))).toBe(1000);
  });

  it('a lost subscription is taken up again and every registration reloaded, logged', async () => {
    const a = await operator('s6', 'A');
    const b = await operator('s6', 'B');
    const { instance } = a.registry.register(web('10.0.0.9'));
    await a.store.committed();
    await until(() => b.registry.getInstance(instance.id) !== undefined);
    // A change B cannot read from the stream (made in Redis while B is not subscribed).
    await killReaders();
    await raw.command(['DEL', `s6:i:${instance.id}`]);
    await until(() => b.registry.getInstance(instance.id) === undefined, 5000);
    const lost = b.lines.find(
      (l) =>
        l.msg === 'shared event stream lost: subscribing again, then reloading every registration',
    );
    expect(lost).toBeDefined();
    expect(
      b.lines.find((l) => l.msg === 'registrations reloaded from the shared store'),
    ).toMatchObject({
      reason: 'resubscribed',
      removed: 1,
    });
  });

  it('a sequence gone back in Redis (failover to a replica that missed writes) is raised, and what was missed reloaded', async () => {
    const a = await operator('s8', 'A');
    const b = await operator('s8', 'B');
    a.registry.register(web('10.0.0.1'));
    await a.store.committed();
    await until(() => b.events.lastSeq === a.events.lastSeq && a.events.lastSeq > 0);
    const before = a.events.lastSeq;
    // What a replica without the last writes would hold: an older sequence, no stream.
    await raw.command(['SET', 's8:seq', '5']);
    await raw.command(['DEL', 's8:events']);
    const lost = b.registry.register(web('10.0.0.2')).instance;
    await b.store.committed();
    await until(() => a.registry.getInstance(lost.id) !== undefined);
    expect(a.lines.find((l) => l.reason === 'sequence-back')).toBeDefined();
    expect(Number(await raw.command(['GET', 's8:seq']))).toBeGreaterThanOrEqual(before);
    // Numbered above what every reader read again: seen as events everywhere.
    const next = b.registry.register(web('10.0.0.3')).instance;
    await b.store.committed();
    await until(() => a.events.since(before)?.some((e) => e.instance?.id === next.id) === true);
  });

  it('starts without Redis: not available, writes refused, then loads and writes once it answers', async () => {
    const later = await startRedis();
    const port = later.port;
    await later.stop();
    const a = await operator('s7', 'A', `redis://127.0.0.1:${port}`);
    expect(a.store.available()).toBe(false);
    const { instance } = a.registry.register(web('10.0.0.7'));
    const refused = await a.store.committed().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(MaxineError);
    expect((refused as MaxineError).code).toBe('STORE_UNAVAILABLE');
    const back = await startRedis(port);
    try {
      await until(() => a.store.available(), 5000);
      const conn = new RedisConnection('127.0.0.1', port, 2000);
      await until(async () => (await conn.command(['EXISTS', `s7:i:${instance.id}`])) === 1);
      conn.close();
      await a.store.close();
      open.splice(open.indexOf(a), 1);
    } finally {
      await back.stop();
    }
  });
});

/** How many scripts Redis ran (each batch of the store is one). */
function evalCalls(info: unknown): number {
  return Number(/cmdstat_eval:calls=(\d+)/.exec(String(info))?.[1] ?? 0);
}

/** Drops every connection blocked in XREAD (the stream readers). */
async function killReaders(): Promise<void> {
  const list = String(await raw.command(['CLIENT', 'LIST']));
  for (const line of list.split('\n')) {
    if (!line.includes('cmd=xread')) continue;
    const id = /\bid=(\d+)/.exec(line)?.[1];
    if (id !== undefined) await raw.command(['CLIENT', 'KILL', 'ID', id]);
  }
}

describe('SharedRedisStore config versions', () => {
  it('keeps them in <prefix>:config: an operator started later keeps the version of the same config', async () => {
    const a = await operator('cfg-shared', 'A');
    a.store.keepConfigs(a.registry.configs);
    a.registry.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '1' } }));
    a.registry.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '2' } }));
    await until(async () => {
      const text = await raw.command(['HGET', 'cfg-shared:config', 'shop/cart']);
      return typeof text === 'string' && (JSON.parse(text) as { version: number }).version === 2;
    });
    const b = await operator('cfg-shared', 'B');
    b.registry.configs.seed((await b.store.load()).configs ?? []);
    b.registry.upsertService('shop', 'cart', serviceSpecSchema.parse({ config: { A: '2' } }));
    expect(b.registry.snapshotOf('shop', 'cart')?.configVersion).toBe(2);
  });
});
