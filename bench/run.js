// @ts-check
/**
 * Maxine benchmarks, one entry point: `npm run bench` (builds, then runs this file).
 *
 * - Discovery on the operator against a bare `node:http` server answering the same bytes,
 *   measured alternately in the same run, so that only ratios are compared on a noisy box.
 *   Secured discovery is also compared with the bare server sent the same two headers
 *   (Authorization, x-maxine-source), in a row of its own beside the aim's.
 * - Heartbeats and registrations per second.
 * - RSS of an operator holding 100,000 instances.
 * - Peers (bench/peers.js, decision 0028): etcd and Consul reads of every instance, each with
 *   and without its auth, beside Maxine's `?all=true`, anonymous and secured.
 *
 * Every server is a child process (never the autocannon process). Everything targets
 * 127.0.0.1. Figures go to stdout and to bench/RESULTS.md, which is rewritten each run.
 *
 * Environment (all optional): BENCH_DURATION seconds per measured run (5), BENCH_WARMUP
 * seconds of discarded warm-up before each (2), BENCH_ROUNDS (2), BENCH_PAIRS adjacent
 * (reference, scenario) pairs per round of each scenario compared with the bare server (3),
 * BENCH_QUIET_WAIT longest wait in seconds for an idle machine before each run (10; 0: none),
 * BENCH_CONNECTIONS (50),
 * BENCH_PIPELINING (1), BENCH_HEARTBEAT_INSTANCES (1000), BENCH_MEMORY_INSTANCES (100000),
 * BENCH_CPU_PROF=1 to profile the discovery/heartbeat operator and the secured operator with
 * `node --cpu-prof` (BENCH_CPU_PROF_DIR keeps the profiles there),
 * BENCH_SCENARIOS=discover-auth,sidecar-discover-auth to run only those scenarios (and their
 * references): the figures are printed, the memory run is skipped and RESULTS.md is left as is,
 * BENCH_OPERATOR_NODE_FLAGS="--max-old-space-size=160" to give every operator those Node flags
 * instead of the Deployment's NODE_OPTIONS (manifests/deployment.yaml, the default; '' for V8's),
 * BENCH_NODE=/path/to/node to run every server on another Node.js (the production images use
 * the current LTS; `npm i --prefix /tmp/lts node@24` fetches one from the npm registry),
 * BENCH_PEERS=etcd,consul (default) or none: the peers measured in the same run (bench/peers.js).
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { measure, untilIdle } from './load.js';
import {
  deploymentNodeFlags,
  freePort,
  httpRequest,
  OPERATOR_MAIN,
  rssOf,
  runMain,
  SERVER_NODE,
  startBaseline,
  startChild,
  startOperator,
  startWatchdog,
  stopChild,
} from './processes.js';
import {
  PEER_RUNS_PER_ROUND,
  peerAims,
  peerScenarios,
  peersSection,
  peersTable,
  startPeers,
  stopPeers,
} from './peers.js';
import { formatFrames, topFrames } from './profile-top.js';
import { hostOf, registerMany } from './registrations.js';
import {
  aimsTable,
  carriedSection,
  commandLine as runCommand,
  intEnv,
  machine,
  memoryTable,
  roundsTable,
  PROXY_HEADING,
  SOAK_HEADING,
  SCOPE_HEADING,
  FANOUT_HEADING,
  STORE_HEADING,
  summarise,
  throughputTable,
  writeAtomically,
} from './report.js';

/** @typedef {import('./load.js').LoadSpec} LoadSpec */
/** @typedef {import('./processes.js').Child} Child */
/** @typedef {import('./report.js').Row} Row */
/** @typedef {Row & { alsoAgainst?: string, alsoPaired?: import('./load.js').LoadResult[] }} BenchRow a row that may have a second reference */
/** @typedef {import('./report.js').Memory} Memory */

const ROOT = join(import.meta.dirname, '..');
// The image runs the bundle (`npm run build:sidecar-bundle`, decision 0027), so the bench does.
const SIDECAR_MAIN = join(ROOT, 'dist', 'sidecar', 'maxine-sidecar.mjs');
const GC_HOOK = join(import.meta.dirname, 'gc-hook.js');
const RESULTS = join(import.meta.dirname, 'RESULTS.md');
const NAMESPACE = 'bench';
const SERVICE = 'api';
const SIDECAR_PATH = `/v1/discover/${SERVICE}`;
const SIDECAR_NODE_FLAGS = (
  process.env.BENCH_SIDECAR_NODE_FLAGS ?? '--max-semi-space-size=8 --max-old-space-size=96'
)
  .split(' ')
  .filter(Boolean);
const DISCOVER_PATH = `/api/v1/discover/${NAMESPACE}/${SERVICE}`;
const QUERY = '?strategy=weighted-round-robin&zone=a';
const DISCOVER_INSTANCES = 10;
const MEMORY_SERVICES = 100;
/** Services in the sidecar's copy: `api`, `heartbeats` and the rest one instance each (issue 17's aim). */
const SIDECAR_COPY_SERVICES = 1000;
const BULK_CONCURRENCY = 64;
/**
 * The registration and memory runs register more instances, all as one (anonymous) caller,
 * than the operator's default limits allow (10,000 per principal and per service, 200,000 in
 * total): they raise them, as a deployment that wants that many would.
 */
const BULK_LIMITS = [
  // The load comes from one address (loopback): the per-address limit would refuse it.
  ...['--address-rate-limit', '0'],
  ...['--max-instances', '2000000', '--max-instances-per-principal', '2000000'],
  ...['--max-instances-per-service', '2000000'],
  // The sidecar's 1,000-service copy is registered by one (anonymous) caller, and the sidecar's
  // own service must still fit: the default 1,000 undeclared services per principal would not.
  ...['--max-undeclared-services-per-principal', '10000'],
];
const SETTLE_MS = 2000;
const AIMS = {
  throughputRatio: 0.8,
  p99Ratio: 1.5,
  heartbeatsPerSec: 10_000,
  rssMb: 300,
  sidecarThroughputRatio: 0.85,
  sidecarIdleRssMb: 40,
  sidecarIdleAnonMb: 20,
};

function loadConfig() {
  return {
    durationSec: intEnv('BENCH_DURATION', 5, 1, 600),
    warmupSec: intEnv('BENCH_WARMUP', 2, 0, 60),
    rounds: intEnv('BENCH_ROUNDS', 2, 1, 20),
    /** Adjacent (reference, scenario) pairs per round of each scenario compared with a bare server. */
    pairs: intEnv('BENCH_PAIRS', 3, 1, 20),
    /** Longest wait for an idle machine before each run (quiesce), in seconds; 0: no wait. */
    quietSec: intEnv('BENCH_QUIET_WAIT', 10, 0, 120),
    connections: intEnv('BENCH_CONNECTIONS', 50, 1, 1000),
    pipelining: intEnv('BENCH_PIPELINING', 1, 1, 64),
    heartbeatInstances: intEnv('BENCH_HEARTBEAT_INSTANCES', 1000, 1, 100_000),
    memoryInstances: intEnv('BENCH_MEMORY_INSTANCES', 100_000, 100, 1_000_000),
    cpuProf: process.env.BENCH_CPU_PROF === '1',
    /** Scenario keys to run (with their references); undefined: all, and RESULTS.md. */
    only: scenarioSelection(),
  };
}

/** @returns {Set<string> | undefined} the keys of BENCH_SCENARIOS, or undefined for all */
function scenarioSelection() {
  const raw = (process.env.BENCH_SCENARIOS ?? '').trim();
  if (raw === '') return undefined;
  return new Set(
    raw
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
  );
}
/** @typedef {ReturnType<typeof loadConfig>} Config */

/**
 * The Node flags every operator of the run starts with: BENCH_OPERATOR_NODE_FLAGS when set (which
 * bench/processes.js adds), else the Deployment's `NODE_OPTIONS` — what ships, as
 * bench/memory.js measures too (decision 0026, session 12).
 */
const SHIPPED_FLAGS =
  process.env.BENCH_OPERATOR_NODE_FLAGS === undefined ? deploymentNodeFlags() : [];

/** @returns {string} the Node flags given to operators, with a trailing space, or '' */
function operatorFlags() {
  const flags = (process.env.BENCH_OPERATOR_NODE_FLAGS ?? SHIPPED_FLAGS.join(' ')).trim();
  return flags === '' ? '' : `${flags} `;
}

/**
 * bench/processes.js's startOperator with the shipped flags first.
 * @param {string} resources
 * @param {string} name
 * @param {string[]} nodeFlags
 * @param {string[]} operatorArgs
 */
function startBenchOperator(resources, name, nodeFlags, operatorArgs) {
  return startOperator(resources, name, [...SHIPPED_FLAGS, ...nodeFlags], operatorArgs);
}

/** The command that reproduces this run: the BENCH_* variables set, then the script. */
const commandLine = () =>
  runCommand({ vars: (k) => k.startsWith('BENCH_'), script: 'bench', file: 'bench/run.js' });

/**
 * The instances discovery answers with: versions, zones a/b and weights 1–3.
 * @param {Child} operator
 */
async function registerDiscoveryInstances(operator) {
  await registerMany({
    port: operator.port,
    count: DISCOVER_INSTANCES,
    concurrency: 1,
    deadlineMs: 30_000,
    bodyOf: (i) => ({
      service: SERVICE,
      namespace: NAMESPACE,
      host: hostOf(i + 1),
      port: 8080,
      version: 'v1',
      zone: i % 2 === 0 ? 'a' : 'b',
      weight: 1 + (i % 3),
    }),
  });
}

/** The bearer token of the authenticated-discovery scenario (generated per run). */
const BENCH_TOKEN = `bench-${randomBytes(24).toString('hex')}`;
/** What `discover-auth` sends, and so the peers' secured Maxine counterpart too. */
const SECURED_HEADERS = {
  authorization: `Bearer ${BENCH_TOKEN}`,
  'x-maxine-source': `${NAMESPACE}/client`,
};
/** The bare server's run with SECURED_HEADERS: discover-auth's second reference. */
const SAME_HEADERS_BASELINE = 'baseline-get-auth-headers';
/** The key suffix of a row's comparison with its second reference (withSecondReferences). */
const SAME_HEADERS_SUFFIX = '@same-headers';
/** The token of the secured sidecar (user `bench-sidecar`, a static token like the above). */
const SIDECAR_TOKEN = `bench-sidecar-${randomBytes(24).toString('hex')}`;

/**
 * An operator with access control as in a cluster: callers need a token (a static one
 * here), ACLs default to deny, an intention is evaluated for the caller's named source, and
 * the audit log is on. Instances are registered anonymously through an ACL granting the
 * unauthenticated group `register` (so the bench's registration helper needs no token).
 * @param {string} tmp
 * @param {string[]} nodeFlags
 * @returns {Promise<Child>}
 */
async function startSecuredOperator(tmp, nodeFlags) {
  const resources = join(tmp, 'secured');
  mkdirSync(resources);
  writeService(resources, SERVICE, 'round-robin');
  writeFileSync(
    join(resources, 'policy.yaml'),
    [
      'apiVersion: maxine.io/v1alpha1',
      'kind: MaxineACL',
      `metadata: { name: bench, namespace: ${NAMESPACE} }`,
      'spec:',
      '  subjects: [{ kind: User, name: bench }]',
      `  rules: [{ services: ['${NAMESPACE}/*'], verbs: [discover, read] }]`,
      '---',
      'apiVersion: maxine.io/v1alpha1',
      'kind: MaxineACL',
      `metadata: { name: sidecar, namespace: ${NAMESPACE} }`,
      'spec:',
      '  subjects: [{ kind: User, name: bench-sidecar }]',
      `  rules: [{ services: ['${NAMESPACE}/*'], verbs: [discover, read, register] }]`,
      '---',
      'apiVersion: maxine.io/v1alpha1',
      'kind: MaxineACL',
      `metadata: { name: registrations, namespace: ${NAMESPACE} }`,
      'spec:',
      '  subjects: [{ kind: Group, name: system:unauthenticated }]',
      `  rules: [{ services: ['${NAMESPACE}/*'], verbs: [register] }]`,
      '---',
      'apiVersion: maxine.io/v1alpha1',
      'kind: MaxineIntention',
      `metadata: { name: ${SERVICE}, namespace: ${NAMESPACE} }`,
      'spec:',
      `  destination: { name: ${SERVICE} }`,
      '  sources:',
      '    - { name: client, action: allow }',
      "    - { name: '*', action: deny }",
      '',
    ].join('\n'),
  );
  const tokens = join(tmp, 'tokens.yaml');
  writeFileSync(
    tokens,
    `tokens:\n  - { token: ${BENCH_TOKEN}, user: bench }\n  - { token: ${SIDECAR_TOKEN}, user: bench-sidecar }\n`,
    { mode: 0o600 },
  );
  return startBenchOperator(resources, 'operator (auth on)', nodeFlags, [
    ...['--address-rate-limit', '0'],
    ...['--anonymous', 'true', '--acl-default', 'deny', '--static-tokens-file', tokens],
    ...['--audit-dir', join(tmp, 'audit')],
  ]);
}

/**
 * A sidecar process of another service in the same namespace, answering discovery from its
 * copy of the registry (fed by the operator's event stream); ready once that copy has `api`.
 * With `tokenFile` it authenticates (the secured operator), and its local discovery checks
 * the intentions it mirrored (`bench/client` → `bench/api`, allowed by the intention).
 * @param {Child} operator
 * @param {string} [tokenFile]
 * @returns {Promise<Child>}
 */
async function startSidecar(operator, tokenFile) {
  const port = await freePort();
  return startChild({
    name: tokenFile === undefined ? 'sidecar' : 'sidecar (auth on)',
    port,
    readyPath: SIDECAR_PATH,
    // The flags Dockerfile.sidecar sets: a small young generation keeps the idle RSS down.
    args: [...SIDECAR_NODE_FLAGS, SIDECAR_MAIN],
    env: {
      ...process.env,
      // The figures are for a copy of the whole registry, as measured before `pod` became the default scope.
      MAXINE_DISCOVERY_SCOPE: 'cluster',
      MAXINE_SERVICE: 'client',
      MAXINE_POD_NAMESPACE: NAMESPACE,
      MAXINE_POD_NAME: 'client-0',
      MAXINE_OPERATOR_URL: `http://127.0.0.1:${operator.port}`,
      MAXINE_LISTEN_PORT: String(port),
      MAXINE_LOG_LEVEL: 'warn',
      // Dockerfile.sidecar's environment: one malloc arena (decision 0027, session 11), 32 KB
      // and larger allocations mmapped (session 12).
      MALLOC_ARENA_MAX: '1',
      MALLOC_MMAP_THRESHOLD_: '32768',
      ...(tokenFile !== undefined && {
        MAXINE_TOKEN_FILE: tokenFile,
        MAXINE_DISCOVERY_CHECK_INTENTIONS: 'true',
      }),
    },
  });
}

/**
 * @param {Child} operator
 * @param {string} path
 * @returns {Promise<Buffer>}
 */
async function fetchAnswer(operator, path) {
  const res = await httpRequest({ port: operator.port, path });
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body}`);
  return Buffer.from(res.body);
}

/**
 * @param {Child} operator
 * @returns {Promise<{ rssMb?: number, heapMb?: number, instances?: number }>}
 */
async function metricsOf(operator) {
  const res = await httpRequest({ port: operator.port, path: '/metrics' });
  if (res.status !== 200) return {};
  /** @param {string} name */
  const sum = (name) => {
    const re = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'gm');
    let total;
    for (const m of res.body.matchAll(re)) total = (total ?? 0) + Number(m[1]);
    return total;
  };
  const mb = (/** @type {number | undefined} */ b) => (b === undefined ? undefined : b / 2 ** 20);
  return {
    rssMb: mb(sum('maxine_process_resident_memory_bytes')),
    heapMb: mb(sum('maxine_nodejs_heap_size_used_bytes')),
    instances: sum('maxine_instances'),
  };
}

/**
 * @param {string} resources
 * @param {string} name the service file's base name
 * @param {string} strategy
 */
function writeService(resources, name, strategy) {
  writeFileSync(
    join(resources, `${name}.yaml`),
    [
      'apiVersion: maxine.io/v1alpha1',
      'kind: MaxineService',
      'metadata:',
      `  name: ${name}`,
      `  namespace: ${NAMESPACE}`,
      'spec:',
      '  selector:',
      `    app: ${name}`,
      '  ports:',
      '    - name: http',
      '      port: 8080',
      '  loadBalancing:',
      `    strategy: ${strategy}`,
      '',
    ].join('\n'),
  );
}

/**
 * Registration requests with a distinct host:port each, over 100 services.
 * @returns {() => { body: string }}
 */
function registrationBodies() {
  let seq = 0;
  return () => {
    const i = seq;
    seq += 1;
    return {
      body: JSON.stringify({
        service: `reg-${i % MEMORY_SERVICES}`,
        namespace: 'bench-reg',
        host: hostOf(i),
        port: 1024 + (i % 50_000),
      }),
    };
  };
}

/** @param {Child} child @returns {{ port: number, pid: number }} where to send load, whose CPU to read */
function at(child) {
  return { port: child.port, pid: child.pid };
}

/**
 * The load scenarios, measured in turn within each round.
 * @param {Config} config
 * @param {{ baseline: Child, operator: Child, secured: Child, sidecar: Child, securedSidecar: Child, heartbeatIds: string[], resources: string, peers?: import('./peers.js').Peers }} ctx
 */
function scenarios(config, ctx) {
  const base = {
    connections: config.connections,
    pipelining: config.pipelining,
    durationSec: config.durationSec,
    warmupSec: config.warmupSec,
  };
  let beat = 0;
  const heartbeatPath = () => {
    const id = ctx.heartbeatIds[beat % ctx.heartbeatIds.length] ?? 'missing';
    beat += 1;
    return { path: `/api/v1/instances/${id}/heartbeat` };
  };
  const heartbeat = { method: 'PUT', path: '/', body: '{"status":"passing"}', vary: heartbeatPath };
  const nextRegistration = registrationBodies();
  /** @type {{ key: string, label: string, reference?: string, alsoAgainst?: string, single?: boolean, run: () => Promise<import('./load.js').LoadResult> }[]} */
  const list = [
    {
      key: 'baseline-get',
      label: 'bare node:http, GET (same bytes as discovery)',
      run: () => measure({ ...base, ...at(ctx.baseline), path: DISCOVER_PATH }),
    },
    {
      key: 'discover',
      label: `maxine GET ${DISCOVER_PATH}`,
      reference: 'baseline-get',
      run: () => measure({ ...base, ...at(ctx.operator), path: DISCOVER_PATH }),
    },
    {
      key: 'discover-query',
      label: `maxine GET ${DISCOVER_PATH}${QUERY}`,
      reference: 'baseline-get',
      run: () => measure({ ...base, ...at(ctx.operator), path: DISCOVER_PATH + QUERY }),
    },
    {
      // The second reference of discover-auth: Node parsing the two headers the secured
      // scenario sends costs the bare server too (~1.3–3.6 µs/request, decision 26).
      key: SAME_HEADERS_BASELINE,
      label:
        "bare node:http, GET with the secured scenario's headers (Authorization, x-maxine-source)",
      run: () =>
        measure({ ...base, ...at(ctx.baseline), path: DISCOVER_PATH, headers: SECURED_HEADERS }),
    },
    {
      key: 'discover-auth',
      label: `maxine GET ${DISCOVER_PATH} with a token, ACL default deny, an intention, audit on`,
      reference: 'baseline-get',
      alsoAgainst: SAME_HEADERS_BASELINE,
      run: () =>
        measure({
          ...base,
          ...at(ctx.secured),
          path: DISCOVER_PATH,
          headers: SECURED_HEADERS,
        }),
    },
    {
      key: 'sidecar-discover',
      label: `sidecar GET ${SIDECAR_PATH} (from its local copy)`,
      reference: 'baseline-get',
      run: () => measure({ ...base, ...at(ctx.sidecar), path: SIDECAR_PATH }),
    },
    {
      key: 'sidecar-discover-auth',
      label: `sidecar GET ${SIDECAR_PATH} of the secured operator (token, ACL default deny, its intentions checked)`,
      reference: 'baseline-get',
      run: () => measure({ ...base, ...at(ctx.securedSidecar), path: SIDECAR_PATH }),
    },
    {
      key: 'baseline-put',
      label: 'bare node:http, PUT with a 20-byte body',
      run: () => measure({ ...base, ...heartbeat, ...at(ctx.baseline) }),
    },
    {
      key: 'heartbeat',
      label: `maxine PUT heartbeat (${config.heartbeatInstances.toLocaleString('en-US')} ids in turn)`,
      reference: 'baseline-put',
      run: () => measure({ ...base, ...heartbeat, ...at(ctx.operator) }),
    },
    {
      key: 'register',
      label: 'maxine POST /api/v1/instances (distinct host:port, fresh operator)',
      run: async () => {
        const fresh = await startBenchOperator(
          ctx.resources,
          'operator (registrations)',
          [],
          BULK_LIMITS,
        );
        try {
          const spec = {
            ...base,
            method: 'POST',
            path: '/api/v1/instances',
            vary: nextRegistration,
          };
          return await measure({ ...spec, ...at(fresh) });
        } finally {
          await stopChild(fresh);
        }
      },
    },
    // The peers (etcd, Consul) and Maxine's like-for-like reads of every instance (bench/peers.js).
    ...(ctx.peers === undefined
      ? []
      : // One pair per round: their aims (Maxine ≥ 4× Consul) are far from the line.
        peerScenarios(base, ctx.peers, {
          operator: at(ctx.operator),
          secured: at(ctx.secured),
          securedHeaders: SECURED_HEADERS,
          discoverPath: DISCOVER_PATH,
        }).map((s) => ({ ...s, single: true }))),
  ];
  const only = config.only;
  if (only === undefined) return list;
  const wanted = new Set(only);
  for (const s of list) {
    if (!only.has(s.key)) continue;
    if (s.reference !== undefined) wanted.add(s.reference);
    if (s.alsoAgainst !== undefined) wanted.add(s.alsoAgainst);
  }
  const unknown = [...only].filter((k) => !list.some((s) => s.key === k));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_SCENARIOS: unknown ${unknown.join(', ')}; known: ${list.map((s) => s.key).join(', ')}`,
    );
  return list.filter((s) => wanted.has(s.key));
}

/**
 * @param {Config} config
 * @param {string} resources
 * @returns {Promise<Memory>}
 */
async function measureMemory(config, resources) {
  const operator = await startBenchOperator(
    resources,
    'operator (memory)',
    ['--expose-gc', '--import', pathToFileURL(GC_HOOK).href],
    BULK_LIMITS,
  );
  try {
    await sleep(SETTLE_MS);
    const before = rssOf(operator.pid);
    const bulk = await registerMany({
      port: operator.port,
      count: config.memoryInstances,
      concurrency: BULK_CONCURRENCY,
      deadlineMs: 600_000,
      bodyOf: (i) => ({
        service: `svc-${String(i % MEMORY_SERVICES).padStart(3, '0')}`,
        namespace: 'bench-mem',
        host: hostOf(i),
        port: 8080,
      }),
    });
    await sleep(SETTLE_MS);
    const after = rssOf(operator.pid);
    const metrics = await metricsOf(operator);
    operator.proc.kill('SIGUSR2'); // bench/gc-hook.js: a full GC
    await sleep(SETTLE_MS);
    const afterGc = rssOf(operator.pid);
    const metricsGc = await metricsOf(operator);
    return {
      instances: bulk.registered,
      services: MEMORY_SERVICES,
      rssBeforeMb: before.rssMb,
      rssAfterMb: after.rssMb,
      hwmAfterMb: after.hwmMb,
      metricsRssMb: metrics.rssMb,
      heapUsedMb: metrics.heapMb,
      rssAfterGcMb: afterGc.rssMb,
      heapUsedAfterGcMb: metricsGc.heapMb,
      instancesSeen: metrics.instances,
      seconds: bulk.seconds,
      concurrency: BULK_CONCURRENCY,
    };
  } finally {
    await stopChild(operator);
  }
}

/**
 * The servers a throughput run starts, each set as it comes up, so stopServers stops what did
 * start when a later one fails.
 * @typedef {{ operator?: Child, secured?: Child, baseline?: Child, sidecar?: Child,
 *   securedSidecar?: Child, peers?: import('./peers.js').Peers }} Servers
 */

/**
 * The start both bench and bench:peers share: the `api` service's resources under `tmp`, the
 * operator (BULK_LIMITS) and the secured one, each holding the discovery instances.
 * @param {Servers} servers filled in as each starts
 * @param {string} tmp
 * @param {{ flags?: string[], securedFlags?: string[] }} [nodeFlags] extra Node flags of each
 * @returns {Promise<{ resources: string, operator: Child, secured: Child }>}
 */
async function startOperators(servers, tmp, nodeFlags = {}) {
  const resources = join(tmp, 'resources');
  mkdirSync(resources);
  writeService(resources, SERVICE, 'round-robin');
  const operator = await startBenchOperator(
    resources,
    'operator',
    nodeFlags.flags ?? [],
    BULK_LIMITS,
  );
  servers.operator = operator;
  await registerDiscoveryInstances(operator);
  const secured = await startSecuredOperator(tmp, nodeFlags.securedFlags ?? []);
  servers.secured = secured;
  await registerDiscoveryInstances(secured);
  return { resources, operator, secured };
}

/**
 * Stops what startOperators and the run started, the last started first.
 * @param {Servers} servers
 */
async function stopServers(servers) {
  await stopPeers(servers.peers);
  await stopChild(servers.securedSidecar);
  await stopChild(servers.sidecar);
  await stopChild(servers.baseline);
  await stopChild(servers.secured);
  await stopChild(servers.operator);
}

/**
 * @param {Config} config
 * @param {string} tmp
 * @param {string} profileDir
 */
async function measureThroughput(config, tmp, profileDir) {
  /** @type {Servers} */
  const servers = {};
  try {
    const flags = config.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    const securedFlags = config.cpuProf
      ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, 'secured')}`]
      : [];
    // Up to BENCH_HEARTBEAT_INSTANCES (100,000) heartbeat targets are registered here too.
    const { resources, operator, secured } = await startOperators(servers, tmp, {
      flags,
      securedFlags,
    });
    const answers = [];
    for (let i = 0; i < DISCOVER_INSTANCES; i += 1)
      answers.push(await fetchAnswer(operator, DISCOVER_PATH));
    const queryAnswer = await fetchAnswer(operator, DISCOVER_PATH + QUERY);
    const body = /** @type {Buffer} */ (answers[0]);
    const sizes = answers.map((a) => a.length);
    const { ids: heartbeatIds } = await registerMany({
      port: operator.port,
      count: config.heartbeatInstances,
      concurrency: BULK_CONCURRENCY,
      deadlineMs: 120_000,
      keepIds: true,
      bodyOf: (i) => ({ service: 'heartbeats', namespace: NAMESPACE, host: hostOf(i), port: 9000 }),
    });
    // The sidecar's copy holds 1,000 services, as the footprint aim (and bench/memory.js) has it.
    await registerMany({
      port: operator.port,
      count: SIDECAR_COPY_SERVICES - 2,
      concurrency: BULK_CONCURRENCY,
      deadlineMs: 120_000,
      bodyOf: (i) => ({
        service: `copy-${String(i).padStart(4, '0')}`,
        namespace: NAMESPACE,
        host: hostOf(i + 1),
        port: 8080,
      }),
    });
    const baseline = (servers.baseline = await startBaseline(body));
    const sidecar = (servers.sidecar = await startSidecar(operator));
    const sidecarSyncedAt = Date.now();
    const sidecarAnswer = await fetchAnswer(sidecar, SIDECAR_PATH);
    if (sidecarAnswer.length !== body.length)
      throw new Error(`sidecar answer differs in size: ${sidecarAnswer.toString()}`);
    const peers = (servers.peers = await startPeers(tmp));
    const sidecarToken = join(tmp, 'sidecar-token');
    writeFileSync(sidecarToken, SIDECAR_TOKEN, { mode: 0o600 });
    const securedSidecar = (servers.securedSidecar = await startSidecar(secured, sidecarToken));
    await fetchAnswer(securedSidecar, SIDECAR_PATH);
    // Idle is after the sidecar's memory trim (MAXINE_MEMORY_TRIM_SECONDS, 10 s after its sync).
    await sleep(Math.max(SETTLE_MS, sidecarSyncedAt + 12_000 - Date.now()));
    const sidecarIdle = rssOf(sidecar.pid);
    const baselineIdle = rssOf(baseline.pid);
    const list = scenarios(config, {
      baseline,
      operator,
      secured,
      sidecar,
      securedSidecar,
      heartbeatIds,
      resources,
      peers,
    });
    const rows = rowsOf(list);
    await runRounds(config, list, rows);
    const sidecarLoaded = rssOf(sidecar.pid);
    return {
      rows,
      resources,
      peers,
      answer: { sizes, body: body.toString('utf8'), querySize: queryAnswer.length },
      sidecarMemory: {
        baselineMb: baselineIdle.rssMb,
        baselineAnonMb: baselineIdle.anonMb,
        idleAnonMb: sidecarIdle.anonMb,
        idleMb: sidecarIdle.rssMb,
        afterLoadMb: sidecarLoaded.rssMb,
        peakMb: sidecarLoaded.hwmMb,
      },
    };
  } finally {
    await stopServers(servers);
  }
}

/**
 * A result row per scenario, empty; a compared scenario's also keeps its reference's runs.
 * @param {ReturnType<typeof scenarios>} list
 * @returns {BenchRow[]}
 */
function rowsOf(list) {
  return list.map((s) => ({
    key: s.key,
    label: s.label,
    reference: s.reference,
    rounds: [],
    ...(s.reference !== undefined && { paired: [] }),
    ...(s.alsoAgainst !== undefined && { alsoAgainst: s.alsoAgainst, alsoPaired: [] }),
  }));
}

/**
 * The rows compared with a second reference as well (`alsoAgainst`), as rows of their own:
 * the same runs, their ratios the medians of the pairs with that reference's adjacent runs.
 * @param {BenchRow[]} rows
 * @returns {Row[]} rows and, after each such row, its second comparison
 */
function withSecondReferences(rows) {
  return rows.flatMap((row) =>
    row.alsoAgainst === undefined ||
    row.alsoPaired === undefined ||
    row.alsoPaired.length !== row.rounds.length ||
    !rows.some((r) => r.key === row.alsoAgainst)
      ? [row]
      : [
          row,
          {
            key: `${row.key}${SAME_HEADERS_SUFFIX}`,
            label: `${row.label} — ratios vs the bare server receiving the same headers`,
            reference: row.alsoAgainst,
            rounds: row.rounds,
            paired: row.alsoPaired,
          },
        ],
  );
}

/**
 * Every scenario once per round, in reversed order on even rounds: first Maxine's own
 * scenarios, round after round, then the peers' (`single`) in rounds of their own. The peers go
 * last because their load lingers: with etcd or Consul just run (each uses 1.5 cores under
 * load), every server after them measured slower, the bare one too (13–16 → 24–27 µs of CPU per
 * request in session 12's run), and the aims' pairs must not straddle that.
 * @param {Config} config
 * @param {ReturnType<typeof scenarios>} list
 * @param {BenchRow[]} rows
 */
async function runRounds(config, list, rows) {
  const own = list.filter((s) => s.single !== true);
  const peers = list.filter((s) => s.single === true);
  for (const phase of [own, peers]) {
    for (let round = 0; round < config.rounds; round += 1) {
      // Alternate the order, so neither side always runs first (or right after a write test).
      const order = round % 2 === 0 ? phase : [...phase].reverse();
      for (const scenario of order) {
        const row = rows.find((r) => r.key === scenario.key);
        if (row === undefined) continue;
        // A scenario compared with a bare server gets several adjacent pairs, alternating which
        // side runs first (ABBA): the machine's slow spells last a run or two, and the median of
        // six pairs is far steadier than that of two (decision 0026, session 12).
        const pairs = scenario.reference === undefined || scenario.single ? 1 : config.pairs;
        for (let pair = 0; pair < pairs; pair += 1)
          await runCompared(list, scenario, row, {
            round,
            rounds: config.rounds,
            firstReference: (round + pair) % 2 === 0,
            quietSec: config.quietSec,
          });
      }
    }
  }
}

/**
 * One run of a scenario. A compared scenario gets its own reference run right next to it
 * (before it or after it, as `firstReference` says): on a noisy machine only adjacent runs
 * compare well. A second reference (alsoAgainst) runs on its other side, adjacent too.
 * @param {ReturnType<typeof scenarios>} list
 * @param {ReturnType<typeof scenarios>[number]} scenario
 * @param {BenchRow} row
 * @param {{ round: number, rounds: number, firstReference: boolean, quietSec: number }} at
 */
async function runCompared(list, scenario, row, at) {
  const reference = list.find((s) => s.key === scenario.reference);
  const second = list.find((s) => s.key === scenario.alsoAgainst);
  const [before, after] = at.firstReference ? [reference, second] : [second, reference];
  const into = (/** @type {typeof reference} */ s) =>
    s === reference ? row.paired : row.alsoPaired;
  if (before !== undefined) into(before)?.push(await runOne(before, at));
  row.rounds.push(await runOne(scenario, at));
  if (after !== undefined) into(after)?.push(await runOne(after, at));
}

/** What the waits for an idle machine came to over the run (the Method section says it). */
const quiescing = { runs: 0, waitedMs: 0, notQuiet: 0 };

/**
 * @param {{ label: string, run: () => Promise<import('./load.js').LoadResult> }} scenario
 * @param {{ round: number, rounds: number, quietSec: number }} at
 */
async function runOne(scenario, { round, rounds, quietSec }) {
  const quiet = await untilIdle(quietSec * 1000);
  quiescing.runs += 1;
  quiescing.waitedMs += quiet.waitedMs;
  if (!quiet.idle) quiescing.notQuiet += 1;
  process.stderr.write(
    `round ${round + 1}/${rounds}: ${scenario.label} (${quiet.idle ? '' : 'NOT '}idle after ${quiet.waitedMs} ms) ...`,
  );
  const result = await scenario.run();
  process.stderr.write(
    ` ${Math.round(result.rps)} req/s, p99 ${result.p99Ms.toFixed(2)} ms, server ${Math.round(result.cpuUsPerRequest)} µs CPU/req\n`,
  );
  return result;
}

/**
 * The figures of the other bench scripts, carried into this file so that every figure is in
 * one place: the Kubernetes mode (`npm run bench:k8s`, which needs the e2e control plane)
 * and the soak and abuse run (`npm run bench:soak`).
 * @returns {string[]}
 */
function carriedSections() {
  return [
    ...carriedSection(
      join(import.meta.dirname, 'RESULTS-kubernetes.md'),
      '## Kubernetes mode (latest `npm run bench:k8s`, copied from RESULTS-kubernetes.md)',
    ),
    ...carriedSection(join(import.meta.dirname, 'RESULTS-soak.md'), SOAK_HEADING),
    ...carriedSection(join(import.meta.dirname, 'RESULTS-proxy.md'), PROXY_HEADING),
    ...carriedSection(join(import.meta.dirname, 'RESULTS-store.md'), STORE_HEADING),
    ...carriedSection(join(import.meta.dirname, 'RESULTS-scope.md'), SCOPE_HEADING),
    ...carriedSection(join(import.meta.dirname, 'RESULTS-events-fanout.md'), FANOUT_HEADING),
  ];
}

/** The version of the Node.js the servers run on. */
function serverNode() {
  return execFileSync(SERVER_NODE, ['--version'], { encoding: 'utf8' }).trim();
}

/** @param {string} profileDir @returns {string | undefined} */
function profileSummary(profileDir) {
  if (!existsSync(profileDir)) return undefined;
  const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) return undefined;
  const path = join(profileDir, file);
  return `${path}\n${formatFrames(topFrames(path, 20))}`;
}

async function main() {
  const config = loadConfig();
  if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build`);
  // Per round: 13 runs per pair of the compared scenarios, the registrations, the peers' pairs;
  // each run its warm-up, its wait for an idle machine and a margin.
  const runsPerRound = 13 * config.pairs + 1 + PEER_RUNS_PER_ROUND;
  const perRound = runsPerRound * (config.durationSec + config.warmupSec + config.quietSec + 5);
  const budgetMs = (config.rounds * perRound + 900) * 1000;
  startWatchdog('bench', budgetMs);

  const host = machine();
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'maxine-bench-'));
  const removeTmp = () => rmSync(tmp, { recursive: true, force: true });
  process.on('exit', removeTmp); // also when a signal ends the run
  const profileDir =
    process.env.BENCH_CPU_PROF_DIR ?? join(tmpdir(), `maxine-bench-prof-${process.pid}`);
  try {
    const throughput = await measureThroughput(config, tmp, profileDir);
    if (config.only !== undefined) {
      // A chosen few: figures on stdout only (RESULTS.md is the whole run's).
      const summaries = summarise(withSecondReferences(throughput.rows));
      const profiles = config.cpuProf
        ? [profileSummary(profileDir), profileSummary(join(profileDir, 'secured'))]
        : [];
      process.stdout.write(
        `\nload average at start: ${host.load}; at end: ${machine().load}; servers: ${serverNode()}\n` +
          `${throughputTable(summaries)}\n\n${roundsTable(summaries)}\n\n` +
          profiles.filter((p) => p !== undefined).join('\n\n') +
          '\n',
      );
      return;
    }
    process.stderr.write(`memory: registering ${config.memoryInstances} instances ...\n`);
    const memory = await measureMemory(config, throughput.resources);
    const loadAfter = machine().load;
    const summaries = summarise(withSecondReferences(throughput.rows));
    const get = (/** @type {string} */ key) => summaries.get(key);
    const heartbeat = get('heartbeat');
    const aims = [
      ...ratioAims('discovery', get('discover')),
      ...ratioAims('discovery with query', get('discover-query')),
      ...ratioAims('discovery with auth, ACLs, an intention and audit on', get('discover-auth')),
      ...sameHeadersRatios(get(`discover-auth${SAME_HEADERS_SUFFIX}`)),
      ...sidecarAims(get('sidecar-discover'), throughput.sidecarMemory),
      ...peerAims(summaries, throughput.peers),
      ...ratioAims(
        'sidecar discovery of the secured operator, intentions checked',
        get('sidecar-discover-auth'),
      ),
      ...heartbeatAims(heartbeat),
      {
        what: `operator RSS with ${memory.instances.toLocaleString('en-US')} instances, ${SETTLE_MS / 1000} s after the last registration`,
        target: `< ${AIMS.rssMb} MB`,
        measured: `${memory.rssAfterMb.toFixed(1)} MB`,
        met: memory.rssAfterMb < AIMS.rssMb,
      },
      {
        what: `the same, after a forced full GC`,
        target: `< ${AIMS.rssMb} MB`,
        measured: `${memory.rssAfterGcMb.toFixed(1)} MB`,
        met: memory.rssAfterGcMb < AIMS.rssMb,
      },
    ];
    const failures = [...summaries.values()].filter((s) => s.failures > 0);
    const profile = config.cpuProf ? profileSummary(profileDir) : undefined;

    const tables = {
      main: throughputTable(summaries),
      rounds: roundsTable(summaries),
      memory: memoryTable(memory),
      aims: aimsTable(aims),
    };
    const answer = throughput.answer;
    const sizeRange =
      Math.min(...answer.sizes) === Math.max(...answer.sizes)
        ? `${answer.sizes[0]} bytes`
        : `${Math.min(...answer.sizes)}–${Math.max(...answer.sizes)} bytes`;
    const md = [
      '# Maxine benchmark results',
      '',
      '_Generated by `bench/run.js`; rewritten on every run. On a shared or noisy machine only the ratios measured in the same run mean anything._',
      '',
      `- date: ${started.toISOString()}`,
      `- machine: ${host.cpus} CPUs (nproc), ${host.model}, ${host.memGb} GB RAM, Linux ${host.kernel}`,
      `- node: ${host.node} (load generator); servers: ${serverNode()}; commit: ${host.commit}`,
      `- load average (1, 5, 15 min) at start: ${host.load}; at end: ${loadAfter}`,
      `- command: \`${commandLine()}\``,
      '',
      '## Method',
      '',
      `- Load generator: autocannon 8, programmatic, in the bench process; every server runs in its own child process (\`node ${operatorFlags()}dist/operator/main.js --log-level warn --default-ttl-seconds 3600 --address-rate-limit 0\`, and \`bench/baseline-server.js\`), all on 127.0.0.1.`,
      `- ${config.connections} connections, pipelining ${config.pipelining}, ${config.durationSec} s measured after ${config.warmupSec} s of discarded warm-up, ${config.rounds} rounds; each round runs every scenario, in reversed order on even rounds, Maxine's own rounds first and the peers' rounds after them (a Go peer's load lingers and slowed every server after it, the bare one too). Every compared scenario is measured next to a run of its reference of its own: ${config.pairs} such adjacent pairs per round for the scenarios compared with the bare server (the reference first in one pair, second in the next), one pair per round for the peers; its ratios are the medians of all its pairs' ratios, its figures the medians of its runs; the reference rows show the reference's own runs.`,
      `- Before every run the bench waits (at most ${config.quietSec} s) until the machine is idle, ≥ 90% of all CPU time idle over 500 ms, so that no run starts in the tail of another's work (a peer's background work, the registrations' garbage): ${quiescing.runs} runs waited ${(quiescing.waitedMs / 1000).toFixed(0)} s in all, ${quiescing.notQuiet} of them started without the machine having become idle.`,
      `- Latencies: a microsecond histogram fed by autocannon's per-response times (2xx only); autocannon's own p99 (whole milliseconds) is shown alongside.`,
      `- Server CPU: user + system time of the server's process (/proc/<pid>/stat) over the measured run, per 2xx response, and as a share of one core. A server well below 100% was not the bottleneck (the load generator, which shares the ${host.cpus} CPUs, or other load on the machine was); CPU per request is then the sturdier comparison.`,
      `- Baseline: a bare \`node:http\` server answering every request with the exact bytes of a discovery answer (${body(answer.body)}, \`content-type: application/json\`); write requests are read to the end before it answers.`,
      `- Discovery: one MaxineService \`${NAMESPACE}/${SERVICE}\` (round-robin) with ${DISCOVER_INSTANCES} registered instances (zones a/b, weights 1–3); answers are ${sizeRange}; the query answer is ${answer.querySize} bytes.`,
      `- Authenticated discovery: a second operator with \`--anonymous true --acl-default deny --static-tokens-file … --audit-dir …\`, the same service and instances, a MaxineACL granting the bench user discover, and a MaxineIntention allowing \`${NAMESPACE}/client\` and denying \`*\`; every request carries \`Authorization: Bearer <static token>\` and \`x-maxine-source: ${NAMESPACE}/client\`, so each answer passes authentication, the ACL, the intention and the per-service limit lookup. Its ratios are against the plain bare server (the aim), and in a row of their own against the bare server sent the same two headers (its own adjacent runs; Node parses those headers for the bare server too).`,
      `- Sidecar: \`node dist/sidecar/maxine-sidecar.mjs\` (the bundle the image runs) of another service (\`${NAMESPACE}/client\`) connected to the discovery operator's event stream; \`GET ${SIDECAR_PATH}\` answers \`${NAMESPACE}/${SERVICE}\` from its local copy (the same bytes as the operator's answers); the copy holds ${SIDECAR_COPY_SERVICES.toLocaleString('en-US')} services (${SIDECAR_COPY_SERVICES - 2} of them \`copy-NNNN\` with one instance each). RSS from /proc/<pid>/status once synced and settled (idle) and after the last load round.`,
      `- Secured sidecar: the same sidecar connected to the authenticated operator with a static token (a user granted discover, read and register on \`${NAMESPACE}/*\`) and \`MAXINE_DISCOVERY_CHECK_INTENTIONS=true\`, so each local discovery of \`${NAMESPACE}/${SERVICE}\` also asks the mirrored intention (which allows \`${NAMESPACE}/client\`).`,
      `- Heartbeats: \`PUT /api/v1/instances/{id}/heartbeat\` with \`{"status":"passing"}\`, cycling over ${config.heartbeatInstances.toLocaleString('en-US')} pre-registered ids, on the discovery operator.`,
      `- Registrations: \`POST /api/v1/instances\`, a distinct host:port per request over ${MEMORY_SERVICES} services, on a fresh operator each round started with \`${BULK_LIMITS.join(' ')}\` (the default registry limits would refuse this many instances from one caller).`,
      `- Memory: a fresh operator (with the same raised limits), ${memory.instances.toLocaleString('en-US')} instances registered over HTTP (${MEMORY_SERVICES} services, keep-alive, ${BULK_CONCURRENCY} in flight), VmRSS from /proc/<pid>/status after a ${SETTLE_MS / 1000} s settle, then again after a full GC forced through \`bench/gc-hook.js\` (preloaded with \`--expose-gc\`; SIGUSR2 runs \`gc()\`), which separates live data from garbage not yet collected.`,
      '',
      '## Aims',
      '',
      tables.aims,
      '',
      '## Throughput and latency',
      '',
      tables.main,
      '',
      '### Every run',
      '',
      tables.rounds,
      '',
      '## Memory',
      '',
      tables.memory,
      '',
      ...peersSection(summaries, throughput.peers),
      ...(failures.length > 0
        ? [
            `**Warning:** non-2xx responses or errors in: ${failures.map((f) => f.label).join('; ')}.`,
            '',
          ]
        : []),
      ...carriedSections(),
      ...(profile === undefined
        ? []
        : ['## CPU profile of the operator (top self time)', '', '```', profile, '```', '']),
    ].join('\n');
    writeAtomically(RESULTS, md);
    process.stdout.write(
      `\n${tables.aims}\n\n${tables.main}\n\n${tables.rounds}\n\n${tables.memory}\n\n` +
        (throughput.peers === undefined ? '' : `${peersTable(summaries, throughput.peers)}\n\n`) +
        (profile === undefined ? '' : `CPU profile (top self time):\n${profile}\n\n`) +
        `written: ${RESULTS}\n`,
    );
    if (failures.length > 0) {
      process.stderr.write(
        `bench: non-2xx responses or errors in ${failures.length} scenario(s)\n`,
      );
      process.exitCode = 1;
    }
  } finally {
    removeTmp();
  }
}

/**
 * @param {import('./report.js').Summary | undefined} summary
 * @param {{ idleMb: number, idleAnonMb: number, baselineMb: number, baselineAnonMb: number, afterLoadMb: number, peakMb: number }} sidecarMem
 * @returns {import('./report.js').Aim[]}
 */
function sidecarAims(summary, sidecarMem) {
  const sidecarRps = summary?.ratioRps ?? 0;
  const sidecarP99 = summary?.ratioP99 ?? Infinity;
  return [
    {
      what: 'sidecar discovery throughput vs bare node:http',
      target: `≥ ${AIMS.sidecarThroughputRatio}×`,
      measured: `${sidecarRps.toFixed(2)}×`,
      met: sidecarRps >= AIMS.sidecarThroughputRatio,
    },
    {
      what: 'sidecar discovery p99 vs bare node:http',
      target: `≤ ${AIMS.p99Ratio}×`,
      measured: `${sidecarP99.toFixed(2)}×`,
      met: sidecarP99 <= AIMS.p99Ratio,
    },
    {
      what: `sidecar RSS at idle (synced copy, ${SETTLE_MS / 1000} s settle)`,
      target: `< ${AIMS.sidecarIdleRssMb} MB`,
      measured: `${sidecarMem.idleMb.toFixed(1)} MB (bare node:http: ${sidecarMem.baselineMb.toFixed(1)} MB)`,
      met: sidecarMem.idleMb < AIMS.sidecarIdleRssMb,
    },
    {
      what: `sidecar private (anonymous) memory at idle with a ${SIDECAR_COPY_SERVICES.toLocaleString('en-US')}-service copy; the rest is the node binary, shared by every sidecar on a node`,
      target: `≤ ${AIMS.sidecarIdleAnonMb} MB`,
      measured: `${sidecarMem.idleAnonMb.toFixed(1)} MB (bare node:http: ${sidecarMem.baselineAnonMb.toFixed(1)} MB)`,
      met: sidecarMem.idleAnonMb <= AIMS.sidecarIdleAnonMb,
    },
    {
      what: 'sidecar RSS after every load round (peak VmHWM)',
      target: 'reported',
      measured: `${sidecarMem.afterLoadMb.toFixed(1)} MB (peak ${sidecarMem.peakMb.toFixed(1)} MB)`,
      met: true,
    },
  ];
}

/**
 * Secured discovery against the bare server that receives the same two headers: reported
 * beside the aim (which stays against the plain bare server).
 * @param {import('./report.js').Summary | undefined} summary
 * @returns {import('./report.js').Aim[]}
 */
function sameHeadersRatios(summary) {
  if (summary === undefined) return [];
  const f = (/** @type {number | undefined} */ n) => (n === undefined ? '—' : `${n.toFixed(2)}×`);
  return [
    {
      what: 'the same, vs a bare node:http server receiving the same Authorization and x-maxine-source headers (throughput · p99 · CPU per request)',
      target: 'reported',
      measured: `${f(summary.ratioRps)} · ${f(summary.ratioP99)} · ${f(summary.ratioCpu)}`,
      met: true,
    },
  ];
}

/**
 * Heartbeats: their p99 against a bare PUT's (issue 17), and their rate.
 * @param {import('./report.js').Summary | undefined} heartbeat
 * @returns {import('./report.js').Aim[]}
 */
function heartbeatAims(heartbeat) {
  const p99 = heartbeat?.ratioP99 ?? Infinity;
  const rps = heartbeat?.rps ?? 0;
  return [
    {
      what: 'heartbeat p99 vs bare node:http PUT',
      target: `≤ ${AIMS.p99Ratio}×`,
      measured: `${p99.toFixed(2)}×`,
      met: p99 <= AIMS.p99Ratio,
    },
    {
      what: 'heartbeats per second',
      target: `> ${AIMS.heartbeatsPerSec.toLocaleString('en-US')}/s`,
      measured: `${Math.round(rps).toLocaleString('en-US')}/s`,
      met: rps > AIMS.heartbeatsPerSec,
    },
  ];
}

/**
 * @param {string} what
 * @param {import('./report.js').Summary | undefined} summary
 * @returns {import('./report.js').Aim[]}
 */
function ratioAims(what, summary) {
  const rps = summary?.ratioRps ?? 0;
  const p99 = summary?.ratioP99 ?? Infinity;
  return [
    {
      what: `${what} throughput vs bare node:http`,
      target: `≥ ${AIMS.throughputRatio}×`,
      measured: `${rps.toFixed(2)}×`,
      met: rps >= AIMS.throughputRatio,
    },
    {
      what: `${what} p99 vs bare node:http`,
      target: `≤ ${AIMS.p99Ratio}×`,
      measured: `${p99.toFixed(2)}×`,
      met: p99 <= AIMS.p99Ratio,
    },
  ];
}

/** @param {string} text @returns {string} its size and the text, for the method section */
function body(text) {
  return `${Buffer.byteLength(text)} bytes: \`${text}\``;
}

// Run when started as a script (the real path: a checkout reached through a symlink still
// runs); bench/peers-run.js (`npm run bench:peers`) imports the pieces below.
const script = process.argv[1];
if (script !== undefined && import.meta.url === pathToFileURL(realpathSync(script)).href) {
  if (process.env.BENCH_ONLY === 'memory') {
    // Memory only (bench/memory.js): the operator with 100,000 instances and the sidecar's footprint.
    const { memoryMain } = await import('./memory.js');
    runMain('bench:memory', memoryMain);
  } else {
    runMain('bench', main);
  }
}

export {
  BULK_LIMITS,
  DISCOVER_PATH,
  loadConfig,
  operatorFlags,
  registerDiscoveryInstances,
  rowsOf,
  runRounds,
  scenarios,
  serverNode,
  startOperators,
  startSecuredOperator,
  stopServers,
  writeService,
};
