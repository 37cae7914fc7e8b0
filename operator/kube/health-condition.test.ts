import { describe, expect, it } from '@jest/globals';
import { Registry as PromRegistry } from 'prom-client';
import { serviceSpecSchema } from '../../common/resources.js';
import { createLogger } from '../../common/logger.js';
import { testRegistry } from '../../test/helpers/registry.js';
import { eventually } from '../../test/helpers/operator.js';
import type { PodHealthCondition } from '../registry/instance.js';
import type { PodInstance } from '../registry/registry.js';
import {
  CONDITION_MESSAGE_MAX,
  capMessage,
  conditionPatch,
  desiredCondition,
  HealthConditionWriter,
  isTransition,
  PendingWrites,
  TokenBucket,
} from './health-condition.js';
import type { ConditionPatcher, DesiredCondition } from './health-condition.js';

describe('desiredCondition: what the leader writes for its own view of a pod', () => {
  it.each([
    ['no say yet', undefined, undefined],
    [
      'sidecar deregistered (pod terminating)',
      { status: 'critical', reason: 'deregistered' },
      undefined,
    ],
    [
      'passing',
      { status: 'passing', reason: 'passing' },
      { status: 'True', reason: 'Passing', message: '' },
    ],
    [
      'warning',
      { status: 'warning', reason: 'warning', output: 'slow\n' },
      { status: 'True', reason: 'Warning', message: 'slow' },
    ],
    [
      'check failed',
      { status: 'critical', reason: 'check', output: 'db down' },
      { status: 'False', reason: 'CheckFailed', message: 'db down' },
    ],
    [
      'check failed, no output',
      { status: 'critical', reason: 'check' },
      { status: 'False', reason: 'CheckFailed', message: 'the health check failed' },
    ],
    [
      'lease lapsed',
      { status: 'critical', reason: 'lease-expired' },
      {
        status: 'False',
        reason: 'LeaseLapsed',
        message: 'the sidecar stopped heartbeating: its lease lapsed',
      },
    ],
    [
      'no sidecar',
      { status: 'critical', reason: 'no-sidecar' },
      expect.objectContaining({ status: 'False', reason: 'NoSidecar' }),
    ],
  ] as const)('%s', (_name, own, expected) => {
    expect(desiredCondition(own as Parameters<typeof desiredCondition>[0])).toEqual(expected);
  });

  it('caps the check output', () => {
    const long = 'x'.repeat(5000);
    const message = desiredCondition({
      status: 'critical',
      reason: 'check',
      output: long,
    })?.message;
    expect(message).toHaveLength(CONDITION_MESSAGE_MAX);
    expect(message?.endsWith('…')).toBe(true);
    expect(capMessage('short  \n')).toBe('short');
  });
});

describe('isTransition: only a changed status or reason is written', () => {
  const failed: DesiredCondition = { status: 'False', reason: 'CheckFailed', message: 'a' };
  it.each([
    ['nothing to write', undefined, undefined, false],
    ['the pod has no condition yet', failed, undefined, true],
    ['same status and reason', failed, { status: 'False', reason: 'CheckFailed' }, false],
    [
      'only the message differs',
      failed,
      { status: 'False', reason: 'CheckFailed', message: 'b' },
      false,
    ],
    ['the reason differs', failed, { status: 'False', reason: 'LeaseLapsed' }, true],
    ['the status differs', failed, { status: 'True', reason: 'Passing' }, true],
  ] as [string, DesiredCondition | undefined, PodHealthCondition | undefined, boolean][])(
    '%s',
    (_name, desired, current, expected) => {
      expect(isTransition(desired, current)).toBe(expected);
    },
  );
});

describe('conditionPatch', () => {
  it('is a strategic-merge patch of the one condition (merged by type)', () => {
    const at = new Date('2026-01-02T03:04:05Z');
    expect(conditionPatch({ status: 'False', reason: 'CheckFailed', message: 'm' }, at)).toEqual({
      status: {
        conditions: [
          {
            type: 'maxine.io/healthy',
            status: 'False',
            reason: 'CheckFailed',
            message: 'm',
            lastProbeTime: null,
            lastTransitionTime: '2026-01-02T03:04:05.000Z',
          },
        ],
      },
    });
  });
});

describe('TokenBucket', () => {
  it('gives a burst, then one token per 1/rate seconds', () => {
    const bucket = new TokenBucket(10, 2, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([true, true, false]);
    expect(bucket.waitMs(0)).toBe(100);
    expect(bucket.take(50)).toBe(false);
    expect(bucket.take(100)).toBe(true);
    // Never more than the burst, however long it was idle.
    expect([bucket.take(10_000), bucket.take(10_000), bucket.take(10_000)]).toEqual([
      true,
      true,
      false,
    ]);
  });
});

describe('PendingWrites', () => {
  it('keeps one entry per key (latest wins), in arrival order, bounded', () => {
    const pending = new PendingWrites<number>(2);
    expect(pending.offer('a', 1)).toBe('queued');
    expect(pending.offer('b', 1)).toBe('queued');
    expect(pending.offer('a', 2)).toBe('coalesced');
    expect(pending.offer('c', 1)).toBe('dropped');
    expect(pending.firstKey((k) => k === 'a')).toBe('b');
    expect(pending.take((k) => k === 'a')).toEqual(['b', 1]);
    expect(pending.take(() => false)).toEqual(['a', 2]);
    expect(pending.size).toBe(0);
  });
});

// ---- the writer over a real registry, with the API call recorded ----

function setup(
  opts: {
    writesPerSecond?: number;
    maxPending?: number;
    patchMs?: number;
    concurrency?: number;
  } = {},
) {
  // As operator.ts wires it: every registry event goes by the writer.
  const wiring: { writer?: HealthConditionWriter } = {};
  const { registry } = testRegistry({
    allowUndeclared: false,
    emit: (e) => wiring.writer?.noticeEvent(e),
  });
  registry.upsertService(
    'ns',
    'api',
    serviceSpecSchema.parse({
      heartbeat: { ttlSeconds: 30 },
      healthCheck: { exec: { command: ['/bin/check'] } },
    }),
  );
  const conditions = new Map<string, PodHealthCondition>();
  const podOf = (name: string): PodInstance => {
    const condition = conditions.get(name);
    return {
      id: name,
      host: '10.0.0.1',
      port: 80,
      weight: 1,
      metadata: { pod: name },
      ready: true,
      gated: true,
      ...(condition && { condition }),
    };
  };
  const names: string[] = [];
  /** What the informer does after a write: the pods come back with their conditions. */
  const echo = () => registry.syncPodInstances('ns', 'api', names.map(podOf));
  const writes: { pod: string; status: string; reason: string }[] = [];
  const patch: ConditionPatcher = async (_ns, pod, body) => {
    const c = body.status.conditions[0] as { status: 'True' | 'False'; reason: string };
    if (opts.patchMs !== undefined) await new Promise((r) => setTimeout(r, opts.patchMs));
    writes.push({ pod, status: c.status, reason: c.reason });
    conditions.set(pod, { status: c.status, reason: c.reason });
    echo();
  };
  const prom = new PromRegistry();
  let leader = true;
  const writer = new HealthConditionWriter({
    registry,
    logger: createLogger('silent'),
    isLeader: () => leader,
    writesPerSecond: opts.writesPerSecond ?? 1000,
    burst: 1,
    maxPending: opts.maxPending ?? 1000,
    resyncMs: 60_000,
    prom,
    patch,
    ...(opts.concurrency !== undefined && { concurrency: opts.concurrency }),
  });
  wiring.writer = writer;
  const addPods = (n: number) => {
    for (let i = 0; i < n; i++) names.push(`p${names.length}`);
    echo();
  };
  const report = (pod: string, status: 'passing' | 'warning' | 'critical') => {
    registry.heartbeat(pod, { status, ...(status === 'critical' && { output: 'down' }) });
    writer.notice(pod);
  };
  const metric = async (name: string) => (await prom.getSingleMetric(name)?.get())?.values ?? [];
  return {
    registry,
    writer,
    writes,
    addPods,
    report,
    names,
    metric,
    setLeader: (l: boolean) => (leader = l),
  };
}

describe('HealthConditionWriter', () => {
  it('writes True when the sidecar first reports passing, then one write per transition (measured)', async () => {
    const s = setup();
    const N = 20;
    s.addPods(N);
    for (const pod of s.names) {
      s.registry.attachSidecar(pod, {});
      s.writer.notice(pod); // registered, no check result yet: nothing to write
    }
    expect(s.writes).toEqual([]);
    for (const pod of s.names) s.report(pod, 'passing');
    await eventually(() => Promise.resolve(s.writes.length === N), 5000, 'N first True writes');
    // Heartbeats that change nothing write nothing.
    for (const pod of s.names) s.report(pod, 'passing');
    // N transitions to critical, then N back.
    for (const pod of s.names) s.report(pod, 'critical');
    await eventually(() => Promise.resolve(s.writes.length === 2 * N), 5000, 'N False writes');
    for (const pod of s.names) s.report(pod, 'passing');
    await eventually(() => Promise.resolve(s.writes.length === 3 * N), 5000, 'N True writes');
    await new Promise((r) => setTimeout(r, 50));
    s.writer.resyncAll(); // the resync finds nothing to do
    await new Promise((r) => setTimeout(r, 50));
    const transitions = 3 * N;
    process.stderr.write(
      `[health-condition] ${transitions} transitions over ${N} pods → ${s.writes.length} pods/status writes\n`,
    );
    expect(s.writes).toHaveLength(transitions);
    expect(
      s.writes.slice(N, 2 * N).every((w) => w.status === 'False' && w.reason === 'CheckFailed'),
    ).toBe(true);
    expect(await s.metric('maxine_health_condition_writes_total')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ labels: { result: 'ok', status: 'True' }, value: 2 * N }),
        expect.objectContaining({ labels: { result: 'ok', status: 'False' }, value: N }),
      ]),
    );
  });

  it('is told by the registry events alone: the first check result rides on a heartbeat', async () => {
    const s = setup();
    s.addPods(1);
    s.registry.attachSidecar('p0', {});
    s.registry.heartbeat('p0', { status: 'passing' }); // no health change shows: passing before
    await eventually(() => Promise.resolve(s.writes.length === 1), 5000, 'the True write');
    s.registry.heartbeat('p0', { status: 'critical', output: 'down' });
    await eventually(() => Promise.resolve(s.writes.length === 2), 5000, 'the False write');
    for (let i = 0; i < 20; i++)
      s.registry.heartbeat('p0', { status: 'critical', output: `down ${i}` });
    await new Promise((r) => setTimeout(r, 50));
    expect(s.writes).toEqual([
      { pod: 'p0', status: 'True', reason: 'Passing' },
      { pod: 'p0', status: 'False', reason: 'CheckFailed' },
    ]);
  });

  it('coalesces a flapping pod: latest state wins while a write is pending', async () => {
    const s = setup({ patchMs: 100 });
    s.addPods(1);
    s.registry.attachSidecar('p0', { status: 'passing' });
    s.writer.notice('p0'); // True: in flight for 100 ms
    // Critical and warning are both transitions from True/Passing: each replaces the pending one.
    for (let i = 0; i < 10; i++) s.report('p0', i % 2 === 0 ? 'critical' : 'warning');
    s.report('p0', 'critical');
    await eventually(() => Promise.resolve(s.writes.length === 2), 5000, 'two writes');
    await new Promise((r) => setTimeout(r, 250));
    expect(s.writes.map((w) => w.status)).toEqual(['True', 'False']);
    const coalesced = await s.metric('maxine_health_condition_coalesced_total');
    expect(coalesced[0]?.value).toBeGreaterThan(0);
  });

  it('drops a pending write when the pod flips back before it is sent', async () => {
    const s = setup({ patchMs: 100, concurrency: 1 });
    s.addPods(2);
    s.registry.attachSidecar('p0', { status: 'passing' });
    s.registry.attachSidecar('p1', { status: 'passing' });
    await eventually(() => Promise.resolve(s.writes.length === 2), 5000, 'both True');
    s.report('p0', 'critical'); // in flight for 100 ms; p1 must wait (one write at a time)
    s.report('p1', 'critical'); // pending...
    s.report('p1', 'passing'); // ...and back to what the pod carries: nothing to write
    await eventually(() => Promise.resolve(s.writes.length === 3), 5000, "p0's write");
    await new Promise((r) => setTimeout(r, 250));
    expect(s.writes.slice(2)).toEqual([{ pod: 'p0', status: 'False', reason: 'CheckFailed' }]);
  });

  it('keeps to its rate limit', async () => {
    const s = setup({ writesPerSecond: 20 });
    s.addPods(10);
    const t0 = performance.now();
    for (const pod of s.names) {
      s.registry.attachSidecar(pod, { status: 'passing' });
      s.writer.notice(pod);
    }
    await eventually(() => Promise.resolve(s.writes.length === 10), 5000, 'ten writes');
    // A burst of one, then 20 a second: the 10th write comes ≥ 9 × 50 ms after the first.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(440);
  });

  it('bounds what waits, counts what it drops, and the resync writes it later', async () => {
    const s = setup({ maxPending: 3, patchMs: 50, writesPerSecond: 1000 });
    s.addPods(10);
    for (const pod of s.names) {
      s.registry.attachSidecar(pod, { status: 'passing' });
      s.writer.notice(pod);
    }
    const dropped = await s.metric('maxine_health_condition_dropped_total');
    expect(dropped[0]?.value).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(s.writes.length).toBeLessThan(10);
    s.writer.resyncAll();
    await eventually(
      () => {
        s.writer.resyncAll();
        return Promise.resolve(s.writes.length === 10);
      },
      5000,
      'all ten written after resyncs',
    );
    expect(new Set(s.writes.map((w) => w.pod)).size).toBe(10);
  });

  it('writes nothing on a follower', async () => {
    const s = setup();
    s.setLeader(false);
    s.addPods(2);
    for (const pod of s.names) {
      s.registry.attachSidecar(pod, { status: 'passing' });
      s.writer.notice(pod);
    }
    s.writer.resyncAll();
    await new Promise((r) => setTimeout(r, 50));
    expect(s.writes).toEqual([]);
  });
});
