/**
 * Registrations from outside the cluster in Kubernetes mode (docs/decisions/0019), on a real
 * API server: the leader keeps them as MaxineRegistration objects, every replica mirrors
 * them, a new leader keeps the leases of clients that heartbeat through it, and
 * deregistration and expiry remove the objects.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ensureBinaries, freePorts, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { eventually } from '../test/helpers/operator.js';
import {
  E2E_ADMIN,
  installCrds,
  kubectl as kubectlIn,
  startKubeOperator,
} from './operator-identity.js';

interface Replica {
  operator: Operator;
  base: string;
  admin: { authorization: string };
  stopped?: boolean;
}

interface InstanceJson {
  id: string;
  host: string;
  port: number;
  version?: string;
  zone?: string;
  datacenter?: string;
  weight: number;
  metadata: Record<string, string>;
  health: { status: string; reason: string };
}

const LEASE_SECONDS = 3;
let cp: ControlPlane;
const replicas: Replica[] = [];

const kubectl = (args: string[], input?: string) => kubectlIn(cp, args, input);
/** One admin token every replica knows: a follower forwards writes, the leader authenticates them. */
const adminToken = randomBytes(24).toString('base64url');
let tokensFile = '';

async function startReplica(): Promise<Replica> {
  const [port] = (await freePorts(1)) as [number];
  const replica = await startKubeOperator(cp, {
    leaseDurationSeconds: LEASE_SECONDS,
    leaseRenewSeconds: 1,
    sweepIntervalMs: 200,
    removeAfterSeconds: 1,
    host: '127.0.0.1',
    port,
    // As manifests/ do: followers forward registry writes to the address the leader advertises.
    advertiseUrl: `http://127.0.0.1:${port}`,
    staticTokensFile: tokensFile,
    podName: `replica-${replicas.length + 1}`,
  });
  const withToken = { ...replica, admin: { authorization: `Bearer ${adminToken}` } };
  replicas.push(withToken);
  return withToken;
}

async function leads(r: Replica): Promise<boolean> {
  const res = await fetch(`${r.base}/healthz`);
  return ((await res.json()) as { leader: boolean }).leader;
}

function call(r: Replica, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(r.base + path, {
    method,
    headers: { 'content-type': 'application/json', ...r.admin },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function instancesOn(r: Replica): Promise<InstanceJson[]> {
  const res = await call(r, 'GET', '/api/v1/services/shop/vm');
  if (res.status !== 200) return [];
  return ((await res.json()) as { items: InstanceJson[] }).items;
}

async function objectOf(name: string): Promise<any> {
  const r = await cp.kubectl(['get', 'maxineregistration', name, '-n', 'shop', '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout);
}

/** Sets the verbs of the operator's ClusterRole rule on maxineregistrations. */
async function withVerbs(verbs: string[]): Promise<void> {
  const role = JSON.parse(
    await kubectl(['get', 'clusterrole', 'maxine-operator', '-o', 'json']),
  ) as {
    rules: { resources?: string[] }[];
  };
  const at = role.rules.findIndex((r) => r.resources?.includes('maxineregistrations') === true);
  expect(at).toBeGreaterThanOrEqual(0);
  await kubectl([
    'patch',
    'clusterrole',
    'maxine-operator',
    '--type=json',
    '-p',
    JSON.stringify([{ op: 'replace', path: `/rules/${at}/verbs`, value: verbs }]),
  ]);
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane();
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  tokensFile = join(cp.dir, 'registrations-tokens.yaml');
  await writeFile(tokensFile, stringify({ tokens: [{ token: adminToken, user: E2E_ADMIN }] }), {
    mode: 0o600,
  });
  await kubectl(
    ['apply', '-f', '-'],
    'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: vm, namespace: shop }\nspec: {}\n',
  );
}, 30 * 60_000);

afterAll(async () => {
  for (const r of replicas) if (r.stopped !== true) await r.operator.stop();
  await cp?.stop();
});

describe('registrations from outside the cluster, kept in the API server', () => {
  it('survive the leader, are seen by every replica, kept by heartbeats through the new leader, removed on deregistration and expiry', async () => {
    const first = await startReplica();
    await eventually(() => leads(first), 10_000, 'first replica leads');
    const second = await startReplica();
    expect(await leads(second)).toBe(false);

    // Registered through the leader: in the API server when acknowledged.
    const res = await call(first, 'POST', '/api/v1/instances', {
      service: 'vm',
      namespace: 'shop',
      host: '192.0.2.10',
      port: 8080,
      version: 'v1',
      zone: 'z1',
      datacenter: 'dc1',
      weight: 5,
      metadata: { rack: 'r1' },
      ttlSeconds: LEASE_SECONDS,
    });
    expect(res.status).toBe(201);
    const { instance } = (await res.json()) as { instance: InstanceJson };
    const stored = await objectOf(instance.id);
    expect(stored).toMatchObject({
      metadata: {
        name: instance.id,
        labels: { 'maxine.io/service': 'vm' },
        ownerReferences: [{ kind: 'MaxineService', name: 'vm' }],
      },
      spec: {
        id: instance.id,
        service: 'vm',
        host: '192.0.2.10',
        port: 8080,
        version: 'v1',
        zone: 'z1',
        datacenter: 'dc1',
        weight: 5,
        metadata: { rack: 'r1' },
        ttlSeconds: LEASE_SECONDS,
        owner: 'User token:e2e-admin',
      },
    });

    const createdVersion = (stored as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion;

    // The follower discovers it, with the same id and fields.
    const seen = await eventually(
      async () => (await instancesOn(second)).find((i) => i.id === instance.id),
      5000,
      'the follower mirrors the registration',
    );
    expect(seen).toMatchObject({
      host: '192.0.2.10',
      port: 8080,
      version: 'v1',
      zone: 'z1',
      datacenter: 'dc1',
      weight: 5,
      metadata: { rack: 'r1' },
      health: { status: 'passing' },
    });
    const discovered = await call(second, 'GET', '/api/v1/discover/shop/vm');
    expect(discovered.status).toBe(200);
    expect(((await discovered.json()) as { instance: InstanceJson }).instance.id).toBe(instance.id);

    // A registration that reaches a follower is forwarded to the leader, which keeps it in
    // the API server before the 201.
    const localRes = await call(second, 'POST', '/api/v1/instances', {
      service: 'vm',
      namespace: 'shop',
      host: '192.0.2.20',
      port: 8080,
      ttlSeconds: 60,
    });
    expect(localRes.status).toBe(201);
    expect(localRes.headers.get('x-maxine-forwarded-to')).toBe('replica-1');
    const local = ((await localRes.json()) as { instance: InstanceJson }).instance;
    expect((await objectOf(local.id))?.spec?.host).toBe('192.0.2.20');

    // A client heartbeating through whichever replica leads; the leader stops.
    let stopHeartbeats = false;
    const beats: number[] = [];
    const heartbeating = (async () => {
      while (!stopHeartbeats) {
        for (const r of replicas) {
          if (r.stopped === true || !(await leads(r).catch(() => false))) continue;
          const beat = await call(r, 'PUT', `/api/v1/instances/${instance.id}/heartbeat`, {});
          beats.push(beat.status);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    })();
    try {
      first.stopped = true;
      await first.operator.stop();
      await eventually(() => leads(second), (LEASE_SECONDS + 3) * 1000, 'second replica leads');
      // The registration forwarded through it outlives the old leader.
      await eventually(
        async () => (await instancesOn(second)).some((i) => i.id === local.id),
        5000,
        'the new leader still holds the forwarded registration',
      );
      expect((await objectOf(local.id))?.spec?.host).toBe('192.0.2.20');
      const third = await startReplica();
      expect(await leads(third)).toBe(false);
      // A new replica knows it from the API server alone.
      await eventually(
        async () => (await instancesOn(third)).some((i) => i.id === instance.id),
        5000,
        'a new replica mirrors the registration',
      );

      // A registration that never heartbeats: its lease lapses at the leader (the object says
      // so), then it is removed and its object deleted.
      const silentRes = await call(second, 'POST', '/api/v1/instances', {
        service: 'vm',
        namespace: 'shop',
        host: '192.0.2.11',
        port: 8080,
        ttlSeconds: 1,
      });
      expect(silentRes.status).toBe(201);
      const silent = ((await silentRes.json()) as { instance: InstanceJson }).instance;
      expect(await objectOf(silent.id)).toBeDefined();
      await eventually(
        async () => (await objectOf(silent.id))?.status?.leaseLapsed === true,
        5000,
        'the lapsed lease is written to the object',
      );
      await eventually(
        async () => (await objectOf(silent.id)) === undefined,
        8000,
        'the expired registration object is deleted',
      );
      await eventually(
        async () => !(await instancesOn(third)).some((i) => i.id === silent.id),
        5000,
        'replicas drop the expired registration',
      );

      // Several TTLs after the takeover, the heartbeating instance is still there and passing.
      await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_SECONDS * 1000));
      for (const r of [second, third]) {
        expect((await instancesOn(r)).find((i) => i.id === instance.id)?.health.status).toBe(
          'passing',
        );
      }
      expect((await objectOf(instance.id))?.status?.leaseLapsed ?? false).toBe(false);
      expect(beats.filter((s) => s === 200).length).toBeGreaterThan(4);
      // Heartbeats and the takeover wrote nothing: the object is as it was created.
      expect((await objectOf(instance.id)).metadata.resourceVersion).toBe(createdVersion);

      stopHeartbeats = true;
      await heartbeating;
      // A health transition is written to the object, and every replica answers with it.
      const beat = (status: string) =>
        call(second, 'PUT', `/api/v1/instances/${instance.id}/heartbeat`, {
          status,
          output: `now ${status}`,
        });
      for (const status of ['critical', 'passing']) {
        expect((await beat(status)).status).toBe(200);
        await eventually(
          async () => (await objectOf(instance.id))?.status?.health === status,
          5000,
          `the object says ${status}`,
        );
        await eventually(
          async () =>
            (await instancesOn(third)).find((i) => i.id === instance.id)?.health.status === status,
          5000,
          `a follower answers ${status}`,
        );
      }
      expect((await objectOf(instance.id)).status).toEqual({
        health: 'passing',
        output: 'now passing',
        leaseLapsed: false,
      });

      // Deregistered through the leader: the object is gone when it answers 204.
      const removal = await call(second, 'DELETE', `/api/v1/instances/${instance.id}`);
      expect([removal.status, await removal.text()]).toEqual([204, '']);
      expect(await objectOf(instance.id)).toBeUndefined();
      expect((await call(second, 'DELETE', `/api/v1/instances/${local.id}`)).status).toBe(204);
      expect(await objectOf(local.id)).toBeUndefined();
      await eventually(
        async () => (await instancesOn(third)).length === 0,
        5000,
        'replicas drop the deregistered instance',
      );
    } finally {
      stopHeartbeats = true;
      await heartbeating;
    }
  }, 120_000);

  it('a write the API server refuses is answered 503 REGISTRATION_NOT_SAVED, and nothing changes', async () => {
    const leader = await eventually(
      async () => {
        for (const r of replicas) if (r.stopped !== true && (await leads(r))) return r;
        return undefined;
      },
      10_000,
      'a leader',
    );
    const follower = replicas.find((r) => r.stopped !== true && r !== leader)!;
    try {
      // The operator loses the right to create MaxineRegistrations.
      await withVerbs(['get', 'list', 'watch', 'patch', 'delete']);
      let port = 9000;
      const refused = await eventually(
        async () => {
          port += 1;
          const res = await call(leader, 'POST', '/api/v1/instances', {
            service: 'vm',
            namespace: 'shop',
            host: '192.0.2.50',
            port,
          });
          if (res.status === 201) {
            // The new rules had not reached the API server's authorizer yet.
            const { instance } = (await res.json()) as { instance: InstanceJson };
            await call(leader, 'DELETE', `/api/v1/instances/${instance.id}`);
            return undefined;
          }
          return { status: res.status, body: (await res.json()) as { error: { code: string } } };
        },
        10_000,
        'the registration is refused',
      );
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('REGISTRATION_NOT_SAVED');
      for (const r of [leader, follower])
        expect((await instancesOn(r)).filter((i) => i.host === '192.0.2.50')).toEqual([]);
      const objects = JSON.parse(await kubectl(['get', 'mreg', '-n', 'shop', '-o', 'json'])) as {
        items: { spec: { host: string } }[];
      };
      expect(objects.items.filter((o) => o.spec.host === '192.0.2.50')).toEqual([]);

      // The operator may create again, but not delete: a deregistration is refused and the
      // instance stays, in the registry and in the API server.
      await withVerbs(['get', 'list', 'watch', 'create', 'patch']);
      const res = await eventually(
        async () => {
          const r = await call(leader, 'POST', '/api/v1/instances', {
            service: 'vm',
            namespace: 'shop',
            host: '192.0.2.51',
            port: 80,
          });
          return r.status === 201 ? r : undefined;
        },
        10_000,
        'the registration is accepted again',
      );
      const { instance } = (await res.json()) as { instance: InstanceJson };
      const removal = await eventually(
        async () => {
          const r = await call(leader, 'DELETE', `/api/v1/instances/${instance.id}`);
          return r.status === 503 ? r : undefined;
        },
        10_000,
        'the deregistration is refused',
      );
      expect(((await removal.json()) as { error: { code: string } }).error.code).toBe(
        'REGISTRATION_NOT_SAVED',
      );
      expect((await call(leader, 'GET', `/api/v1/instances/${instance.id}`)).status).toBe(200);
      expect(await objectOf(instance.id)).toBeDefined();
      await withVerbs(['get', 'list', 'watch', 'create', 'patch', 'delete']);
      await eventually(
        async () =>
          (await call(leader, 'DELETE', `/api/v1/instances/${instance.id}`)).status === 204,
        10_000,
        'the deregistration is accepted again',
      );
      expect(await objectOf(instance.id)).toBeUndefined();
    } finally {
      await withVerbs(['get', 'list', 'watch', 'create', 'patch', 'delete']);
    }
  }, 60_000);

  it('a hand-edited object with bad fields is refused and reported, and changes nothing', async () => {
    const replica = replicas.find((r) => r.stopped !== true)!;
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: maxine.io/v1alpha1
kind: MaxineRegistration
metadata: { name: by-hand, namespace: shop }
spec:
  id: by-hand
  service: vm
  host: 192.0.2.99
  port: 80
  weight: 1
  ttlSeconds: 30
  registeredAt: '2026-01-01T00:00:00Z'
  metadata: { 'bad key!': x }
`,
    );
    await eventually(
      async () => {
        const metrics = await (await call(replica, 'GET', '/metrics')).text();
        return /^maxine_registration_objects_refused 1$/m.test(metrics);
      },
      5000,
      'the refusal is counted',
    );
    expect((await instancesOn(replica)).some((i) => i.id === 'by-hand')).toBe(false);
    expect((await fetch(`${replica.base}/readyz`)).status).toBe(200);
    // Fixed by hand: applied.
    await kubectl([
      'patch',
      'maxineregistration',
      'by-hand',
      '-n',
      'shop',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/metadata","value":{"rack":"r9"}}]',
    ]);
    await eventually(
      async () => (await instancesOn(replica)).some((i) => i.id === 'by-hand'),
      5000,
      'the fixed object is mirrored',
    );
    await kubectl(['delete', 'maxineregistration', 'by-hand', '-n', 'shop']);
    await eventually(
      async () => !(await instancesOn(replica)).some((i) => i.id === 'by-hand'),
      5000,
      'the deleted object is dropped',
    );
  }, 60_000);
});
