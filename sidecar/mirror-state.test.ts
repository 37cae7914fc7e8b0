import { describe, expect, it } from '@jest/globals';
import { splitDiscoverQuery } from '../common/discovery.js';
import { codeOf } from '../test/helpers/errors.js';
import { discoverQuerySchema } from '../common/wire.js';
import type { Instance, MaxineEvent } from '../common/wire.js';
import { MirrorState } from './mirror-state.js';

const svc = { namespace: 'shop', name: 'web' };
const inst = (
  id: string,
  status: 'passing' | 'warning' | 'critical' = 'passing',
  host = '10.0.0.1',
): Instance => ({
  id,
  service: svc,
  host,
  port: 80,
  weight: 1,
  metadata: {},
  health: { status },
  source: 'registration',
  registeredAt: '2026-01-01T00:00:00.000Z',
});
let seq = 0;
const ev = (type: MaxineEvent['type'], extra: Partial<MaxineEvent> = {}): MaxineEvent => ({
  seq: ++seq,
  type,
  time: '2026-01-01T00:00:00.000Z',
  service: svc,
  ...extra,
});
const all = (m: MirrorState) =>
  (
    JSON.parse(
      m
        .discoverParsed('shop/web', splitDiscoverQuery(discoverQuerySchema.parse({ all: 'true' })))
        .toString(),
    ) as {
      instances: { id: string }[];
    }
  ).instances.map((i) => i.id);

describe('MirrorState', () => {
  it('starts from a snapshot and follows deltas', () => {
    const m = new MirrorState();
    m.apply({
      seq: 10,
      type: 'resync',
      time: '',
      data: {
        services: [
          { ...svc, spec: { selector: {} }, items: [inst('b'), inst('a'), inst('c', 'critical')] },
        ],
      },
    });
    expect(m.lastSeq).toBe(10);
    expect(all(m)).toEqual(['a', 'b']);
    m.apply(ev('service_registered', { instance: inst('d') }));
    m.apply(ev('service_unhealthy', { instance: inst('a', 'critical') }));
    m.apply(ev('service_healthy', { instance: inst('c') }));
    m.apply(ev('service_deregistered', { instance: inst('b') }));
    expect(all(m)).toEqual(['c', 'd']);
    // A warning instance is still handed out, as by the operator.
    m.apply(ev('service_unhealthy', { instance: inst('d', 'warning') }));
    expect(all(m)).toEqual(['c', 'd']);
  });

  it('follows spec changes, blocking and deletion', () => {
    const m = new MirrorState();
    m.apply(ev('service_updated', { data: { declared: true, spec: { config: { a: '1' } } } }));
    m.apply(ev('service_registered', { instance: inst('a') }));
    expect(m.spec('shop', 'web')?.config).toEqual({ a: '1' });
    m.apply(
      ev('service_updated', {
        data: { declared: true, spec: { blocked: { discovery: true, reason: 'maintenance' } } },
      }),
    );
    expect(codeOf(() => all(m))).toBe('SERVICE_BLOCKED');
    m.apply(ev('service_deleted'));
    expect(codeOf(() => all(m))).toBe('SERVICE_NOT_FOUND');
  });

  it('a resync replaces everything it knew', () => {
    const m = new MirrorState();
    m.apply(ev('service_registered', { instance: inst('old') }));
    m.apply({ seq: 99, type: 'resync', time: '', data: { services: [] } });
    expect(codeOf(() => all(m))).toBe('SERVICE_NOT_FOUND');
    expect(m.size).toBe(0);
  });

  it('says which service changed its spec, and nothing for instance events', () => {
    const m = new MirrorState();
    expect(m.apply(ev('service_updated', { data: { declared: false } }))).toEqual(svc);
    expect(m.apply(ev('service_registered', { instance: inst('a') }))).toBeUndefined();
    expect(m.spec('shop', 'web')).toBeUndefined();
  });
});
