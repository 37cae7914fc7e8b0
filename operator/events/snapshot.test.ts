import { describe, expect, it } from '@jest/globals';
import { resyncMessageSchema } from '../../common/wire.js';
import type { Instance, ResyncMessage, ServiceSummary } from '../../common/wire.js';
import { snapshotMessages } from './snapshot.js';
import type { SnapshotServiceSource } from './snapshot.js';

const inst = (ns: string, name: string, i: number, metaBytes = 40): Instance => ({
  id: `${name}-${i}`,
  service: { namespace: ns, name },
  host: `10.0.${Math.floor(i / 250)}.${i % 250}`,
  port: 8080,
  weight: 1,
  metadata: { note: 'é'.repeat(metaBytes / 2) }, // two UTF-8 bytes per character
  health: { status: 'passing' },
  source: 'registration',
  registeredAt: '2026-01-01T00:00:00.000Z',
});

const summary = (namespace: string, name: string, total: number): ServiceSummary => ({
  namespace,
  name,
  declared: true,
  instances: { total, passing: total, warning: 0, critical: 0 },
});

/** A registry of `sizes[k]` instances in service k; returns the plan's pieces. */
function registry(sizes: number[], metaBytes?: number) {
  const services = sizes.map((n, k) => ({
    summary: summary('shop', `svc-${k}`, n),
    spec: { config: { k: String(k) } },
    items: Array.from({ length: n }, (_, i) => inst('shop', `svc-${k}`, i, metaBytes)),
  }));
  const byName = new Map<string, SnapshotServiceSource>(
    services.map((s) => [s.summary.name, s] as const),
  );
  return {
    services,
    refs: services.map((s) => ({ namespace: 'shop', name: s.summary.name })),
    detail: (_ns: string, name: string) => byName.get(name),
  };
}

function decode(messages: string[]): ResyncMessage[] {
  return messages.map((m) => resyncMessageSchema.parse(JSON.parse(m)));
}

describe('snapshotMessages', () => {
  it.each([
    ['empty registry', [], 4096],
    ['one small service', [3], 4096],
    ['one service over many chunks', [400], 8192],
    ['many services, some empty', [0, 50, 0, 120, 7, 300], 4096],
    ['a large chunk bound', [500, 500], 1024 * 1024],
  ])('%s: every chunk within the bound, reassembled exactly', (_name, sizes, maxBytes) => {
    const r = registry(sizes);
    const raw = [
      ...snapshotMessages({
        seq: 42,
        time: '2026-01-01T00:00:00.000Z',
        services: r.refs,
        detail: r.detail,
        maxBytes,
      }),
    ];
    for (const m of raw) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(maxBytes);
    const messages = decode(raw);
    expect(messages.every((m) => m.seq === 42)).toBe(true);
    expect(messages[0]).toMatchObject({ type: 'resync_begin', data: { services: sizes.length } });
    const end = messages.at(-1)!;
    expect(end.type).toBe('resync_end');
    const chunks = messages.slice(1, -1);
    expect(chunks.every((m) => m.type === 'resync_chunk')).toBe(true);
    expect(end.data).toEqual({
      services: sizes.length,
      chunks: chunks.length,
      instances: sizes.reduce((a, b) => a + b, 0),
    });
    // Reassemble: a part naming a service seen before continues it.
    const got = new Map<string, { spec: unknown; declared: unknown; items: Instance[] }>();
    for (const chunk of chunks) {
      if (chunk.type !== 'resync_chunk') continue;
      for (const part of chunk.data.services) {
        const seen = got.get(part.name);
        if (seen === undefined)
          got.set(part.name, { spec: part.spec, declared: part.declared, items: [...part.items] });
        else {
          expect(part.spec).toBeUndefined();
          seen.items.push(...part.items);
        }
      }
    }
    expect([...got.keys()]).toEqual(r.services.map((s) => s.summary.name));
    for (const s of r.services) {
      const g = got.get(s.summary.name)!;
      expect(g.items).toEqual(s.items);
      expect(g.spec).toEqual(s.spec);
      expect(g.declared).toBe(true);
    }
  });

  it('serializes lazily: nothing past the chunk being taken is read', () => {
    const r = registry([10, 10, 10]);
    const asked: string[] = [];
    const messages = snapshotMessages({
      seq: 1,
      time: 't',
      services: r.refs,
      detail: (ns, name) => {
        asked.push(name);
        return r.detail(ns, name);
      },
      maxBytes: 4096,
    });
    messages.next(); // resync_begin
    expect(asked).toEqual([]);
    messages.next(); // the first chunk
    expect(asked.length).toBeLessThan(3);
  });

  it('skips a service deleted since the list was taken', () => {
    const r = registry([2, 2]);
    const messages = decode([
      ...snapshotMessages({
        seq: 1,
        time: 't',
        services: [...r.refs, { namespace: 'shop', name: 'gone' }],
        detail: r.detail,
        maxBytes: 4096,
      }),
    ]);
    expect(messages.at(-1)?.data).toEqual({ services: 2, chunks: 1, instances: 4 });
  });

  it('an instance larger than the bound travels alone in its chunk', () => {
    const r = registry([3], 3000);
    const raw = [
      ...snapshotMessages({
        seq: 1,
        time: 't',
        services: r.refs,
        detail: r.detail,
        maxBytes: 2048,
      }),
    ];
    const chunks = decode(raw).filter((m) => m.type === 'resync_chunk');
    expect(chunks).toHaveLength(3);
    for (const c of chunks)
      if (c.type === 'resync_chunk')
        expect(c.data.services.flatMap((s) => s.items)).toHaveLength(1);
  });

  it.each([
    ['no intentions', 0, 4096],
    ['a few in one chunk', 5, 4096],
    ['many over several chunks', 200, 2048],
  ])(
    'policy, %s: the default in resync_begin, intentions in bounded chunks after the services',
    (_name, count, maxBytes) => {
      const r = registry([3, 4]);
      const intentions = Array.from({ length: count }, (_, i) => ({
        namespace: 'shop',
        name: `i-${i}`,
        spec: {
          destination: { name: `svc-${i % 2}` },
          sources: [
            { name: `caller-${i}`, action: i % 3 === 0 ? ('deny' as const) : ('allow' as const) },
          ],
        },
      }));
      const raw = [
        ...snapshotMessages({
          seq: 7,
          time: 't',
          services: r.refs,
          detail: r.detail,
          maxBytes,
          policy: { intentionDefault: 'deny', intentions },
        }),
      ];
      for (const m of raw) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(maxBytes);
      const messages = decode(raw);
      expect(messages[0]?.data).toEqual({ services: 2, intentionDefault: 'deny' });
      const chunks = messages.filter((m) => m.type === 'resync_chunk');
      const got = chunks.flatMap((c) =>
        c.type === 'resync_chunk' ? (c.data.intentions ?? []) : [],
      );
      expect(got).toEqual(intentions);
      // Intention chunks come after every service part and carry no services.
      const firstPolicy = chunks.findIndex((c) => c.type === 'resync_chunk' && c.data.intentions);
      if (count > 0) {
        expect(
          chunks
            .slice(firstPolicy)
            .every((c) => c.type === 'resync_chunk' && c.data.services.length === 0),
        ).toBe(true);
        expect(
          chunks
            .slice(0, firstPolicy)
            .every((c) => c.type === 'resync_chunk' && c.data.intentions === undefined),
        ).toBe(true);
      }
      expect(messages.at(-1)?.data).toEqual({
        services: 2,
        chunks: chunks.length,
        instances: 7,
      });
      if (count === 200) expect(chunks.length).toBeGreaterThan(3);
    },
  );
});
