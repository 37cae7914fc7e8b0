/**
 * What the discovery scope saves each sidecar: an operator with 1,000 MaxineServices (a few
 * instances each, dependencies and intentions between them) and real sidecars (createSidecar)
 * of sampled services in each scope — `pod` (the default), `namespace` and `cluster` (all) —
 * connected to it; then instance churn (a deregistration and a registration per change, at a
 * steady rate). Per sidecar: the services its copy holds, the messages and payload bytes it
 * received to get synced (snapshots, the rescope after reading its own spec included), and
 * during the churn (its MirrorStatus `received`, counted on the WebSocket).
 *
 * The operator and the sidecars share this process (the figures are counts, not timings).
 * Writes bench/RESULTS-scope.md (carried into bench/RESULTS.md by `npm run bench`).
 * Run: npm run bench:scope (BENCH_SCOPE_SERVICES, BENCH_SCOPE_INSTANCES, BENCH_SCOPE_SIDECARS,
 * BENCH_SCOPE_CHURN_SECONDS, BENCH_SCOPE_CHURN_PER_SECOND).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../common/logger.js';
import type { DiscoveryScopeKind } from '../common/injection.js';
import { configSchema } from '../operator/config.js';
import { createOperator } from '../operator/operator.js';
import { loadSidecarConfig } from '../sidecar/config.js';
import { createSidecar } from '../sidecar/sidecar.js';
import { carriedSection, SCOPE_HEADING } from './report.js';
import type { Sidecar } from '../sidecar/sidecar.js';

const SERVICES = Number(process.env.BENCH_SCOPE_SERVICES ?? 1000);
const INSTANCES = Number(process.env.BENCH_SCOPE_INSTANCES ?? 3);
const SIDECARS = Number(process.env.BENCH_SCOPE_SIDECARS ?? 10);
const CHURN_SECONDS = Number(process.env.BENCH_SCOPE_CHURN_SECONDS ?? 20);
const CHURN_PER_SECOND = Number(process.env.BENCH_SCOPE_CHURN_PER_SECOND ?? 50);
const NAMESPACES = 20;
const SCOPES: readonly DiscoveryScopeKind[] = ['pod', 'namespace', 'cluster'];

const ns = (i: number) => `ns-${i % NAMESPACES}`;
const name = (i: number) => `svc-${i}`;

/**
 * Service i depends on i+1 and i+7 and may call i+13 (an intention in i+13's namespace):
 * calls cross namespaces, as in a real cluster; each pod needs 4 services.
 */
function resources(): string {
  const docs: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const deps = [i + 1, i + 7].map((d) => d % SERVICES);
    docs.push(
      JSON.stringify({
        apiVersion: 'maxine.io/v1alpha1',
        kind: 'MaxineService',
        metadata: { namespace: ns(i), name: name(i) },
        spec: {
          selector: { app: name(i) },
          dependencies: deps.map((d) => ({ namespace: ns(d), name: name(d) })),
        },
      }),
    );
    const target = (i + 13) % SERVICES;
    docs.push(
      JSON.stringify({
        apiVersion: 'maxine.io/v1alpha1',
        kind: 'MaxineIntention',
        metadata: { namespace: ns(target), name: `${name(target)}-from-${name(i)}` },
        spec: {
          destination: { name: name(target) },
          sources: [{ namespace: ns(i), name: name(i), action: 'allow' }],
        },
      }),
    );
  }
  return docs.join('\n---\n');
}

async function post(base: string, path: string, body: unknown): Promise<{ id: string }> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { instance: { id: string } }).instance;
}

async function remove(base: string, id: string): Promise<void> {
  const res = await fetch(`${base}/api/v1/instances/${id}`, { method: 'DELETE' });
  await res.arrayBuffer();
  if (res.status !== 204) throw new Error(`DELETE ${id}: ${res.status}`);
}

let nextPort = 10_000;
function register(base: string, i: number): Promise<{ id: string }> {
  nextPort += 1;
  return post(base, '/api/v1/instances', {
    namespace: ns(i),
    service: name(i),
    host: `10.${(nextPort >> 16) & 255}.${(nextPort >> 8) & 255}.${nextPort & 255}`,
    port: 8080,
  });
}

async function inBatches<T>(items: T[], size: number, fn: (t: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms`);
    await sleep(50);
  }
}

interface Pod {
  scope: DiscoveryScopeKind;
  service: number;
  sidecar: Sidecar;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const kb = (bytes: number) => (bytes / 1024).toLocaleString('en', { maximumFractionDigits: 1 });
const int = (n: number) => Math.round(n).toLocaleString('en');

async function main(): Promise<void> {
  const loadStart = loadavg();
  const dir = await mkdtemp(join(tmpdir(), 'maxine-bench-scope-'));
  await writeFile(join(dir, 'resources.yaml'), resources());
  const quiet = new Writable({ write: (_c, _e, done) => done() });
  const operator = createOperator(
    configSchema.parse({
      port: 0,
      host: '127.0.0.1',
      resources: dir,
      logLevel: 'warn',
      intentionDefault: 'deny',
      defaultTtlSeconds: 3600,
      eventLogSize: 100_000,
    }),
    createLogger('warn', quiet),
  );
  const address = await operator.start();
  const base = `http://127.0.0.1:${address.port}`;
  await waitFor(
    () => operator.registry.serviceRefs().length >= SERVICES,
    60_000,
    'services loaded',
  );

  const instances = new Map<number, string[]>();
  const all = Array.from({ length: SERVICES * INSTANCES }, (_, k) => k % SERVICES);
  await inBatches(all, 64, async (i) => {
    const { id } = await register(base, i);
    instances.set(i, [...(instances.get(i) ?? []), id]);
  });
  process.stdout.write(`operator: ${SERVICES} services, ${all.length} instances\n`);

  // Sampled pods: services spread over the namespaces, each scope its own services.
  const pods: Pod[] = [];
  for (const [s, scope] of SCOPES.entries()) {
    for (let k = 0; k < SIDECARS; k++) {
      const service = (s * SIDECARS + k) * 37 + 5;
      const sidecar = createSidecar(
        loadSidecarConfig({
          MAXINE_SERVICE: name(service % SERVICES),
          MAXINE_POD_NAMESPACE: ns(service % SERVICES),
          MAXINE_POD_NAME: `${name(service % SERVICES)}-0`,
          MAXINE_POD_IP: '127.0.0.1',
          MAXINE_OPERATOR_URL: base,
          MAXINE_LISTEN_PORT: '0',
          MAXINE_PROXY_LISTEN: 'off',
          MAXINE_REPORT_INTERVAL_SECONDS: '0',
          MAXINE_MESH_REFRESH_SECONDS: '0',
          MAXINE_DISCOVERY_SCOPE: scope,
        }),
        createLogger('warn', quiet, 'sidecar'),
      );
      await sidecar.start();
      pods.push({ scope, service: service % SERVICES, sidecar });
    }
  }
  await waitFor(() => pods.every((p) => p.sidecar.mirror.status().synced), 60_000, 'synced');
  // A scoped sidecar resubscribes once it has read its own spec: wait for the messages to stop.
  let last = -1;
  for (;;) {
    await sleep(1000);
    const now = pods.reduce((n, p) => n + p.sidecar.mirror.status().received.messages, 0);
    if (now === last) break;
    last = now;
  }
  const synced = new Map(pods.map((p) => [p, p.sidecar.mirror.status()]));

  // Churn: each change deregisters one instance of a service and registers another.
  let changes = 0;
  const started = Date.now();
  const until = started + CHURN_SECONDS * 1000;
  const interval = 1000 / CHURN_PER_SECOND;
  let seed = 42;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  while (Date.now() < until) {
    const i = Math.floor(random() * SERVICES);
    const held = instances.get(i)!;
    const gone = held.shift()!;
    await remove(base, gone);
    held.push((await register(base, i)).id);
    changes += 1;
    const due = started + changes * interval;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  await sleep(2000);
  const churnSeconds = (Date.now() - started) / 1000 - 2;
  process.stdout.write(
    `churn: ${changes} changes (${changes * 2} events) in ${churnSeconds.toFixed(1)} s\n`,
  );

  interface Row {
    scope: DiscoveryScopeKind;
    services: number;
    instances: number;
    syncMessages: number;
    syncBytes: number;
    churnEvents: number;
    churnBytes: number;
  }
  const rows: Row[] = SCOPES.map((scope) => {
    const mine = pods.filter((p) => p.scope === scope);
    const per = mine.map((p) => {
      const before = synced.get(p)!.received;
      const after = p.sidecar.mirror.status().received;
      const state = p.sidecar.mirror.state;
      return {
        services: state.size,
        instances: [...operator.registry.serviceRefs()].reduce(
          (n, r) => n + (state.route(r.namespace, r.name)?.instances.length ?? 0),
          0,
        ),
        syncMessages: before.messages,
        syncBytes: before.bytes,
        churnEvents: after.messages - before.messages,
        churnBytes: after.bytes - before.bytes,
      };
    });
    return {
      scope,
      services: median(per.map((x) => x.services)),
      instances: median(per.map((x) => x.instances)),
      syncMessages: median(per.map((x) => x.syncMessages)),
      syncBytes: median(per.map((x) => x.syncBytes)),
      churnEvents: median(per.map((x) => x.churnEvents)),
      churnBytes: median(per.map((x) => x.churnBytes)),
    };
  });
  for (const p of pods) await p.sidecar.stop();
  await operator.stop();
  await rm(dir, { recursive: true, force: true });

  const all_ = rows.find((r) => r.scope === 'cluster')!;
  const label: Record<DiscoveryScopeKind, string> = {
    pod: '`pod` (the default)',
    namespace: '`namespace`',
    cluster: '`cluster` (all)',
  };
  const table = [
    '| scope | services held | healthy instances held | sync: messages | sync: KiB received | churn: events received | churn: KiB received | churn bytes vs `cluster` |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${label[r.scope]} | ${int(r.services)} | ${int(r.instances)} | ${int(r.syncMessages)} | ${kb(r.syncBytes)} | ${int(r.churnEvents)} | ${kb(r.churnBytes)} | ${(r.churnBytes / all_.churnBytes).toFixed(4)} |`,
    ),
  ];
  process.stdout.write(`${table.join('\n')}\n`);

  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD']).toString().trim();
  const command = [
    process.env.BENCH_SCOPE_SERVICES && `BENCH_SCOPE_SERVICES=${SERVICES}`,
    process.env.BENCH_SCOPE_INSTANCES && `BENCH_SCOPE_INSTANCES=${INSTANCES}`,
    process.env.BENCH_SCOPE_SIDECARS && `BENCH_SCOPE_SIDECARS=${SIDECARS}`,
    process.env.BENCH_SCOPE_CHURN_SECONDS && `BENCH_SCOPE_CHURN_SECONDS=${CHURN_SECONDS}`,
    process.env.BENCH_SCOPE_CHURN_PER_SECOND && `BENCH_SCOPE_CHURN_PER_SECOND=${CHURN_PER_SECOND}`,
    'npm run bench:scope',
  ]
    .filter(Boolean)
    .join(' ');
  const md = [
    '# Sidecar discovery scope: bytes and events per sidecar',
    '',
    '_Generated by `bench/sidecar-scope.ts`; rewritten on every run. The figures are counts (messages, payload bytes), not timings, so a loaded machine changes them little._',
    '',
    `- date: ${new Date().toISOString()}; commit: ${commit}; node: ${process.version}`,
    `- machine: ${cpus().length} CPUs (${cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? '?'}); load average at start: ${loadStart.map((x) => x.toFixed(2)).join(' ')}`,
    `- command: \`${command}\``,
    `- method: one operator (in-process, standalone, \`--intention-default deny\`) with ${int(SERVICES)} MaxineServices in ${NAMESPACES} namespaces and ${int(SERVICES * INSTANCES)} registered instances (${INSTANCES} each); service i lists i+1 and i+7 in \`dependencies\` and an intention lets it call i+13, so each pod needs 4 services. ${SIDECARS} real sidecars (\`createSidecar\`) per scope, each of another service, connect and sync; then ${int(changes)} changes in ${churnSeconds.toFixed(0)} s (each a deregistration and a registration of a random service: ${int(changes * 2)} events at the operator). Per sidecar, the median over its scope's sidecars of what its event stream received (\`MirrorStatus.received\`: WebSocket messages and payload bytes): to get synced (snapshot chunks, and for scoped sidecars the second snapshot once their own spec is read), and during the churn (events, pings).`,
    '',
    ...table,
    '',
  ].join('\n');
  writeFileSync(join(import.meta.dirname, 'RESULTS-scope.md'), md);
  updateResults(join(import.meta.dirname, 'RESULTS.md'));
  process.stdout.write(`written: bench/RESULTS-scope.md and its section of bench/RESULTS.md\n`);
}

/** Replaces (or appends) this run's section of RESULTS.md, as `npm run bench` carries it. */
function updateResults(file: string): void {
  if (!existsSync(file)) return;
  const section = carriedSection(join(import.meta.dirname, 'RESULTS-scope.md'), SCOPE_HEADING)
    .join('\n')
    .trimEnd();
  const current = readFileSync(file, 'utf8');
  const start = current.indexOf(SCOPE_HEADING);
  if (start === -1) {
    writeFileSync(file, `${current.trimEnd()}\n\n${section}\n`);
    return;
  }
  const next = current.indexOf('\n## ', start + SCOPE_HEADING.length);
  writeFileSync(
    file,
    current.slice(0, start) + section + (next === -1 ? '\n' : `\n${current.slice(next + 1)}`),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
