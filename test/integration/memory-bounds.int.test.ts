/**
 * Memory has a bound, over real sockets: renewals and heartbeats of an instance with large
 * metadata leave one metadata object and a byte-bounded event log; registry limits answer
 * 429/413 with catalog codes, and a refused registration changes nothing.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from '@jest/globals';
import { keepAliveClient } from '../helpers/keep-alive.js';
import { api, EventClient, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator | undefined;
const clients: EventClient[] = [];
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await op?.stop();
  op = undefined;
});

/** One sample of a metric from the Prometheus text (labels as written, e.g. `{limit="ports"}`). */
async function metric(base: string, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Runs `count` calls of `fn`, `width` at a time. */
async function inParallel(count: number, width: number, fn: (i: number) => Promise<void>) {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next;
      next += 1;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/** The heap in use after a full collection (gc exposed at run time for a fresh context). */
function liveHeap(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** 63 entries of 52 characters: about 4 KB of JSON, under the 4 KiB default limit. */
const LARGE_METADATA = Object.fromEntries(
  Array.from({ length: 63 }, (_, i) => [`key-${String(i).padStart(2, '0')}`, 'v'.repeat(52)]),
);

describe('bounded memory', () => {
  it('10,000 renewals and 10,000 heartbeats of an instance with ~4 KB metadata: one metadata object, a byte-bounded log, small heartbeat events', async () => {
    const eventLogBytes = 1024 * 1024;
    op = await startOperator({ config: { eventLogBytes, addressRateLimit: 0 } });
    const { url, operator } = op;
    expect(Buffer.byteLength(JSON.stringify(LARGE_METADATA))).toBeGreaterThan(4000);
    const body = {
      service: 'big',
      namespace: 'shop',
      host: '10.0.0.1',
      port: 8080,
      metadata: LARGE_METADATA,
    };
    const first = await api(url, 'POST', '/api/v1/instances', body);
    expect(first.status).toBe(201);
    const id = first.body.instance.id as string;

    // 20,000 requests below: over 8 kept-alive node:http connections, not fetch (2.5x cheaper).
    const http = keepAliveClient(8);
    closers.push(() => http.close());
    const heapBefore = liveHeap();
    await inParallel(10_000, 8, async () => {
      const res = await http.send(`${url}/api/v1/instances`, 'POST', body);
      expect(res.status).toBe(200);
    });

    // What stays is the log's budget and small change, not 10,000 copies of ~4 KB (~60 MB).
    const retained = liveHeap() - heapBefore;
    expect(retained).toBeLessThan(eventLogBytes + 24 * 1024 * 1024);

    // The log holds at most its byte budget; it evicted the rest.
    const bytes = await metric(url, 'maxine_event_log_bytes');
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(eventLogBytes);
    expect(await metric(url, 'maxine_event_log_events')).toBe(operator.events.size);
    expect(operator.events.size).toBeLessThan(10_000);
    expect(
      await metric(url, 'maxine_event_log_evictions_total', '{bound="bytes"}'),
    ).toBeGreaterThan(0);
    // Every held event shares the instance's one metadata object: no per-renewal copies.
    const held = operator.events.since(operator.events.firstSeq - 1) ?? [];
    const objects = new Set(held.flatMap((e) => (e.instance ? [e.instance.metadata] : [])));
    expect(objects.size).toBe(1);

    // Heartbeats: nothing stored, and a subscriber that asked for them gets small events.
    const watcher = await EventClient.connect(
      `${op.wsUrl}/api/v1/events?services=shop/big&types=service_heartbeat`,
    );
    clients.push(watcher);
    const seq = operator.events.lastSeq;
    const sizes: number[] = [];
    await inParallel(10_000, 8, async () => {
      const res = await http.send(`${url}/api/v1/instances/${id}/heartbeat`, 'PUT');
      expect(res.status).toBe(200);
      sizes.push(res.text.length);
    });
    await watcher.until((e) => e.length === 10_000, 20_000);
    expect(operator.events.lastSeq).toBe(seq);
    const wire = watcher.events.map((e) => JSON.stringify(e).length);
    expect(Math.max(...wire)).toBeLessThan(400);
    expect(watcher.events[0]).toMatchObject({
      type: 'service_heartbeat',
      data: { id, status: 'passing' },
    });
    expect(watcher.events.some((e) => e.instance !== undefined)).toBe(false);
    // The heartbeat's answer is the full instance, as before.
    expect(Math.min(...sizes)).toBeGreaterThan(4000);
    const objectsAfter = new Set(
      (operator.events.since(operator.events.firstSeq - 1) ?? []).flatMap((e) =>
        e.instance ? [e.instance.metadata] : [],
      ),
    );
    expect(objectsAfter.size).toBe(1);
  }, 120_000);

  it('registry limits answer 429/413 with catalog codes, name the limit, and change nothing', async () => {
    op = await startOperator({
      config: {
        maxInstancesPerService: 2,
        maxInstancesPerPrincipal: 3,
        maxMetadataBytes: 256,
        maxPorts: 1,
      },
    });
    const { url } = op;
    const events = await EventClient.connect(`${op.wsUrl}/api/v1/events`);
    clients.push(events);
    const register = (service: string, host: string, extra: Record<string, unknown> = {}) =>
      api(url, 'POST', '/api/v1/instances', { service, namespace: 'ns', host, port: 80, ...extra });
    const state = async () =>
      JSON.stringify([
        (await api(url, 'GET', '/api/v1/services')).body,
        (await api(url, 'GET', '/api/v1/services/ns/api')).body,
      ]);

    expect((await register('api', 'h1')).status).toBe(201);
    expect((await register('api', 'h2')).status).toBe(201);
    await events.until((e) => e.filter((x) => x.type === 'service_registered').length === 2);
    const before = await state();
    const seen = events.events.length;

    const cases = [
      {
        res: await register('api', 'h3'),
        status: 429,
        code: 'LIMIT_EXCEEDED',
        details: {
          limit: 'instancesPerService',
          flag: '--max-instances-per-service',
          max: 2,
          current: 2,
        },
      },
      {
        res: await register('web', 'h1', { metadata: { k: 'x'.repeat(300) } }),
        status: 413,
        code: 'METADATA_TOO_LARGE',
        details: { limit: 'metadataBytes', flag: '--max-metadata-bytes', max: 256, actual: 308 },
      },
      {
        res: await register('web', 'h1', { ports: { http: 80, admin: 81 } }),
        status: 413,
        code: 'TOO_MANY_PORTS',
        details: { limit: 'ports', flag: '--max-ports', max: 1, actual: 2 },
      },
    ];
    for (const c of cases) {
      expect(c.res.status).toBe(c.status);
      expect(c.res.body.error).toMatchObject({ code: c.code, details: c.details });
      expect(c.res.headers.get('retry-after')).toBeNull();
    }
    expect(cases[0]?.res.body.error.details.retry).toMatch(/no Retry-After/);
    // Nothing changed: no service `web` was created, no instance added, no event sent.
    expect(await state()).toBe(before);
    expect((await api(url, 'GET', '/api/v1/services/ns/web')).status).toBe(404);

    // The caller (anonymous here) may hold three instances: the fourth is refused.
    expect((await register('web', 'h1')).status).toBe(201);
    const mine = await register('db', 'h1');
    expect(mine.status).toBe(429);
    expect(mine.body.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      details: { limit: 'instancesPerPrincipal', max: 3, current: 3 },
    });
    expect(mine.body.error.message).toContain('anonymous');
    expect((await api(url, 'GET', '/api/v1/services/ns/db')).status).toBe(404);
    await events.until((e) => e.some((x) => x.service?.name === 'web'));
    // The first event after the refusals is web's creation: the refusals sent none.
    expect(events.events[seen]).toMatchObject({
      type: 'service_updated',
      service: { name: 'web' },
    });
    expect(events.events.some((e) => e.service?.name === 'db')).toBe(false);

    for (const [limit, n] of [
      ['instancesPerService', 1],
      ['metadataBytes', 1],
      ['ports', 1],
      ['instancesPerPrincipal', 1],
      ['instances', 0],
    ] as const) {
      expect(await metric(url, 'maxine_registry_limit_refusals_total', `{limit="${limit}"}`)).toBe(
        n,
      );
    }
    expect(await metric(url, 'maxine_registry_limit', '{limit="instancesPerService"}')).toBe(2);
    expect(op.logs).toContainEqual(
      expect.objectContaining({
        msg: 'registration refused by a registry limit',
        by: 'anonymous',
        code: 'LIMIT_EXCEEDED',
      }),
    );
    // The refused registration names its service as every log line names a resource.
    expect(op.logs).toContainEqual(
      expect.objectContaining({
        msg: 'registration refused by a registry limit',
        kind: 'MaxineService',
        namespace: 'ns',
        name: 'db',
        code: 'LIMIT_EXCEEDED',
      }),
    );
  });
});
