/**
 * The Kubernetes-mode scale run (issue 15): a real control plane (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, KWOK playing kubelet), N pods across M
 * MaxineServices, and S simulated sidecars in this process (the sidecar's own registration
 * agent, each with its pod's bound token, plus an event-stream subscriber each).
 *
 * Figures: operator cold start to ready with every pod an instance; simulated sidecars
 * registered; event fan-out latency (a MaxineService change stored by the API server → the
 * event at each subscriber of that service); convergence after replacing R pods, as a rollout
 * does; operator RSS and CPU per phase; the operator's API server requests per minute per phase,
 * counted from the API server's own audit log (a policy that records only the operator's
 * ServiceAccount).
 *
 * Writes its section of bench/RESULTS-kubernetes.md. Run: npm run bench:k8s-scale
 * (BENCH_SCALE_PODS=10000, BENCH_SCALE_SERVICES=1000, BENCH_SCALE_SIDECARS=1000,
 * BENCH_SCALE_ROLLOUT=1000, BENCH_SCALE_CHANGES=20, BENCH_SCALE_STEADY_SECONDS=60).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { stringify } from 'yaml';
import { ensureBinaries, startControlPlane } from '../e2e/controlplane/cluster.js';
import type { ControlPlane } from '../e2e/controlplane/cluster.js';
import { installCrds, kubectl, operatorKubeconfig } from '../e2e/operator-identity.js';
import { spawnListening } from '../test/helpers/spawn.js';
import { RegistrationAgent } from '../sidecar/agent.js';
import { createLogger } from '../common/logger.js';

const int = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
  return n;
};
const PODS = int('BENCH_SCALE_PODS', 10_000);
const SERVICES = int('BENCH_SCALE_SERVICES', 1_000);
const SIDECARS = Math.min(int('BENCH_SCALE_SIDECARS', 1_000), PODS);
const ROLLOUT = Math.min(int('BENCH_SCALE_ROLLOUT', 1_000), PODS);
const CHANGES = int('BENCH_SCALE_CHANGES', 20);
const STEADY_SECONDS = int('BENCH_SCALE_STEADY_SECONDS', 60);
const NS = 'scale';
const OPERATOR_USER = 'system:serviceaccount:maxine-system:maxine-operator';
const ROOT = process.cwd();
const RESULTS = join(ROOT, 'bench', 'RESULTS-kubernetes.md');
/** Where this run's section starts in RESULTS-kubernetes.md (bench/kubernetes.ts keeps what follows it). */
const SCALE_MARKER = '<!-- bench:k8s-scale -->';

const log = (line: string): void => void process.stderr.write(`[scale] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms`);
    await sleep(250);
  }
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (t: T) => Promise<void>) {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A process's resident memory (VmRSS, VmHWM) and CPU seconds so far (utime + stime). */
function usage(pid: number): { rssMb: number; hwmMb: number; cpuSec: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, cpuSec: ticks / 100 };
}

/** The audit policy: every request of the operator's ServiceAccount, metadata only; nothing else. */
const AUDIT_POLICY = stringify({
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata', users: [OPERATOR_USER] }, { level: 'None' }],
});

interface AuditRecord {
  auditID: string;
  verb: string;
  objectRef?: { resource?: string; subresource?: string };
  requestReceivedTimestamp: string;
}

/** The operator's requests (one per auditID) received in [from, to) (epoch ms), by verb/resource. */
function auditCounts(file: string, from: number, to: number) {
  const seen = new Set<string>();
  const by = new Map<string, number>();
  if (!existsSync(file)) return { total: 0, by };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const r = JSON.parse(line) as AuditRecord;
    if (seen.has(r.auditID)) continue;
    seen.add(r.auditID);
    const at = Date.parse(r.requestReceivedTimestamp);
    if (at < from || at >= to) continue;
    const resource = [r.objectRef?.resource, r.objectRef?.subresource].filter(Boolean).join('/');
    const key = `${r.verb} ${resource || '-'}`;
    by.set(key, (by.get(key) ?? 0) + 1);
  }
  let total = 0;
  for (const n of by.values()) total += n;
  return { total, by };
}

const serviceName = (i: number) => `svc-${i}`;
const podName = (service: number, k: number, gen = 0) => `${serviceName(service)}-g${gen}-${k}`;

function podBody(service: number, k: number, gen = 0): V1Pod {
  return {
    metadata: {
      name: podName(service, k, gen),
      namespace: NS,
      labels: { app: serviceName(service) },
    },
    spec: {
      // Straight onto the KWOK node: the run measures Maxine, not the scheduler's throughput.
      nodeName: 'kwok-node-0',
      // The pods with a simulated sidecar carry the readiness gate the webhook adds.
      ...(gen === 0 &&
        k === 0 &&
        service < SIDECARS && {
          readinessGates: [{ conditionType: 'maxine.io/healthy' }],
        }),
      containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }] }],
    },
  };
}

interface Subscriber {
  ws: WebSocket | undefined;
  bytes: number;
  events: number;
  /** Connections closed before their snapshot ended (refused while the snapshot queue is full). */
  retries: number;
  ready: Promise<void>;
  /** Called with each event's type and service name, at receipt. */
  onEvent?: (type: string, service: string | undefined, at: number) => void;
}

/**
 * An event-stream subscriber as the sidecar's mirror is: a snapshot first, and a connection
 * closed before the snapshot ended (the operator bounds concurrent snapshots and refuses the
 * rest with "try again later") is made again after a jittered back-off.
 */
function subscribe(base: string, token: string, services: string[]): Subscriber {
  const url = `${base.replace('http', 'ws')}/api/v1/events?snapshot=true&services=${services.join(',')}`;
  const sub: Subscriber = {
    ws: undefined,
    bytes: 0,
    events: 0,
    retries: 0,
    ready: Promise.resolve(),
  };
  sub.ready = new Promise((resolve) => {
    let synced = false;
    const connect = (): void => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
      sub.ws = ws;
      ws.on('error', () => undefined); // the close that follows decides
      ws.on('close', () => {
        if (synced) return;
        sub.retries += 1;
        const backoff = Math.min(5_000, 100 * 2 ** Math.min(sub.retries, 6));
        setTimeout(connect, backoff / 2 + Math.random() * (backoff / 2));
      });
      ws.on('message', (data: Buffer) => {
        const at = performance.now();
        sub.bytes += data.length;
        sub.events += 1;
        const msg = JSON.parse(data.toString()) as { type: string; service?: { name: string } };
        if (msg.type === 'resync_end') {
          synced = true;
          resolve();
        }
        sub.onEvent?.(msg.type, msg.service?.name, at);
      });
    };
    connect();
  });
  return sub;
}

interface Run {
  cp: ControlPlane;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  auditLog: string;
  children: ChildProcess[];
  agents: RegistrationAgent[];
  subscribers: Subscriber[];
  perService: number;
  figures: Record<string, string>;
}

interface Operated {
  pid: number;
  base: string;
  admin: { authorization: string };
}

type Window = { from: number; to: number };

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** MaxineServices (each depending on svc-0) and their pods, until KWOK runs every pod. */
async function createObjects(run: Run): Promise<{ service: number; k: number }[]> {
  const t = performance.now();
  await pool(
    Array.from({ length: SERVICES }, (_, i) => i),
    32,
    async (i) => {
      await run.custom.createNamespacedCustomObject({
        group: 'maxine.io',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'maxineservices',
        body: {
          apiVersion: 'maxine.io/v1alpha1',
          kind: 'MaxineService',
          metadata: { name: serviceName(i), namespace: NS },
          spec: {
            selector: { app: serviceName(i) },
            ports: [{ name: 'http', port: 8080 }],
            config: { V: 'v0' },
            ...(i > 0 && { dependencies: [{ name: serviceName(0) }] }),
          },
        },
      });
    },
  );
  run.figures.services = secs(performance.now() - t);
  const podsStarted = performance.now();
  const podIndex = Array.from({ length: PODS }, (_, n) => ({
    service: n % SERVICES,
    k: Math.floor(n / SERVICES),
  }));
  await pool(podIndex, 64, async ({ service, k }) => {
    await run.core.createNamespacedPod({ namespace: NS, body: podBody(service, k) });
  });
  run.figures.podsCreated = secs(performance.now() - podsStarted);
  log(`${PODS} pods created in ${run.figures.podsCreated}; waiting for KWOK to run them`);
  await waitFor(
    'every pod Running',
    async () => {
      const left = await run.core.listNamespacedPod({
        namespace: NS,
        fieldSelector: 'status.phase!=Running',
        limit: 1,
      });
      return left.items.length === 0;
    },
    1_800_000,
  );
  run.figures.podsRunning = secs(performance.now() - podsStarted);
  log(`${PODS} pods Running after ${run.figures.podsRunning}`);
  return podIndex;
}

/** Operator process spawn → /readyz → every pod an instance. */
async function coldStart(run: Run, opKubeconfig: string): Promise<Operated & { window: Window }> {
  const adminToken = randomBytes(24).toString('base64url');
  const tokensFile = join(run.cp.dir, 'scale-tokens.yaml');
  writeFileSync(tokensFile, stringify({ tokens: [{ token: adminToken, user: 'scale-admin' }] }), {
    mode: 0o600,
  });
  const admin = { authorization: `Bearer ${adminToken}` };
  const from = Date.now();
  const spawned = performance.now();
  const { proc, port } = await spawnListening(
    [
      'dist/operator/main.js',
      '--mode',
      'kubernetes',
      '--kubeconfig',
      opKubeconfig,
      '--port',
      '0',
      '--webhook',
      'false',
      // info: spawnListening reads the port from the `listening` line.
      '--log-level',
      'info',
      '--static-tokens-file',
      tokensFile,
      '--bootstrap-admins',
      'User:scale-admin',
    ],
    { timeoutMs: 600_000, maxLines: 200 },
  );
  run.children.push(proc);
  const base = `http://127.0.0.1:${port}`;
  const total = async (): Promise<number> => {
    const r = await fetch(`${base}/api/v1/services?namespace=${NS}`, { headers: admin });
    const body = (await r.json()) as { services: { instances: { total: number } }[] };
    return body.services.reduce((sum, x) => sum + x.instances.total, 0);
  };
  await waitFor('operator /readyz', async () => (await fetch(`${base}/readyz`)).ok, 600_000);
  run.figures.ready = secs(performance.now() - spawned);
  await waitFor('every pod an instance', async () => (await total()) >= PODS, 600_000);
  run.figures.allInstances = secs(performance.now() - spawned);
  log(`ready in ${run.figures.ready}, ${PODS} instances at ${run.figures.allInstances}`);
  return { pid: proc.pid as number, base, admin, window: { from, to: Date.now() } };
}

/** One simulated sidecar per pod of the first services: a bound token, an agent, a stream. */
async function startSidecars(
  run: Run,
  op: Operated,
  pods: readonly { service: number; k: number }[],
): Promise<void> {
  const tokens: string[] = [];
  const silent = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
  await pool(
    pods.map((p, n) => ({ ...p, n })),
    32,
    async ({ service, k, n }) => {
      const pod = await run.core.readNamespacedPod({ namespace: NS, name: podName(service, k) });
      const minted = await run.core.createNamespacedServiceAccountToken({
        name: 'default',
        namespace: NS,
        body: {
          spec: {
            audiences: ['maxine.io'],
            expirationSeconds: 3600,
            boundObjectRef: { kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
          },
        },
      });
      tokens[n] = minted.status?.token ?? '';
      run.agents[n] = new RegistrationAgent({
        operatorUrl: op.base,
        registration: {
          service: serviceName(service),
          namespace: NS,
          host: pod.status?.podIP ?? '',
          port: 8080,
          ttlSeconds: 30,
        },
        logger: silent,
        token: () => Promise.resolve(tokens[n]),
      });
    },
  );
  const started = performance.now();
  for (const agent of run.agents) agent.start();
  await waitFor(
    'every simulated sidecar registered',
    () => Promise.resolve(run.agents.every((a) => a.state === 'registered')),
    300_000,
  );
  run.figures.registered = secs(performance.now() - started);
  log(`${pods.length} sidecars registered in ${run.figures.registered}`);
  const subscribing = performance.now();
  pods.forEach(({ service }, n) => {
    const own = `${NS}/${serviceName(service)}`;
    const shared = `${NS}/${serviceName(0)}`;
    run.subscribers.push(
      subscribe(op.base, tokens[n] as string, own === shared ? [own] : [own, shared]),
    );
  });
  await Promise.all(run.subscribers.map((x) => x.ready));
  run.figures.subscribed = secs(performance.now() - subscribing);
  const snapshot = run.subscribers.map((x) => x.bytes).sort((a, b) => a - b);
  run.figures.snapshotBytes = `${quantile(snapshot, 0.5)} / ${snapshot[snapshot.length - 1] ?? 0}`;
  const retries = run.subscribers.reduce((sum, x) => sum + x.retries, 0);
  run.figures.snapshotRetries = String(retries);
  log(`${pods.length} event streams synced in ${run.figures.subscribed}`);
}

/** A change of svc-0 (every sidecar's dependency) stored → config_changed at each subscriber. */
async function fanOut(run: Run): Promise<void> {
  const latencies: number[] = [];
  for (let n = 1; n <= CHANGES; n++) {
    const got = new Map<Subscriber, number>();
    for (const sub of run.subscribers)
      sub.onEvent = (type, service, at) => {
        if (type === 'config_changed' && service === serviceName(0) && !got.has(sub))
          got.set(sub, at);
      };
    await run.custom.patchNamespacedCustomObject({
      group: 'maxine.io',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'maxineservices',
      name: serviceName(0),
      body: [{ op: 'replace', path: '/spec/config/V', value: `v${n}` }],
    });
    const stored = performance.now();
    await waitFor(
      'every subscriber got the change',
      () => Promise.resolve(got.size === run.subscribers.length),
      30_000,
    );
    for (const at of got.values()) latencies.push(at - stored);
  }
  for (const sub of run.subscribers) delete sub.onEvent;
  latencies.sort((a, b) => a - b);
  const ms = (q: number) => quantile(latencies, q).toFixed(1);
  run.figures.fanOut = `${ms(0.5)} / ${ms(0.99)} / ${ms(1)} ms`;
  log(`fan-out p50 / p99 / max ${run.figures.fanOut}`);
}

/** The pods of whole services (not the sidecars') replaced, as a rollout does. */
async function rollout(run: Run, op: Operated): Promise<{ window: Window; pods: number }> {
  // A sidecar's pod (k = 0 of the first SIDECARS services) stays: its agent keeps heartbeating.
  const firstReplaced = (service: number) => (service < SIDECARS ? 1 : 0);
  const rolled: number[] = [];
  let count = 0;
  for (let i = SERVICES - 1; i >= 0 && count < ROLLOUT; i--) {
    rolled.push(i);
    count += run.perService - firstReplaced(i);
  }
  const replaced = rolled.flatMap((service) =>
    Array.from({ length: run.perService - firstReplaced(service) }, (_, j) => ({
      service,
      k: j + firstReplaced(service),
    })),
  );
  const from = Date.now();
  const started = performance.now();
  await pool(replaced, 64, async ({ service, k }) => {
    await run.core.createNamespacedPod({ namespace: NS, body: podBody(service, k, 1) });
    await run.core.deleteNamespacedPod({
      namespace: NS,
      name: podName(service, k),
      gracePeriodSeconds: 0,
    });
  });
  run.figures.rolloutWrites = secs(performance.now() - started);
  const converged = async (): Promise<boolean> => {
    for (const service of rolled) {
      const r = await fetch(`${op.base}/api/v1/services/${NS}/${serviceName(service)}`, {
        headers: op.admin,
      });
      const body = (await r.json()) as {
        items?: { metadata?: { pod?: string }; health?: { status?: string } }[];
      };
      const items = body.items ?? [];
      // Converged: exactly the new pods, every one discoverable (its pod Running and Ready).
      if (items.length !== run.perService) return false;
      // The sidecar's pod of the service (k = 0) stays; every other pod is a new one.
      const kept = firstReplaced(service) === 1 ? podName(service, 0) : undefined;
      const fresh = (pod: string) => pod.includes('-g1-') || pod === kept;
      if (items.some((x) => !fresh(x.metadata?.pod ?? '') || x.health?.status !== 'passing'))
        return false;
    }
    return true;
  };
  await waitFor('rollout converged', converged, 900_000);
  run.figures.rollout = secs(performance.now() - started);
  run.figures.rolled = `${replaced.length} pods of ${rolled.length} services`;
  log(`rollout of ${replaced.length} pods converged in ${run.figures.rollout}`);
  return { window: { from, to: Date.now() + 2_000 }, pods: replaced.length };
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'operator', 'main.js')))
    throw new Error('dist/operator/main.js is missing: run npm run build');
  const perService = Math.ceil(PODS / SERVICES);
  log(`${PODS} pods over ${SERVICES} services (${perService} each), ${SIDECARS} sidecars`);
  await ensureBinaries();
  const auditDir = join(process.env.TMPDIR ?? '/tmp', `maxine-scale-audit-${process.pid}`);
  mkdirSync(auditDir, { recursive: true });
  const auditLog = join(auditDir, 'audit.log');
  writeFileSync(join(auditDir, 'policy.yaml'), AUDIT_POLICY);
  const cp = await startControlPlane({
    workloads: true,
    apiserverArgs: [
      `--audit-policy-file=${join(auditDir, 'policy.yaml')}`,
      `--audit-log-path=${auditLog}`,
      '--audit-log-maxsize=4096',
      '--audit-log-format=json',
      // A 10,000-pod namespace is listed and watched; the defaults throttle the bench itself.
      '--max-requests-inflight=2000',
      '--max-mutating-requests-inflight=1000',
    ],
  });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  const run: Run = {
    cp,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    auditLog,
    children: [],
    agents: [],
    subscribers: [],
    perService,
    figures: {},
  };
  process.on('exit', () => run.children.forEach((c) => c.kill('SIGKILL')));
  try {
    await installCrds(cp);
    await kubectl(cp, ['create', 'namespace', NS]);
    const opKubeconfig = await operatorKubeconfig(cp);
    const podIndex = await createObjects(run);
    const op = await coldStart(run, opKubeconfig);
    const afterCold = usage(op.pid);
    const sidecars: Window = { from: Date.now(), to: 0 };
    await startSidecars(run, op, podIndex.slice(0, SIDECARS));
    await fanOut(run);
    sidecars.to = Date.now();
    const steady: Window = { from: Date.now(), to: 0 };
    const steadyBefore = usage(op.pid);
    await sleep(STEADY_SECONDS * 1000);
    const steadyAfter = usage(op.pid);
    steady.to = Date.now();
    const rolloutBefore = usage(op.pid);
    const rolled = await rollout(run, op);
    const rolloutAfter = usage(op.pid);
    const section = report(run, {
      windows: { cold: op.window, sidecars, steady, rollout: rolled.window },
      usage: { afterCold, steadyBefore, steadyAfter, rolloutBefore, rolloutAfter },
    });
    const before = existsSync(RESULTS)
      ? readFileSync(RESULTS, 'utf8')
      : '# Kubernetes-mode benchmark\n';
    const at = before.indexOf(SCALE_MARKER);
    writeFileSync(RESULTS, `${(at === -1 ? before : before.slice(0, at)).trimEnd()}\n\n${section}`);
    process.stdout.write(section);
    rmSync(auditDir, { recursive: true, force: true });
  } finally {
    for (const sub of run.subscribers) sub.ws?.terminate();
    await Promise.all(run.agents.map((a) => a.stop().catch(() => undefined)));
    for (const c of run.children) c.kill('SIGTERM');
    await cp.stop();
  }
}

type Usage = ReturnType<typeof usage>;

function report(
  run: Run,
  m: {
    windows: Record<'cold' | 'sidecars' | 'steady' | 'rollout', Window>;
    usage: Record<
      'afterCold' | 'steadyBefore' | 'steadyAfter' | 'rolloutBefore' | 'rolloutAfter',
      Usage
    >;
  },
): string {
  const f = run.figures;
  const eventsPer = run.subscribers.map((x) => x.events).sort((a, b) => a - b);
  const bytesPer = run.subscribers.map((x) => x.bytes).sort((a, b) => a - b);
  const last = (xs: number[]) => xs[xs.length - 1] ?? 0;
  const mb = (x: number) => `${x.toFixed(0)} MB`;
  const cpu = (a: Usage, b: Usage, w: Window) =>
    `${(b.cpuSec - a.cpuSec).toFixed(1)} s (${((100 * (b.cpuSec - a.cpuSec)) / ((w.to - w.from) / 1000)).toFixed(0)}% of a core)`;
  const api = (label: string, w: Window) => {
    const c = auditCounts(run.auditLog, w.from, w.to);
    const top =
      [...c.by.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '—';
    return `| ${label} | ${c.total} | ${(c.total / ((w.to - w.from) / 60_000)).toFixed(0)} | ${top} |`;
  };
  const { usage: u, windows: w } = m;
  return `${SCALE_MARKER}
## Scale: ${PODS.toLocaleString('en')} pods, ${SERVICES.toLocaleString('en')} MaxineServices, ${SIDECARS.toLocaleString('en')} simulated sidecars

_Generated by \`npm run bench:k8s-scale\` (bench/kubernetes-scale.ts); this section is rewritten on every run._

- date: ${new Date().toISOString()}; machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? ''}, ${(totalmem() / 2 ** 30).toFixed(0)} GB; node ${process.version}; load average at the end: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}
- control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler 1.34 and KWOK on 127.0.0.1 (e2e/controlplane), on the same 2 CPUs as the operator and this load generator; pods are created with \`nodeName\` set (no scheduling) and KWOK marks them Running and Ready.
- operator: \`dist/operator/main.js --mode kubernetes\`, its own process, with its ServiceAccount's RBAC (manifests/), leader election on (one replica), webhook off.
- simulated sidecars: the sidecar's registration agent (\`sidecar/agent.ts\`) for one pod of each of the first ${SIDECARS} services (those pods carry the \`maxine.io/healthy\` readiness gate, written by the leader when their sidecar reports), each with its pod's bound ServiceAccount token (TokenRequest), TTL 30 s (a heartbeat every 10 s), and one event-stream subscriber each for its own service and \`${serviceName(0)}\` (a dependency of every service).
- API requests: counted from the kube-apiserver's audit log, whose policy records only \`${OPERATOR_USER}\` (one count per request; a watch counts once).

| figure | value |
|---|---:|
| creating ${SERVICES} MaxineServices (32 in flight) | ${f.services} |
| creating ${PODS} pods (64 in flight) / all Running by KWOK | ${f.podsCreated} / ${f.podsRunning} |
| operator spawn → /readyz 200 | ${f.ready} |
| operator spawn → all ${PODS} pods instances | ${f.allInstances} |
| ${SIDECARS} simulated sidecars registered (a TokenReview each) | ${f.registered} |
| ${SIDECARS} event streams connected and synced (resync snapshot; connections refused while the snapshot queue was full and made again after a back-off, as the sidecar does) | ${f.subscribed} (${f.snapshotRetries} retries) |
| snapshot bytes per sidecar (p50 / max) | ${f.snapshotBytes} |
| event fan-out, change stored → at each of ${SIDECARS} subscribers (${CHANGES} changes), p50 / p99 / max | ${f.fanOut} |
| rollout: ${f.rolled} replaced, API writes done / registry converged | ${f.rolloutWrites} / ${f.rollout} |
| events / bytes received per sidecar over the whole run (p50 / max) | ${quantile(eventsPer, 0.5)} / ${last(eventsPer)} events; ${quantile(bytesPer, 0.5)} / ${last(bytesPer)} bytes |
| operator RSS after cold start / after the run (peak) | ${mb(u.afterCold.rssMb)} / ${mb(u.rolloutAfter.rssMb)} (${mb(u.rolloutAfter.hwmMb)}) |
| operator CPU: cold start | ${u.afterCold.cpuSec.toFixed(1)} s |
| operator CPU: steady ${STEADY_SECONDS} s of heartbeats (${(SIDECARS / 10).toFixed(0)}/s) | ${cpu(u.steadyBefore, u.steadyAfter, w.steady)} |
| operator CPU: rollout | ${cpu(u.rolloutBefore, u.rolloutAfter, w.rollout)} |

| operator → API server | requests | per minute | most frequent |
|---|---:|---:|---|
${api('cold start (spawn → all instances)', w.cold)}
${api('sidecars registering and subscribing, fan-out changes', w.sidecars)}
${api(`steady state, heartbeats only (${STEADY_SECONDS} s)`, w.steady)}
${api('rollout', w.rollout)}
`;
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
