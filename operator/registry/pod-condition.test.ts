import { describe, expect, it } from '@jest/globals';
import { serviceSpecSchema } from '../../common/resources.js';
import { testRegistry } from '../../test/helpers/registry.js';
import { healthOfCondition } from './instance.js';
import type { PodHealthCondition } from './instance.js';
import type { PodInstance } from './registry.js';

const HEALTH_CHECK = { exec: { command: ['/bin/check'] } };

function setup(opts: { healthCheck?: boolean } = {}) {
  const { registry, clock, events } = testRegistry({ allowUndeclared: false });
  registry.upsertService(
    'ns',
    'api',
    serviceSpecSchema.parse({
      heartbeat: { ttlSeconds: 10 },
      ...(opts.healthCheck === true && { healthCheck: HEALTH_CHECK }),
    }),
  );
  const pod = (id: string, condition?: PodHealthCondition, gated = true): PodInstance => ({
    id,
    host: `10.1.0.${id.length}`,
    port: 8080,
    weight: 1,
    metadata: { pod: id },
    ready: true,
    ...(gated && { gated: true }),
    ...(condition && { condition }),
  });
  const sync = (...pods: PodInstance[]) => registry.syncPodInstances('ns', 'api', pods);
  const health = (id: string) => registry.getInstance(id)?.health;
  const discovered = (): string[] => {
    try {
      const body = JSON.parse(registry.discover('ns', 'api', { all: true }).toString()) as {
        instances: { id: string }[];
      };
      return body.instances.map((i) => i.id).sort();
    } catch {
      return [];
    }
  };
  return { registry, clock, events, pod, sync, health, discovered };
}

const failed: PodHealthCondition = { status: 'False', reason: 'CheckFailed', message: 'db down' };
const passing: PodHealthCondition = { status: 'True', reason: 'Passing' };

describe('healthOfCondition: the health a maxine.io/healthy condition says', () => {
  it.each([
    [passing, { status: 'passing', reason: 'check' }],
    [
      { status: 'True', reason: 'Warning', message: 'slow' },
      { status: 'warning', reason: 'check', output: 'slow' },
    ],
    [failed, { status: 'critical', reason: 'check', output: 'db down' }],
    [
      { status: 'False', reason: 'LeaseLapsed' },
      { status: 'critical', reason: 'lease-expired' },
    ],
    [
      { status: 'False', reason: 'NoSidecar' },
      { status: 'critical', reason: 'no-sidecar' },
    ],
    [
      { status: 'False', reason: 'SidecarDeregistered' },
      { status: 'critical', reason: 'deregistered' },
    ],
    // Someone else's reason (or none): still not healthy.
    [{ status: 'False' }, { status: 'critical', reason: 'check' }],
    [
      { status: 'True', reason: 'Whatever' },
      { status: 'passing', reason: 'check' },
    ],
  ] as [PodHealthCondition, unknown][])('%j', (condition, expected) => {
    expect(healthOfCondition(condition)).toEqual(expected);
  });
});

describe('a gated pod on the leader', () => {
  it('has no say until its sidecar reports (the pod stays not Ready till then)', () => {
    const { registry, sync, pod, health, discovered } = setup({ healthCheck: true });
    sync(pod('p1'));
    // Without a condition, discovery treats it as any pod (its containers are ready).
    expect(health('p1')).toMatchObject({ status: 'passing' });
    expect(registry.podHealthGate('p1')?.own).toBeUndefined();
    // Registered, but the service's check has not reported: still no say.
    registry.attachSidecar('p1', {});
    expect(registry.podHealthGate('p1')?.own).toBeUndefined();
    registry.heartbeat('p1', { status: 'passing' });
    expect(registry.podHealthGate('p1')).toMatchObject({
      pod: 'p1',
      own: { status: 'passing', reason: 'passing' },
    });
    expect(discovered()).toEqual(['p1']);
    registry.heartbeat('p1', { status: 'critical', output: 'db down' });
    expect(registry.podHealthGate('p1')?.own).toEqual({
      status: 'critical',
      reason: 'check',
      output: 'db down',
    });
    expect(discovered()).toEqual([]);
  });

  it('without a health check, the registration itself is the first report', () => {
    const { registry, sync, pod } = setup();
    sync(pod('p1'));
    registry.attachSidecar('p1', {});
    expect(registry.podHealthGate('p1')?.own).toMatchObject({ status: 'passing' });
  });

  it('keeps its own heartbeat state over a stale condition (no flapping)', () => {
    const { registry, sync, pod, health, discovered } = setup();
    sync(pod('p1'));
    registry.attachSidecar('p1', { status: 'passing' });
    sync(pod('p1', failed));
    expect(health('p1')?.status).toBe('passing');
    expect(discovered()).toEqual(['p1']);
    expect(registry.podHealthGate('p1')?.observed).toEqual(failed);
  });

  it('says lease-expired when the sidecar goes silent, and deregistered when it leaves', () => {
    const { registry, clock, sync, pod } = setup();
    sync(pod('p1'), pod('p22'));
    registry.attachSidecar('p1', { status: 'passing' });
    registry.attachSidecar('p22', { status: 'passing' });
    registry.deregister('p22');
    clock.advance(10_001);
    registry.sweep();
    expect(registry.podHealthGate('p1')?.own).toMatchObject({ reason: 'lease-expired' });
    expect(registry.podHealthGate('p22')?.own).toMatchObject({ reason: 'deregistered' });
  });

  it('leaves pods without the gate as they were', () => {
    const { registry, sync, pod, health, discovered } = setup({ healthCheck: true });
    sync(pod('p1', undefined, false));
    expect(health('p1')?.status).toBe('passing');
    expect(discovered()).toEqual(['p1']);
    expect(registry.podHealthGate('p1')).toBeUndefined();
    expect([...registry.podHealthGates()]).toEqual([]);
  });
});

describe('a gated pod on a follower', () => {
  it('answers with the condition, whatever heartbeats it sees itself', () => {
    const { registry, sync, pod, health, discovered } = setup();
    registry.followPodConditions(true);
    sync(pod('p1', failed), pod('p22', passing), pod('p333'));
    expect(health('p1')).toEqual({ status: 'critical', reason: 'check', output: 'db down' });
    // No condition yet (the leader has not heard from its sidecar): as any pod.
    expect(health('p333')).toMatchObject({ status: 'passing' });
    expect(discovered()).toEqual(['p22', 'p333']);
    registry.attachSidecar('p1', { status: 'passing' });
    expect(discovered()).toEqual(['p22', 'p333']);
    // The leader writes True: the follower's answer follows the informer.
    sync(pod('p1', passing), pod('p22', passing), pod('p333', failed));
    expect(discovered()).toEqual(['p1', 'p22']);
  });

  it('becoming leader, starts from the conditions, then its sidecars take over', () => {
    const { registry, clock, sync, pod, health, discovered, events } = setup();
    registry.followPodConditions(true);
    sync(
      pod('p1', failed),
      pod('p22', passing),
      pod('p333', { status: 'False', reason: 'LeaseLapsed' }),
    );
    events.length = 0;
    registry.followPodConditions(false);
    // Same answer as before the change: nothing flips, no event.
    expect(discovered()).toEqual(['p22']);
    expect(events.filter((e) => e.type.startsWith('service_'))).toEqual([]);
    expect(registry.podHealthGate('p1')?.own).toEqual({
      status: 'critical',
      reason: 'check',
      output: 'db down',
    });
    expect(registry.podHealthGate('p333')?.own).toMatchObject({ reason: 'lease-expired' });
    // The adopted lease takes heartbeats at once (no 404, no re-registration).
    registry.heartbeat('p1', { status: 'passing' });
    registry.heartbeat('p333', { status: 'passing' });
    expect(discovered()).toEqual(['p1', 'p22', 'p333']);
    // p22's sidecar never heartbeats this leader: its lease lapses one TTL later.
    clock.advance(10_001);
    registry.heartbeat('p1', { status: 'passing' });
    registry.heartbeat('p333', { status: 'passing' });
    registry.sweep();
    expect(health('p22')).toMatchObject({ status: 'critical', reason: 'lease-expired' });
    expect(discovered()).toEqual(['p1', 'p333']);
  });
});

describe('a lease a new leader adopts', () => {
  it('outlasts the handover wait (the grace), and a heartbeat ends the grace', () => {
    const { registry, clock, events } = testRegistry({
      allowUndeclared: false,
      adoptedLeaseGraceMs: 5_000,
    });
    registry.upsertService('ns', 'api', serviceSpecSchema.parse({ heartbeat: { ttlSeconds: 3 } }));
    const pod = (id: string): PodInstance => ({
      id,
      host: `10.1.0.${id.length}`,
      port: 8080,
      weight: 1,
      metadata: {},
      ready: true,
      gated: true,
      condition: passing,
    });
    registry.followPodConditions(true);
    registry.syncPodInstances('ns', 'api', [pod('p1'), pod('p22')]);
    registry.followPodConditions(false);
    events.length = 0;
    // Past one TTL, within TTL + grace: a sidecar still waiting out its Retry-After keeps it.
    clock.advance(7_999);
    registry.sweep();
    expect(registry.getInstance('p1')?.health.status).toBe('passing');
    expect(events.filter((e) => e.type === 'service_unhealthy')).toEqual([]);
    // p1's sidecar comes back: from then on its lease is the plain TTL.
    registry.heartbeat('p1', { status: 'passing' });
    clock.advance(3_001);
    registry.sweep();
    expect(registry.getInstance('p1')?.health).toMatchObject({ reason: 'lease-expired' });
    // p22's never did: it lapsed one TTL plus the grace after the takeover.
    expect(registry.getInstance('p22')?.health).toMatchObject({ reason: 'lease-expired' });
  });
});
