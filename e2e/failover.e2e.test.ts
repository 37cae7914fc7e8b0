/**
 * Failover of two operator replicas on a real control plane (etcd, kube-apiserver, and
 * controller-manager, scheduler and KWOK so a Deployment has Running, Ready pods):
 *
 * - replica A, a child process so it can be SIGKILLed without a chance to let go, leads; replica
 *   B (in-process) follows, both advertising their address on the Lease;
 * - each pod of a MaxineService has a heartbeating agent (the sidecar's RegistrationAgent, with
 *   the pod's bound ServiceAccount token) that talks to B, so every register and heartbeat is
 *   forwarded to A;
 * - a client discovers continuously from B, the replica that survives;
 * - a sidecar's registry copy (the sidecar's RegistryMirror) follows the event stream through a
 *   front that, like the Service, sends each new connection to a replica that accepts it: A
 *   first, B once A is gone.
 *
 * - the pods carry the `maxine.io/healthy` readiness gate (as injected pods do): A writes the
 *   condition, one pod's check fails (False), and B follows the conditions;
 * - a registration from outside the cluster (a VM's, through B, forwarded to A) is kept by A as
 *   a MaxineRegistration object, and its client keeps heartbeating through B.
 *
 * Then A is killed with SIGKILL: B takes over within the lease duration, no declared service,
 * pod instance, external registration or health state is lost, every discovery answer during the failover names live pods only (a pod
 * deleted while nobody leads is never named once B saw it go), and the
 * heartbeats resume at B (now leader, taking them itself). The failover time is printed and
 * recorded in docs/operations.md#high-availability.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { createLogger } from '../common/logger.js';
import type { Operator } from '../operator/operator.js';
import { RegistrationAgent } from '../sidecar/agent.js';
import { RegistryMirror } from '../sidecar/mirror.js';
import { logSink } from '../test/helpers/operator.js';
import { startTcpFront } from '../test/helpers/tcp-front.js';
import type { TcpFront } from '../test/helpers/tcp-front.js';
import { eventually } from '../test/helpers/operator.js';
import { spawnListening } from '../test/helpers/spawn.js';
import { ensureBinaries, freePorts, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { podsOf, podToken } from './injection.js';
import type { Pod } from './injection.js';
import {
  E2E_ADMIN,
  installCrds,
  kubectl as kubectlIn,
  operatorKubeconfig,
  startKubeOperator,
} from './operator-identity.js';

/** Short, so the test is quick; the manifests' defaults are 15 s and 5 s. */
const LEASE_SECONDS = 4;
const RENEW_SECONDS = 1;
const TTL_SECONDS = 3;

let cp: ControlPlane;
let child: ChildProcess | undefined;
let childLog: () => string = () => '';
let follower: Operator | undefined;
let followerUrl = '';
/** One static admin token known to both replicas (the leader authenticates forwarded writes). */
const adminToken = randomBytes(24).toString('base64url');
const admin = { authorization: `Bearer ${adminToken}` };
let tokensFile = '';
const agents: RegistrationAgent[] = [];
let mirror: RegistryMirror | undefined;
let front: TcpFront | undefined;

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

interface Item {
  id: string;
  host: string;
  source: string;
  lastHeartbeat?: string;
  health: { status: string };
  metadata: Record<string, string>;
}

async function health(url: string): Promise<{ leader: boolean } | undefined> {
  try {
    return (await (await fetch(`${url}/healthz`)).json()) as { leader: boolean };
  } catch {
    return undefined;
  }
}

async function instances(): Promise<Item[]> {
  const res = await fetch(`${followerUrl}/api/v1/services/shop/web`, { headers: admin });
  return res.status === 200 ? ((await res.json()) as { items: Item[] }).items : [];
}

async function forwardedWrites(): Promise<Record<string, number>> {
  const text = await (await fetch(`${followerUrl}/metrics`, { headers: admin })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^maxine_forwarded_writes_total\{result="(\w+)"\} (\d+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

/** The leader as a real process: `--advertise-url` is where B forwards writes. */
async function startLeader(kubeconfig: string, port: number): Promise<string> {
  const started = await spawnListening(
    [
      '--import',
      'tsx',
      'operator/main.ts',
      '--mode',
      'kubernetes',
      '--kubeconfig',
      kubeconfig,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--advertise-url',
      `http://127.0.0.1:${port}`,
      '--webhook',
      'false',
      '--pod-name',
      'replica-a',
      '--lease-duration-seconds',
      String(LEASE_SECONDS),
      '--lease-renew-seconds',
      String(RENEW_SECONDS),
      '--static-tokens-file',
      tokensFile,
      '--bootstrap-admins',
      `User:${E2E_ADMIN}`,
    ],
    { timeoutMs: 120_000 },
  );
  child = started.proc;
  childLog = started.output;
  return `http://127.0.0.1:${port}`;
}

/** What the pod's sidecar does about registration: the agent, with the pod's bound token. */
async function startAgent(pod: Pod, status: 'passing' | 'critical'): Promise<RegistrationAgent> {
  const token = await podToken(cp, pod);
  const agent = new RegistrationAgent({
    operatorUrl: followerUrl,
    registration: {
      service: 'web',
      namespace: 'shop',
      host: pod.status.podIP!,
      port: 8080,
      ttlSeconds: TTL_SECONDS,
      metadata: { pod: pod.metadata.name },
    },
    token: () => Promise.resolve(token),
    health: () => ({ status, output: status === 'critical' ? 'check failed: 503' : 'ok' }),
    logger: createLogger('warn', new Writable({ write: (_c, _e, done) => done() }), 'agent'),
    requestTimeoutMs: 2000,
  });
  agent.start();
  return agent;
}

/** A client outside the cluster (a VM) registering itself through B with the admin token. */
function startExternalAgent(): RegistrationAgent {
  const agent = new RegistrationAgent({
    operatorUrl: followerUrl,
    registration: {
      service: 'orders',
      namespace: 'shop',
      host: '192.0.2.10',
      port: 9090,
      ttlSeconds: TTL_SECONDS,
      metadata: { vm: 'orders-vm-1' },
    },
    token: () => Promise.resolve(adminToken),
    logger: createLogger('warn', new Writable({ write: (_c, _e, done) => done() }), 'agent'),
    requestTimeoutMs: 2000,
  });
  agent.start();
  return agent;
}

async function items(service: string): Promise<Item[]> {
  const res = await fetch(`${followerUrl}/api/v1/services/shop/${service}`, { headers: admin });
  return res.status === 200 ? ((await res.json()) as { items: Item[] }).items : [];
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  lastTransitionTime?: string;
}

/** Each pod's `maxine.io/healthy` condition, by pod name. */
async function healthConditions(): Promise<Map<string, Condition | undefined>> {
  const out = new Map<string, Condition | undefined>();
  for (const pod of await podsOf(cp, 'shop', 'web')) {
    const conditions = (pod.status as { conditions?: Condition[] }).conditions ?? [];
    out.set(
      pod.metadata.name,
      conditions.find((c) => c.type === 'maxine.io/healthy'),
    );
  }
  return out;
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true });
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  tokensFile = join(cp.dir, 'failover-tokens.yaml');
  await writeFile(tokensFile, stringify({ tokens: [{ token: adminToken, user: E2E_ADMIN }] }), {
    mode: 0o600,
  });
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 8080 }]
  heartbeat: { ttlSeconds: ${TTL_SECONDS} }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: orders, namespace: shop }
spec: { selector: { app: orders } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 3
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      readinessGates: [{ conditionType: maxine.io/healthy }]
      containers: [{ name: web, image: fake.example/web:1, ports: [{ containerPort: 8080 }] }]
`,
  );
}, 30 * 60_000);

afterAll(async () => {
  mirror?.stop();
  await front?.close();
  await Promise.all(agents.map((a) => a.stop()));
  child?.kill('SIGKILL');
  await follower?.stop();
  await cp?.stop();
});

describe('failover of the leader (two replicas)', () => {
  it('kill -9 of the leader: the follower takes over within the lease, nothing is lost, writes resume', async () => {
    const [leaderPort, followerPort] = (await freePorts(2)) as [number, number];
    const leaderUrl = await startLeader(await operatorKubeconfig(cp), leaderPort);
    await eventually(async () => (await health(leaderUrl))?.leader === true, 15_000, 'A leads');

    ({ operator: follower } = await startKubeOperator(cp, {
      staticTokensFile: tokensFile,
      port: followerPort,
      host: '127.0.0.1',
      podName: 'replica-b',
      advertiseUrl: `http://127.0.0.1:${followerPort}`,
      leaseDurationSeconds: LEASE_SECONDS,
      leaseRenewSeconds: RENEW_SECONDS,
    }));
    followerUrl = `http://127.0.0.1:${followerPort}`;
    expect((await health(followerUrl))?.leader).toBe(false);
    const lease = JSON.parse(
      await kubectl(['get', 'lease', 'maxine-operator', '-n', 'maxine-system', '-o', 'json']),
    ) as { spec: { holderIdentity: string }; metadata: { annotations: Record<string, string> } };
    expect(lease.spec.holderIdentity).toBe('replica-a');
    expect(lease.metadata.annotations['maxine.io/leader-url']).toBe(leaderUrl);

    // The pods, and their agents heartbeating through B (forwarded to A).
    const pods = await eventually(
      async () => {
        const list = await podsOf(cp, 'shop', 'web');
        return list.length === 3 && list.every((p) => p.status.podIP) && list;
      },
      60_000,
      'three Running pods with IPs',
    );
    const podIps = new Set(pods.map((p) => p.status.podIP!));
    // The third pod's check fails: A writes its condition False, B follows it.
    for (const [n, pod] of pods.entries())
      agents.push(await startAgent(pod, n === 2 ? 'critical' : 'passing'));
    const failing = pods[2]!.metadata.name;
    await eventually(
      () => Promise.resolve(agents.every((a) => a.state === 'registered')),
      30_000,
      'every agent registered through the follower',
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}: ${JSON.stringify(agents.map((a) => a.status()))}\n${childLog()}`,
      );
    });
    // Accepted by the leader: B's own registry saw none of those writes.
    const before = await forwardedWrites();
    expect(before.forwarded).toBeGreaterThanOrEqual(3);
    await eventually(async () => (await instances()).length === 3, 10_000, 'B sees the three pods');
    expect((await instances()).every((i) => i.lastHeartbeat === undefined)).toBe(true);
    // A VM registers through B (forwarded): A keeps it as a MaxineRegistration, B mirrors it.
    const vm = startExternalAgent();
    agents.push(vm);
    await eventually(
      async () => vm.state === 'registered' && (await items('orders')).length === 1,
      20_000,
      'the external registration is kept and mirrored at B',
    );
    const vmId = vm.instanceId!;
    const stored = JSON.parse(await kubectl(['get', 'mreg', '-n', 'shop', '-o', 'json'])) as {
      items: { spec: { host: string } }[];
    };
    expect(stored.items.map((o) => o.spec.host)).toEqual(['192.0.2.10']);
    // The health A decided is on the pods: True for the two passing, False for the failing one,
    // and B answers with it (the failing pod is critical there too).
    const conditionsBefore = await eventually(
      async () => {
        const c = await healthConditions();
        const ok = [...c.entries()].every(([name, cond]) =>
          name === failing ? cond?.status === 'False' : cond?.status === 'True',
        );
        const atB = (await instances()).find((i) => i.metadata.pod === failing);
        return ok && atB?.health.status === 'critical' && c;
      },
      20_000,
      'A wrote the conditions (one False) and B follows them',
    );

    // A sidecar's copy of the registry, its stream on A (the front's first choice) for now.
    front = await startTcpFront(leaderPort, followerPort);
    const mirrorLog = logSink();
    const mirrorToken = await podToken(cp, pods[0]!);
    mirror = new RegistryMirror({
      operatorUrl: front.url,
      logger: createLogger('info', mirrorLog.sink, 'sidecar'),
      token: () => Promise.resolve(mirrorToken),
      reconnectBaseMs: 100,
      reconnectMaxMs: 1000,
    });
    mirror.start();
    await mirror.synchronised();
    expect(mirror.state.instances('shop', 'web')).toHaveLength(3);

    // A client discovers from B all along.
    const answers: { at: number; status: number; hosts: string[]; ids: string[] }[] = [];
    let discovering = true;
    const discovery = (async () => {
      while (discovering) {
        const res = await fetch(`${followerUrl}/api/v1/discover/shop/web?all=true`, {
          headers: admin,
        });
        const body = (await res.json()) as { instances?: { id: string; host: string }[] };
        answers.push({
          at: Date.now(),
          status: res.status,
          hosts: (body.instances ?? []).map((i) => i.host),
          ids: (body.instances ?? []).map((i) => i.id),
        });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    await new Promise((r) => setTimeout(r, 1000));
    child!.kill('SIGKILL');
    const killedAt = Date.now();
    // While nobody leads, one pod goes away (its sidecar stops with it): from the moment B has
    // seen it go, discovery must never name it again.
    const gone = pods[0]!;
    // By instance id: KWOK may give the replacement pod the same IP.
    const goneId = (await instances()).find((i) => i.metadata.pod === gone.metadata.name)!.id;
    await agents[0]!.stop();
    await kubectl(['delete', 'pod', gone.metadata.name, '-n', 'shop', '--wait=false']);
    const leads = eventually(
      async () => (await health(followerUrl))?.leader === true,
      (LEASE_SECONDS + 3) * 1000,
      'B leads',
    ).then(() => Date.now());
    await eventually(
      async () => !(await instances()).some((i) => i.metadata.pod === gone.metadata.name),
      10_000,
      'B drops the deleted pod',
    );
    const goneAt = Date.now();
    const takeoverMs = (await leads) - killedAt;

    // Heartbeats resume at B: the instance of each pod whose agent runs is renewed after B
    // took over; the replacement pod (no agent here) is there too.
    const live = agents.slice(1, 3);
    const resumed = await eventually(
      async () => {
        const items = await instances();
        const renewed = items.filter(
          (i) => i.lastHeartbeat !== undefined && Date.parse(i.lastHeartbeat) > killedAt,
        );
        return (
          items.length === 3 &&
          renewed.length === live.length &&
          live.every((a) => a.state === 'registered') &&
          items
        );
      },
      30_000,
      'heartbeats renewed at B, the replacement pod listed',
    );
    const resumedMs = Date.now() - killedAt;
    const podsNow = await podsOf(cp, 'shop', 'web');
    for (const pod of podsNow) podIps.add(pod.status.podIP!);
    await new Promise((r) => setTimeout(r, 500));
    discovering = false;
    await discovery;
    const after = await forwardedWrites();
    process.stdout.write(
      `failover after SIGKILL of the leader: B leads after ${takeoverMs} ms, heartbeats renewed at B after ${resumedMs} ms ` +
        `(lease ${LEASE_SECONDS} s, renew ${RENEW_SECONDS} s, TTL ${TTL_SECONDS} s); ` +
        `${answers.length} discovery answers from B; forwarded writes ${JSON.stringify(after)}\n`,
    );

    expect(takeoverMs).toBeLessThanOrEqual((LEASE_SECONDS + RENEW_SECONDS + 1) * 1000);
    // Nothing lost: the pods' instances (each pod once, with the health A had decided) and the
    // declared services.
    expect(resumed.map((i) => i.metadata.pod).sort()).toEqual(
      podsNow.map((p) => p.metadata.name).sort(),
    );
    expect(resumed.every((i) => i.source === 'kubernetes')).toBe(true);
    for (const i of resumed)
      expect([i.metadata.pod, i.health.status]).toEqual([
        i.metadata.pod,
        i.metadata.pod === failing ? 'critical' : 'passing',
      ]);
    const services = (await (
      await fetch(`${followerUrl}/api/v1/services?namespace=shop`, { headers: admin })
    ).json()) as { services: { name: string; declared: boolean }[] };
    expect(services.services.filter((s) => s.declared).map((s) => s.name)).toEqual(
      expect.arrayContaining(['orders', 'web']),
    );
    // Discovery during the failover: answered every time, live pods only, never empty.
    expect(answers.length).toBeGreaterThan(20);
    expect(answers.filter((a) => a.at > killedAt).length).toBeGreaterThan(10);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.hosts.length).toBeGreaterThan(0);
      for (const host of a.hosts) expect(podIps.has(host)).toBe(true);
      if (a.at > goneAt) expect(a.ids).not.toContain(goneId);
    }
    expect(answers.filter((a) => a.at > goneAt).length).toBeGreaterThan(5);
    // The health conditions B started from are kept: B adopted them without writing (same
    // transition times), and the failing pod never came back in an answer.
    const conditionsAfter = await healthConditions();
    for (const name of [pods[1]!.metadata.name, failing])
      expect(conditionsAfter.get(name)).toEqual(conditionsBefore.get(name));
    const failingIp = pods[2]!.status.podIP!;
    for (const a of answers) expect(a.hosts).not.toContain(failingIp);
    // The external registration survived the failover, and its client's heartbeats reach B.
    const external = await eventually(
      async () => {
        const [one] = await items('orders');
        return (
          one?.id === vmId &&
          one.lastHeartbeat !== undefined &&
          Date.parse(one.lastHeartbeat) > killedAt &&
          one
        );
      },
      20_000,
      'the external registration renewed at B',
    );
    expect(external.health.status).toBe('passing');

    // The copy moved to B: a snapshot of B's log (another epoch), never A's numbers replayed
    // against B's log; then B's events: a service declared after the failover arrives.
    const synced = () => mirrorLog.logs.filter((l) => l.msg === 'registry copy synced');
    await eventually(
      () => Promise.resolve(synced().length >= 2 && mirror!.status().connected),
      30_000,
      'the copy resynced from B',
    );
    const [fromA, fromB] = synced();
    expect(fromB!.epoch).toBe(follower.events.epoch);
    expect(fromA!.epoch).not.toBe(fromB!.epoch);
    expect(mirror.state.instances('shop', 'web')).toHaveLength(3);
    await kubectl(
      ['apply', '-f', '-'],
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: late, namespace: shop }\nspec: {}\n',
    );
    await eventually(
      () => Promise.resolve(mirror!.state.spec('shop', 'late') !== undefined),
      10_000,
      'the copy hears B',
    );

    // B now takes writes itself: none forwarded after it leads.
    const settled = await forwardedWrites();
    await new Promise((r) => setTimeout(r, 2 * TTL_SECONDS * 1000));
    expect(await forwardedWrites()).toEqual(settled);
    const lease2 = JSON.parse(
      await kubectl(['get', 'lease', 'maxine-operator', '-n', 'maxine-system', '-o', 'json']),
    ) as { spec: { holderIdentity: string }; metadata: { annotations: Record<string, string> } };
    expect(lease2.spec.holderIdentity).toBe('replica-b');
    expect(lease2.metadata.annotations['maxine.io/leader-url']).toBe(followerUrl);
  });
});
