/**
 * The registry over real sockets: register → discover → heartbeat → expiry → removal,
 * deregistration, and the events of each on a real WebSocket, including resumption.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '../../operator/registry/clock.js';
import { api, EventClient, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let clock: ManualClock;
const clients: EventClient[] = [];

beforeEach(async () => {
  clock = new ManualClock();
  op = await startOperator({
    clock,
    config: {
      sweepIntervalMs: 50,
      defaultTtlSeconds: 10,
      removeAfterSeconds: 20,
      eventLogSize: 16,
    },
  });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await op.stop();
});

async function subscribe(query = ''): Promise<EventClient> {
  const client = await EventClient.connect(`${op.wsUrl}/api/v1/events${query}`);
  clients.push(client);
  return client;
}

const register = (host: string, extra: Record<string, unknown> = {}) =>
  api(op.url, 'POST', '/api/v1/instances', {
    service: 'api',
    namespace: 'shop',
    host,
    port: 8080,
    ...extra,
  });

describe('instance lifecycle', () => {
  it('register → discover → heartbeat → expiry → removal, with an event for each step', async () => {
    const events = await subscribe(
      '?services=shop/api&types=service_registered,service_heartbeat,service_unhealthy,service_deregistered',
    );
    const reg = await register('10.0.0.1', { zone: 'a', metadata: { build: '42' } });
    expect(reg.status).toBe(201);
    const id = reg.body.instance.id as string;
    expect(reg.body.instance).toMatchObject({
      host: '10.0.0.1',
      port: 8080,
      health: { status: 'passing' },
      lease: { ttlSeconds: 10 },
    });

    const found = await api(op.url, 'GET', '/api/v1/discover/shop/api?zone=a&meta.build=42');
    expect(found.status).toBe(200);
    expect(found.body.instance).toMatchObject({ id, host: '10.0.0.1', health: 'passing' });

    clock.advance(9_000);
    const hb = await api(op.url, 'PUT', `/api/v1/instances/${id}/heartbeat`, { status: 'passing' });
    expect(hb.status).toBe(200);
    expect(hb.body.instance.lastHeartbeat).toBe(new Date(clock.now()).toISOString());

    clock.advance(10_001); // past the TTL: the sweeper marks it critical
    await eventually(
      async () => (await api(op.url, 'GET', '/api/v1/discover/shop/api')).status === 404,
    );
    const critical = await api(op.url, 'GET', `/api/v1/instances/${id}`);
    expect(critical.body.instance.health).toMatchObject({
      status: 'critical',
      reason: 'lease-expired',
    });

    clock.advance(20_000); // past the grace: removed
    await eventually(
      async () => (await api(op.url, 'GET', `/api/v1/instances/${id}`)).status === 404,
    );
    const late = await api(op.url, 'PUT', `/api/v1/instances/${id}/heartbeat`, {});
    expect(late.status).toBe(404);
    expect(late.body.error.code).toBe('INSTANCE_NOT_FOUND');

    await events.until((e) => e.some((x) => x.type === 'service_deregistered'));
    expect(events.types()).toEqual([
      'service_registered',
      'service_heartbeat',
      'service_unhealthy',
      'service_deregistered',
    ]);
    const gone = events.events.at(-1)!;
    expect(gone).toMatchObject({
      service: { namespace: 'shop', name: 'api' },
      instance: { id },
      data: { reason: 'expired' },
    });
    expect(typeof gone.seq).toBe('number');
    expect(Number.isNaN(Date.parse(gone.time))).toBe(false);
  });

  it('deregister removes the instance at once and says so', async () => {
    const events = await subscribe('?types=service_deregistered');
    const { body } = await register('10.0.0.2');
    const del = await api(op.url, 'DELETE', `/api/v1/instances/${body.instance.id}`);
    expect(del.status).toBe(204);
    expect((await api(op.url, 'GET', '/api/v1/discover/shop/api')).status).toBe(404);
    expect((await api(op.url, 'DELETE', `/api/v1/instances/${body.instance.id}`)).status).toBe(404);
    await events.until((e) => e.length === 1);
    expect(events.events[0]).toMatchObject({
      type: 'service_deregistered',
      data: { reason: 'deregistered' },
    });
  });

  it('a failing check reported with the heartbeat takes the instance out of discovery and back', async () => {
    const events = await subscribe('?types=service_unhealthy,service_healthy');
    const a = (await register('10.0.0.3')).body.instance.id as string;
    await register('10.0.0.4');
    await api(op.url, 'PUT', `/api/v1/instances/${a}/heartbeat`, {
      status: 'critical',
      output: 'exit 2',
    });
    const all = await api(op.url, 'GET', '/api/v1/discover/shop/api?all=true');
    expect(all.body.instances.map((i: { host: string }) => i.host)).toEqual(['10.0.0.4']);
    await api(op.url, 'PUT', `/api/v1/instances/${a}/heartbeat`, { status: 'passing' });
    await events.until((e) => e.length === 2);
    expect(events.types()).toEqual(['service_unhealthy', 'service_healthy']);
  });
});

describe('event stream resumption', () => {
  it('a client that reconnects with since=SEQ gets exactly what it missed', async () => {
    const first = await subscribe('?services=shop/*');
    await register('10.0.1.1');
    await first.until((e) => e.some((x) => x.type === 'service_registered'));
    const lastSeen = first.events.at(-1)!.seq;
    await first.close();

    await register('10.0.1.2');
    await register('10.0.1.3');
    await api(op.url, 'POST', '/api/v1/instances', {
      service: 'other',
      namespace: 'elsewhere',
      host: 'x',
      port: 1,
    });

    const resumed = await subscribe(`?services=shop/*&since=${lastSeen}`);
    await resumed.until((e) => e.filter((x) => x.type === 'service_registered').length === 2);
    const hosts = resumed.events
      .filter((e) => e.type === 'service_registered')
      .map((e) => e.instance?.host);
    expect(hosts).toEqual(['10.0.1.2', '10.0.1.3']);
    expect(resumed.events.every((e) => e.seq > lastSeen && e.service?.namespace === 'shop')).toBe(
      true,
    );
    // ...and then live events.
    await register('10.0.1.4');
    await resumed.until((e) => e.some((x) => x.instance?.host === '10.0.1.4'));
  });

  it('a client too far behind gets a resync snapshot, then deltas', async () => {
    for (let i = 0; i < 20; i++) await register(`10.0.2.${i}`); // the log holds 16 events
    const client = await subscribe('?services=shop/api&since=1');
    await client.until((e) => e.some((x) => x.type === 'resync_end'));
    expect(client.types()).toEqual(['resync_begin', 'resync_chunk', 'resync_end']);
    const [begin, chunk, end] = client.events;
    expect(new Set([begin!.seq, chunk!.seq, end!.seq]).size).toBe(1);
    const services = (chunk!.data as { services?: unknown }).services as {
      name: string;
      items: unknown[];
    }[];
    expect(services).toHaveLength(1);
    expect(services[0]?.items).toHaveLength(20);
    expect(end!.data).toEqual({ services: 1, chunks: 1, instances: 20 });
    await register('10.0.2.99');
    await client.until((e) => e.some((x) => x.instance?.host === '10.0.2.99'));
    expect(client.events.at(-1)!.seq).toBeGreaterThan(end!.seq);
  });

  it('snapshot=true starts with the current state', async () => {
    await register('10.0.3.1');
    const client = await subscribe('?snapshot=true');
    await client.until((e) => e.some((x) => x.type === 'resync_end'));
    expect(client.events[1]).toMatchObject({
      type: 'resync_chunk',
      data: { services: [{ name: 'api', items: [{ host: '10.0.3.1' }] }] },
    });
  });

  it('refuses a bad subscription before the upgrade with the catalog error', async () => {
    const plain = await api(op.url, 'GET', '/api/v1/events');
    expect(plain.status).toBe(426);
    expect(plain.body.error.code).toBe('UPGRADE_REQUIRED');
    await expect(EventClient.connect(`${op.wsUrl}/api/v1/events?since=abc`)).rejects.toThrow(/400/);
    await expect(EventClient.connect(`${op.wsUrl}/api/v1/events?types=nonsense`)).rejects.toThrow(
      /400/,
    );
    await expect(EventClient.connect(`${op.wsUrl}/api/v1/nowhere`)).rejects.toThrow(/404/);
  });
});
