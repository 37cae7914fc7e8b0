import { describe, expect, it } from '@jest/globals';
import { ClientError } from '../../../common/client.js';
import { splitDiscoverQuery } from '../../../common/discovery.js';
import { maxineEventSchema } from '../../../common/wire.js';
import type { Instance, MaxineEvent, RegistryEvent, ResyncMessage } from '../../../common/wire.js';
import { ServiceCache } from './cache.js';

const time = '2026-12-06T10:00:00.000Z';
const ref = { namespace: 'shop', name: 'web' };

function instance(id: string, status: 'passing' | 'critical' = 'passing', zone?: string): Instance {
  return {
    id,
    service: ref,
    host: '10.0.0.1',
    port: Number(id.replace(/\D/g, '')) || 80,
    weight: 1,
    metadata: {},
    health: { status },
    source: 'registration',
    registeredAt: time,
    ...(zone !== undefined && { zone }),
  };
}

/** An event through the wire schema, as the stream hands it over. */
function ev(e: Record<string, unknown>): MaxineEvent {
  return maxineEventSchema.parse({ time, ...e });
}

function snapshot(seq: number, items: Instance[]): ResyncMessage[] {
  return [
    ev({ seq, type: 'resync_begin', data: { services: 1 } }),
    ev({
      seq,
      type: 'resync_chunk',
      data: { services: [{ ...ref, declared: false, items: items.slice(0, 1) }] },
    }),
    // A service's continuation part: more items of the same service.
    ev({ seq, type: 'resync_chunk', data: { services: [{ ...ref, items: items.slice(1) }] } }),
    ev({ seq, type: 'resync_end', data: { services: 1, chunks: 2, instances: items.length } }),
  ] as ResyncMessage[];
}

function ids(cache: ServiceCache, query = {}): string[] {
  const body = JSON.parse(
    cache.discover('shop', 'web', splitDiscoverQuery({ ...query, all: true })).toString(),
  ) as { instances: { id: string }[] };
  return body.instances.map((i) => i.id);
}

function synced(items: Instance[], limits = {}): ServiceCache {
  const cache = new ServiceCache(limits);
  for (const m of snapshot(1, items)) cache.applyResync(m);
  return cache;
}

describe('ServiceCache', () => {
  it('swaps a chunked snapshot in only at resync_end', () => {
    const cache = new ServiceCache();
    const [begin, first, second, end] = snapshot(1, [instance('a1'), instance('a2')]);
    expect(cache.applyResync(begin!)).toBe(false);
    cache.applyResync(first!);
    cache.applyResync(second!);
    expect(cache.has('shop', 'web')).toBe(false);
    expect(cache.applyResync(end!)).toBe(true);
    expect(cache.state).toBe('synced');
    expect(ids(cache)).toEqual(['a1', 'a2']);
    expect(cache.size).toEqual({ services: 1, instances: 2 });
  });

  it('keeps its old copy when a snapshot is aborted, and ignores parts without their beginning', () => {
    const cache = synced([instance('a1')]);
    const [begin, chunk, , end] = snapshot(2, [instance('b1'), instance('b2')]);
    cache.applyResync(begin!);
    cache.applyResync(chunk!);
    cache.abortResync();
    expect(cache.applyResync(end!)).toBe(false);
    expect(ids(cache)).toEqual(['a1']);
  });

  it.each<[string, Record<string, unknown>[], string[]]>([
    [
      'registered adds',
      [{ type: 'service_registered', instance: instance('a2'), data: {} }],
      ['a1', 'a2'],
    ],
    [
      'deregistered removes',
      [{ type: 'service_deregistered', instance: instance('a1'), data: { reason: 'expired' } }],
      [],
    ],
    [
      'unhealthy hides, healthy shows again',
      [
        {
          type: 'service_unhealthy',
          instance: instance('a1', 'critical'),
          data: { status: 'critical', previous: 'passing' },
        },
      ],
      [],
    ],
    [
      'a heartbeat event changes nothing',
      [{ type: 'service_heartbeat', data: { id: 'a1', status: 'critical' } }],
      ['a1'],
    ],
  ])('applies deltas: %s', (_name, events, expected) => {
    const cache = synced([instance('a1')]);
    let seq = 2;
    for (const e of events) cache.apply(ev({ seq: seq++, service: ref, ...e }) as RegistryEvent);
    const body = (): string[] => {
      try {
        return ids(cache);
      } catch (err) {
        expect((err as { code?: string }).code).toBe('NO_HEALTHY_INSTANCE');
        return [];
      }
    };
    expect(body()).toEqual(expected);
  });

  it('forgets a deleted service, answers blocked discovery with SERVICE_BLOCKED', () => {
    const cache = synced([instance('a1')]);
    cache.apply(
      ev({
        seq: 2,
        type: 'service_updated',
        service: ref,
        data: {
          declared: true,
          generation: 1,
          blocked: { registration: false, discovery: true, reason: 'incident' },
          spec: { blocked: { discovery: true, reason: 'incident' } },
        },
      }) as RegistryEvent,
    );
    expect(() => ids(cache)).toThrow(expect.objectContaining({ code: 'SERVICE_BLOCKED' }));
    cache.apply(
      ev({
        seq: 3,
        type: 'service_deleted',
        service: ref,
        data: { declared: true },
      }) as RegistryEvent,
    );
    expect(cache.has('shop', 'web')).toBe(false);
    expect(cache.size).toEqual({ services: 0, instances: 0 });
  });

  it('filters like the operator (zone)', () => {
    const cache = synced([instance('a1', 'passing', 'z1'), instance('a2', 'passing', 'z2')]);
    expect(ids(cache, { zone: 'z2' })).toEqual(['a2']);
  });

  it('ignores deltas before its first snapshot', () => {
    const cache = new ServiceCache();
    cache.apply(
      ev({
        seq: 2,
        type: 'service_registered',
        service: ref,
        instance: instance('a1'),
        data: {},
      }) as RegistryEvent,
    );
    expect(cache.has('shop', 'web')).toBe(false);
  });

  it.each([
    ['a snapshot over maxInstances', { maxInstances: 1 }, [instance('a1'), instance('a2')], 0],
    ['a delta over maxInstances', { maxInstances: 1 }, [instance('a1')], 1],
  ])('refuses %s with BUFFER_FULL and empties itself', (_name, limits, items, deltas) => {
    const cache = new ServiceCache(limits);
    let error: unknown;
    try {
      for (const m of snapshot(1, items)) cache.applyResync(m);
      for (let i = 0; i < deltas; i++)
        cache.apply(
          ev({
            seq: 5 + i,
            type: 'service_registered',
            service: ref,
            instance: instance(`x${i}`),
            data: {},
          }) as RegistryEvent,
        );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).code).toBe('BUFFER_FULL');
    expect(cache.state).toBe('overflowed');
    expect(cache.has('shop', 'web')).toBe(false);
    expect(cache.size.instances).toBe(0);
  });
});
