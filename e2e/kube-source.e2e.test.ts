/**
 * The operator in kubernetes mode against a real kube-apiserver: MaxineService, MaxineIntention
 * and MaxineACL objects created, changed and deleted with kubectl reach the registry API
 * within a second, and an object the CRD schema stores but the semantics reject leaves the
 * valid ones alone. (Issue 3 continues this tier: pods, status, RBAC, leader election.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Operator } from '../operator/operator.js';
import type { KubeSource } from '../operator/sources/kube.js';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { eventually } from '../test/helpers/operator.js';
import { installCrds, startKubeOperator, kubectl as kubectlIn } from './operator-identity.js';

let cp: ControlPlane;
let operator: Operator;
let base: string;
let admin: { authorization: string };

const service = (name: string, spec: string) => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: ${name}, namespace: shop }
spec: ${spec}
`;

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

/** An intention for orders and an ACL for web's ServiceAccount. */
const policies = (action: string, verbs: string) => `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: orders, namespace: shop }
spec: { destination: { name: orders }, sources: [{ name: web, action: ${action} }] }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: workloads, namespace: shop }
spec:
  subjects: [{ kind: ServiceAccount, name: web, namespace: shop }]
  rules: [{ services: ['shop/*'], verbs: [${verbs}] }]
`;

async function statusOf(kind: string, name: string): Promise<any> {
  return JSON.parse(await kubectl(['get', kind, name, '-n', 'shop', '-o', 'json']));
}

interface KubeEvent {
  type: string;
  reason: string;
  message: string;
  count: number;
  source: { component: string };
  involvedObject: { kind: string; name: string };
}

async function eventsOf(name: string): Promise<KubeEvent[]> {
  const out = await kubectl([
    'get',
    'events',
    '-n',
    'shop',
    '--field-selector',
    `involvedObject.name=${name}`,
    '-o',
    'json',
  ]);
  return (JSON.parse(out) as { items: KubeEvent[] }).items;
}

async function get(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(base + path, { headers: admin });
  return { status: res.status, body: await res.json() };
}

/** Resolves with the elapsed milliseconds once `check` holds; fails past one second. */
async function withinOneSecond(check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > 1000)
      throw new Error('not reflected in the registry within one second');
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  ({ operator, base, admin } = await startKubeOperator(cp, { statusResyncMs: 300 }));
}, 30 * 60_000);

afterAll(async () => {
  await operator?.stop();
  await cp?.stop();
});

describe('kubernetes source', () => {
  it('is ready after the first sync', async () => {
    expect((await get('/readyz')).status).toBe(200);
  });

  it('create, update and delete of a MaxineService reach the registry within one second', async () => {
    await kubectl(['apply', '-f', '-'], service('web', "{ config: { A: '1' } }"));
    await withinOneSecond(async () => (await get('/api/v1/services/shop/web')).status === 200);
    expect((await get('/api/v1/services/shop/web')).body).toMatchObject({
      declared: true,
      spec: { config: { A: '1' } },
    });

    await kubectl(['apply', '-f', '-'], service('web', "{ config: { A: '2' } }"));
    await withinOneSecond(
      async () => (await get('/api/v1/services/shop/web')).body.spec?.config?.A === '2',
    );

    // The status says which generation was applied.
    await eventually(async () => {
      const obj = await statusOf('msvc', 'web');
      return obj.status?.observedGeneration === obj.metadata.generation;
    }, 5000);
    const obj = await statusOf('msvc', 'web');
    expect(obj.metadata.generation).toBe(2);
    expect(obj.status.conditions).toEqual([
      expect.objectContaining({
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        observedGeneration: 2,
      }),
    ]);

    await kubectl(['delete', 'msvc', 'web', '-n', 'shop']);
    await withinOneSecond(async () => (await get('/api/v1/services/shop/web')).status === 404);
  });

  it('intentions and ACLs reach the registry too', async () => {
    await kubectl(['apply', '-f', '-'], policies('allow', 'discover'));
    await withinOneSecond(async () => (await get('/api/v1/resources')).body.items.length >= 2);
    const kinds = (await get('/api/v1/resources')).body.items
      .map((i: { kind: string }) => i.kind)
      .sort();
    expect(kinds).toEqual(expect.arrayContaining(['MaxineACL', 'MaxineIntention']));
    // Updates: the intention turns to deny, the ACL gains a verb.
    await kubectl(['apply', '-f', '-'], policies('deny', 'discover, read'));
    const specOf = async (kind: string) =>
      (await get(`/api/v1/resources?kind=${kind}`)).body.items[0]?.spec;
    await withinOneSecond(
      async () => (await specOf('MaxineIntention'))?.sources[0].action === 'deny',
    );
    await withinOneSecond(
      async () => (await specOf('MaxineACL'))?.rules[0].verbs.includes('read') === true,
    );
    expect((await get('/api/v1/resources?kind=MaxineIntention')).body.items[0].generation).toBe(2);
    await kubectl(['delete', 'macl', 'workloads', '-n', 'shop']);
    await withinOneSecond(
      async () => (await get('/api/v1/resources?kind=MaxineACL')).body.items.length === 0,
    );
    await kubectl(['delete', 'mint', 'orders', '-n', 'shop']);
    await withinOneSecond(
      async () => (await get('/api/v1/resources?kind=MaxineIntention')).body.items.length === 0,
    );
  });

  it('an object the API server stores but the semantics reject is reported and disturbs nothing', async () => {
    await kubectl(['apply', '-f', '-'], service('good', '{}'));
    // Duplicate version names pass the CRD schema (no CEL rule for them) but not the zod schema.
    await kubectl(
      ['apply', '-f', '-'],
      service('dup', '{ versions: [{ name: v1, weight: 50 }, { name: v1, weight: 50 }] }'),
    );
    await withinOneSecond(async () => (await get('/api/v1/resources')).body.problems.length > 0);
    const { problems } = (await get('/api/v1/resources')).body;
    expect(problems).toEqual([
      expect.objectContaining({
        key: 'MaxineService/shop/dup',
        issues: [
          expect.objectContaining({
            path: 'spec.versions',
            message: 'version "v1" is listed twice',
          }),
        ],
      }),
    ]);
    expect((await get('/api/v1/services/shop/good')).status).toBe(200);
    expect((await get('/api/v1/services/shop/dup')).status).toBe(404);
    await eventually(
      async () => (await statusOf('msvc', 'dup')).status?.conditions?.length === 2,
      5000,
    );
    const conditions = (await statusOf('msvc', 'dup')).status.conditions as {
      type: string;
      status: string;
      message: string;
    }[];
    expect(conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'Invalid',
    });
    expect(conditions.find((c) => c.type === 'Invalid')).toMatchObject({
      status: 'True',
      message: 'spec.versions: version "v1" is listed twice',
    });
    // Fixing it clears the problem and declares the service.
    await kubectl(
      ['apply', '-f', '-'],
      service('dup', '{ versions: [{ name: v1, weight: 100 }] }'),
    );
    await withinOneSecond(async () => (await get('/api/v1/services/shop/dup')).status === 200);
    expect((await get('/api/v1/resources')).body.problems).toEqual([]);
    // Both the failure and the recovery are Kubernetes Events on the object, as kubectl shows them.
    await eventually(
      async () => (await eventsOf('dup')).some((e) => e.reason === 'SpecValid'),
      5000,
    );
    const events = await eventsOf('dup');
    expect(events.find((e) => e.reason === 'InvalidSpec')).toMatchObject({
      type: 'Warning',
      count: 1,
      message: expect.stringContaining('spec.versions: version "v1" is listed twice'),
      source: { component: 'maxine-operator' },
      involvedObject: expect.objectContaining({ kind: 'MaxineService', name: 'dup' }),
    });
    expect(await kubectl(['describe', 'msvc', 'dup', '-n', 'shop'])).toMatch(
      /Warning\s+InvalidSpec\s+.*version "v1" is listed twice/,
    );
  });

  it('the same failure again is one Event with a count, not a new Event', async () => {
    const bad = (weight: number) =>
      service(
        'flaky',
        `{ versions: [{ name: a, weight: ${weight} }, { name: a, weight: ${100 - weight} }] }`,
      );
    await kubectl(['apply', '-f', '-'], bad(1));
    await eventually(async () => (await eventsOf('flaky')).length === 1, 5000);
    // A label change is a new resourceVersion but the same generation: nothing new to say.
    await kubectl(['label', 'msvc', 'flaky', '-n', 'shop', 'touched=yes']);
    // A new generation with the same problem: the Event's count goes up.
    await kubectl(['apply', '-f', '-'], bad(2));
    await eventually(async () => (await eventsOf('flaky'))[0]?.count === 2, 5000);
    await (operator.source as KubeSource).idle();
    const events = await eventsOf('flaky');
    expect(events).toHaveLength(1);
    expect(events[0]?.count).toBe(2);
    expect(events[0]).toMatchObject({ type: 'Warning', reason: 'InvalidSpec' });
  });

  it('a status write refused for good (403) is reported once and not retried until the object changes', async () => {
    // The operator loses the right to write MaxineIntention statuses (rule 1 of its ClusterRole).
    await kubectl([
      'patch',
      'clusterrole',
      'maxine-operator',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/rules/1/resources","value":["maxineservices/status","maxineacls/status"]}]',
    ]);
    const intention = `apiVersion: maxine.io/v1alpha1
kind: MaxineIntention
metadata: { name: refused, namespace: shop }
spec: { destination: { name: refused }, sources: [{ name: web, action: allow }] }
`;
    try {
      await kubectl(['apply', '-f', '-'], intention);
      await eventually(
        async () => (await eventsOf('refused')).some((e) => e.reason === 'StatusWriteFailed'),
        10_000,
      );
      expect(
        (await eventsOf('refused')).find((e) => e.reason === 'StatusWriteFailed'),
      ).toMatchObject({
        type: 'Warning',
        count: 1,
        message: expect.stringMatching(
          /^The API server refused the status write \(not retried until the object changes\): 403 Forbidden: /,
        ),
        involvedObject: expect.objectContaining({ kind: 'MaxineIntention', name: 'refused' }),
      });
      // No back-off retry is left pending: the source goes idle (a retried 403 never would).
      let timer: NodeJS.Timeout | undefined;
      const settled = await Promise.race([
        (operator.source as KubeSource).idle().then(() => 'idle'),
        new Promise((resolve) => (timer = setTimeout(() => resolve('still retrying'), 5000))),
      ]);
      clearTimeout(timer);
      expect(settled).toBe('idle');
    } finally {
      await kubectl(['apply', '-k', `${process.cwd()}/manifests`]);
    }
    // The right is back; the next change to the object writes its status.
    await kubectl(['annotate', 'mint', 'refused', '-n', 'shop', 'touched=yes']);
    await eventually(
      async () =>
        (await statusOf('mint', 'refused')).status?.conditions?.some(
          (c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True',
        ) === true,
      10_000,
    );
  });

  it('a status the schema refuses (422) is said in a StatusWriteFailed condition and an Event', async () => {
    // A stricter CRD (status.ready at most 1 character) refuses "0/0", not a conditions-only write.
    const ready =
      '/spec/versions/0/schema/openAPIV3Schema/properties/status/properties/ready/maxLength';
    await kubectl([
      'patch',
      'crd',
      'maxineservices.maxine.io',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: ready, value: 1 }]),
    ]);
    try {
      await kubectl(['apply', '-f', '-'], service('strict', '{}'));
      await eventually(
        async () =>
          (await statusOf('msvc', 'strict')).status?.conditions?.some(
            (c: { type: string }) => c.type === 'StatusWriteFailed',
          ) === true,
        10_000,
      );
      expect((await statusOf('msvc', 'strict')).status.conditions).toEqual([
        expect.objectContaining({
          type: 'StatusWriteFailed',
          status: 'True',
          reason: 'WriteRefused',
          message: expect.stringMatching(
            /^The API server refused the status write, so this status is out of date; tried again when the object changes or is resynced: 422 Invalid: .*status\.ready/,
          ),
        }),
      ]);
      const events = (await eventsOf('strict')).filter((e) => e.reason === 'StatusWriteFailed');
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: 'Warning',
        message: expect.stringContaining('422 Invalid'),
      });
    } finally {
      await kubectl(['apply', '-f', `${process.cwd()}/crds`]);
    }
    // The schema is back: the next resync writes the whole status and drops the condition.
    await eventually(async () => {
      const conditions = ((await statusOf('msvc', 'strict')).status?.conditions ?? []) as {
        type: string;
      }[];
      return conditions.map((c) => c.type).join() === 'Ready';
    }, 10_000);
  });

  it('keeps instance counts in the status, shown by kubectl get', async () => {
    await kubectl(['apply', '-f', '-'], service('counted', '{}'));
    await withinOneSecond(async () => (await get('/api/v1/services/shop/counted')).status === 200);
    // Registered the way an instance outside the cluster is: by a client with a register
    // right (here the bootstrap administrator), not by a sidecar.
    const res = await fetch(`${base}/api/v1/instances`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...admin },
      body: JSON.stringify({ service: 'counted', namespace: 'shop', host: '10.1.2.3', port: 8080 }),
    });
    expect(res.status).toBe(201);
    await eventually(async () => (await statusOf('msvc', 'counted')).status?.ready === '1/1', 5000);
    expect((await statusOf('msvc', 'counted')).status.instances).toEqual({
      total: 1,
      passing: 1,
      warning: 0,
      critical: 0,
    });
    const table = await kubectl(['get', 'msvc', 'counted', '-n', 'shop']);
    expect(table).toMatch(/counted\s+1\/1/);
  });

  it('informers recover after the API server restarts, without restarting the operator', async () => {
    await kubectl(['apply', '-f', '-'], service('before-outage', '{}'));
    await withinOneSecond(
      async () => (await get('/api/v1/services/shop/before-outage')).status === 200,
    );
    const restarting = cp.restartApiServer({ downMs: 2000 });
    await new Promise((r) => setTimeout(r, 1000));
    // While the API server is away the operator keeps answering from what it has.
    expect((await get('/api/v1/services/shop/before-outage')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    await restarting;
    const back = Date.now();
    // Changes made after the restart reach the registry: a create and a delete.
    await kubectl(['apply', '-f', '-'], service('after-outage', '{}'));
    await kubectl(['delete', 'msvc', 'before-outage', '-n', 'shop']);
    await eventually(
      async () => (await get('/api/v1/services/shop/after-outage')).status === 200,
      45_000,
    );
    await eventually(
      async () => (await get('/api/v1/services/shop/before-outage')).status === 404,
      45_000,
    );
    // Status writes work again too.
    await eventually(
      async () =>
        (await statusOf('msvc', 'after-outage')).status?.conditions?.some(
          (c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True',
        ) === true,
      45_000,
    );
    process.stderr.write(`[e2e] informers caught up ${Date.now() - back} ms after the restart\n`);
  });

  it('a restarted operator rebuilds its state from the API server', async () => {
    const before = (await get('/api/v1/resources')).body.items.map(
      (i: { kind: string; name: string }) => `${i.kind}/${i.name}`,
    );
    expect(before.length).toBeGreaterThan(0);
    await operator.stop();
    ({ operator, base, admin } = await startKubeOperator(cp));
    expect((await get('/readyz')).status).toBe(200);
    const after = (await get('/api/v1/resources')).body.items.map(
      (i: { kind: string; name: string }) => `${i.kind}/${i.name}`,
    );
    expect(after).toEqual(before);
  });
});
