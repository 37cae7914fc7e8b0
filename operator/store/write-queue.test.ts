import { describe, expect, it } from '@jest/globals';
import { Counter, Registry as PromRegistry } from 'prom-client';
import { pino } from 'pino';
import type { MaxineEvent } from '../../common/wire.js';
import { WriteQueue } from './write-queue.js';
import type { BatchWriter } from './write-queue.js';

/** A writer that records its batches and fails while `failing` is set. */
class FakeWriter implements BatchWriter {
  batches: string[][] = [];
  recoveries = 0;
  failing: Error | undefined;
  hasPending?: () => boolean;
  write(ids: readonly string[]): Promise<void> {
    if (this.failing !== undefined) return Promise.reject(this.failing);
    this.batches.push([...ids]);
    return Promise.resolve();
  }
  recover(): Promise<void> {
    this.recoveries += 1;
    return Promise.resolve();
  }
  afterBatch(): Promise<void> {
    return Promise.resolve();
  }
}

function queueWith(renewIntervalMs = 60_000) {
  const writer = new FakeWriter();
  const errors = new Counter({
    name: 'errors',
    help: 'h',
    labelNames: ['op'],
    registers: [new PromRegistry()],
  });
  const queue = new WriteQueue(writer, {
    renewIntervalMs,
    retryMs: 20,
    logger: pino({ level: 'silent' }),
    errors,
    where: {},
  });
  queue.start();
  return { writer, queue };
}

const event = (type: string, id: string, source = 'registration'): MaxineEvent =>
  (type === 'service_heartbeat'
    ? { seq: 1, time: '', type, service: { namespace: 'a', name: 'b' }, data: { id } }
    : {
        seq: 1,
        time: '',
        type,
        service: { namespace: 'a', name: 'b' },
        instance: { id, source },
        data: {},
      }) as unknown as MaxineEvent;

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('WriteQueue', () => {
  it.each<[string, MaxineEvent[], string[][]]>([
    ['one change', [event('service_registered', 'x')], [['x']]],
    [
      'many changes of one instance in a tick, as one',
      [
        event('service_registered', 'x'),
        event('service_unhealthy', 'x'),
        event('service_healthy', 'x'),
      ],
      [['x']],
    ],
    [
      'changes of several instances, in one batch',
      [event('service_registered', 'x'), event('service_deregistered', 'y')],
      [['x', 'y']],
    ],
    ['a heartbeat: nothing until the renewal interval', [event('service_heartbeat', 'x')], []],
    ['a pod: nothing', [event('service_registered', 'p', 'kubernetes')], []],
    [
      'an event about no instance: nothing',
      [{ type: 'service_updated' } as unknown as MaxineEvent],
      [],
    ],
  ])('writes %s', async (_name, events, batches) => {
    const { writer, queue } = queueWith();
    for (const e of events) queue.observe(e);
    await queue.committed();
    await tick();
    expect(writer.batches).toEqual(batches);
    await queue.close();
  });

  it('answers committed() once the batch holding the change is written', async () => {
    const { writer, queue } = queueWith();
    queue.observe(event('service_registered', 'x'));
    const done = queue.committed();
    expect(writer.batches).toEqual([]);
    await done;
    expect(writer.batches).toEqual([['x']]);
  });

  it('writes renewals coalesced on the interval, and pending ones at close', async () => {
    const { writer, queue } = queueWith(30);
    for (let i = 0; i < 5; i++) queue.observe(event('service_heartbeat', 'x'));
    expect(queue.queued).toEqual({ changes: 0, renewals: 1 });
    await new Promise((r) => setTimeout(r, 80));
    expect(writer.batches).toEqual([['x']]);
    queue.observe(event('service_heartbeat', 'y'));
    await queue.close();
    expect(writer.batches).toEqual([['x'], ['y']]);
  });

  it('refuses while the writer fails, keeps the change, and writes it after recovering', async () => {
    const { writer, queue } = queueWith();
    writer.failing = new Error('EIO');
    queue.observe(event('service_registered', 'x'));
    await expect(queue.committed()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(queue.available()).toBe(false);
    await expect(queue.committed()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    writer.failing = undefined;
    const deadline = Date.now() + 5000;
    while (!queue.available() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await queue.committed();
    expect(writer.recoveries).toBe(1);
    expect(writer.batches).toEqual([['x']]);
    await queue.close();
  });

  it("writes for the writer's own pending work (events to publish) with no id queued, and says which ids wait", async () => {
    const { writer, queue } = queueWith();
    let pending = true;
    writer.hasPending = () => pending;
    const write = writer.write.bind(writer);
    writer.write = (ids) => {
      pending = false;
      return write(ids);
    };
    queue.schedule();
    const deadline = Date.now() + 5000;
    while (writer.batches.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    expect(writer.batches).toEqual([[]]);
    writer.failing = new Error('EIO');
    queue.mark(['x']);
    expect(queue.isQueued('x')).toBe(true);
    expect(queue.isQueued('y')).toBe(false);
    await expect(queue.committed()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(queue.isQueued('x')).toBe(true); // kept for the retry
    writer.failing = undefined;
    await queue.close();
  });
});
