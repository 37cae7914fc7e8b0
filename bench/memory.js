// @ts-check
/**
 * Memory only, fast to rerun: `npm run bench:memory` (or `BENCH_ONLY=memory node bench/run.js`).
 *
 * - Operator: 100,000 instances registered over HTTP (100 services); VmRSS after a settle and
 *   after a forced full GC, V8's heap statistics, and a heap snapshot summed up by constructor
 *   (bench/heap-summary.js), so the table says where the bytes go.
 * - Discovery speed next to it: the operator's discovery against a bare node:http server with
 *   the same bytes, in adjacent runs of this same run (a shrink must not cost the hot path).
 * - Sidecar: a copy of 1,000 services (the operator's event stream), its VmRSS and private
 *   (RssAnon) memory at idle, and its start-up to first answer, for each set of Node flags in
 *   BENCH_SIDECAR_FLAG_SETS (`;`-separated; the image's flags by default).
 * - What each module the sidecar loads costs in private memory (a fresh node per module).
 *
 * The servers run on BENCH_NODE (default: this node); the figures of each Node major go to their
 * own section of bench/RESULTS-memory.md, the other majors' sections are kept, so running it
 * once per Node version fills the file.
 *
 * Environment (all optional): BENCH_MEMORY_INSTANCES (100000), BENCH_HEAP_SNAPSHOT (1; 0 skips
 * the snapshot), BENCH_DURATION (5) / BENCH_WARMUP (2) / BENCH_ROUNDS (2) for the discovery
 * ratio, BENCH_SIDECAR_SERVICES (1000), BENCH_SIDECAR_FLAG_SETS, BENCH_IMPORTS (1; 0 skips the
 * per-module costs), BENCH_SIDECAR_ENTRY (another sidecar entry, e.g. the bundle
 * `dist/sidecar/maxine-sidecar.mjs` of `npm run build:sidecar-bundle`, measured right after
 * dist/sidecar/main.js for each flag set, in the same run against the same operator),
 * BENCH_SIDECAR_ONLY (1: the sidecar table alone, printed, RESULTS-memory.md left alone; with
 * BENCH_BEFORE_SIDECAR, another build's sidecar entry measured first with
 * BENCH_BEFORE_SIDECAR_FLAGS), BENCH_SIDECAR_MAIN (this build's sidecar entry instead of
 * dist/sidecar/main.js). A flag set's `NAME=value` words are the sidecar's environment.
 * BENCH_OPERATOR_ONLY (1: the operator's part alone, spliced into this Node's section: its
 * aims and its `### Operator` part; the sidecar's part is kept), BENCH_MEMORY_OPERATOR_FLAGS
 * (the operator's Node flags; default the Deployment's NODE_OPTIONS, `''` for V8's defaults).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { summarizeHeapSnapshot, heapTable } from './heap-summary.js';
import { measure } from './load.js';
import {
  deploymentNodeFlags,
  freePort,
  httpRequest,
  OPERATOR_MAIN,
  rssOf,
  SERVER_NODE,
  startBaseline,
  startChild,
  startOperator,
  startOperatorFrom,
  stopChild,
} from './processes.js';
import { hostOf, registerMany } from './registrations.js';
import { commandLine, intEnv, machine, writeAtomically } from './report.js';

/** @typedef {import('./processes.js').Child} Child */

/**
 * An operator from `main` (this tree's dist/, or BENCH_BEFORE_DIST's for a before/after in the
 * same run), with the arguments bench/processes.js's startOperator gives.
 * @param {string} main
 * @param {string} resources
 * @param {string} name
 * @param {string[]} nodeFlags
 * @returns {Promise<Child>}
 */
function startOperatorAt(main, resources, name, nodeFlags = []) {
  return startOperatorFrom(main, {
    resources,
    name,
    nodeFlags: [...OPERATOR_FLAGS, ...nodeFlags],
    operatorArgs: BULK_LIMITS,
  });
}

/**
 * The Node flags the operator ships with: the Deployment's `NODE_OPTIONS`
 * (manifests/deployment.yaml, `--max-old-space-size=384 --max-semi-space-size=8`), so the
 * figures are those of what runs (on Node 24 and later the young generation is sized from the
 * heap limit without them: 64–128 MB of it counted per instance). BENCH_MEMORY_OPERATOR_FLAGS
 * replaces them (`''`: V8's defaults).
 * @returns {string[]}
 */
function operatorFlags() {
  const given = process.env.BENCH_MEMORY_OPERATOR_FLAGS;
  if (given !== undefined) return given.split(' ').filter(Boolean);
  return deploymentNodeFlags();
}

const ROOT = join(import.meta.dirname, '..');
/** The sidecar of "this build": dist/sidecar/main.js, or BENCH_SIDECAR_MAIN (e.g. the bundle). */
const SIDECAR_MAIN = process.env.BENCH_SIDECAR_MAIN
  ? resolve(process.env.BENCH_SIDECAR_MAIN)
  : join(ROOT, 'dist', 'sidecar', 'main.js');
const HEAP_HOOK = join(import.meta.dirname, 'heap-hook.js');
/** BENCH_MEMORY_RESULTS: another file for exploratory runs (flag trials), so they leave the results alone. */
const RESULTS = process.env.BENCH_MEMORY_RESULTS ?? join(import.meta.dirname, 'RESULTS-memory.md');
const OPERATOR_FLAGS = operatorFlags();
const SERVICES = 100;
const BULK_CONCURRENCY = 64;
const SETTLE_MS = 2000;
/** As bench/run.js: one caller registers far more than the default limits allow. */
const BULK_LIMITS = [
  ...['--address-rate-limit', '0'],
  ...['--max-instances', '2000000', '--max-instances-per-principal', '2000000'],
  ...['--max-instances-per-service', '2000000'],
];
/**
 * The flags Dockerfile.sidecar starts the sidecar with (docs/decisions/0027-*.md), and its
 * environment: a flag set's `NAME=value` words are environment variables, the rest Node flags.
 */
export const IMAGE_SIDECAR_FLAGS =
  'MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=32768 --max-semi-space-size=8 --max-old-space-size=96';

/**
 * A flag set's environment variables (`NAME=value` words) and Node flags (the other words).
 * @param {string} flags
 */
export function splitFlagSet(flags) {
  const words = flags.split(' ').filter(Boolean);
  const isEnv = (/** @type {string} */ w) => /^[A-Z_][A-Z0-9_]*=/.test(w);
  return {
    env: Object.fromEntries(
      words.filter(isEnv).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]),
    ),
    nodeFlags: words.filter((w) => !isEnv(w)),
  };
}
const AIMS = { rssMb: 300, bytesPerInstance: 1024, sidecarAnonMb: 20 };

/** What a fresh node costs, then what each module adds (imported alone, after a full GC). */
const IMPORTS = [
  'node:http',
  // As common/node-http.ts loads it: an ESM import loads undici on Node 24+, a require does not.
  'require:node:http',
  // Loaded by the sidecar only for an https:// operator, API server or probe (decision 0027).
  'node:https',
  'node:tls',
  'node:crypto',
  'zod',
  'pino',
  'prom-client',
  'ws',
  'yaml',
  're2js',
  '@opentelemetry/api',
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/exporter-trace-otlp-http',
  './dist/common/wire.js',
  './dist/common/resources.js',
  './dist/sidecar/mesh.js',
  './dist/sidecar/proxy/engine.js',
  './dist/sidecar/proxy/tracing-otel.js',
  './dist/sidecar/sidecar.js',
];

function loadConfig() {
  return {
    instances: intEnv('BENCH_MEMORY_INSTANCES', 100_000, 100, 1_000_000),
    snapshot: process.env.BENCH_HEAP_SNAPSHOT !== '0',
    durationSec: intEnv('BENCH_DURATION', 5, 1, 600),
    warmupSec: intEnv('BENCH_WARMUP', 2, 0, 60),
    rounds: intEnv('BENCH_ROUNDS', 2, 1, 20),
    sidecarServices: intEnv('BENCH_SIDECAR_SERVICES', 1000, 1, 100_000),
    flagSets: (process.env.BENCH_SIDECAR_FLAG_SETS ?? IMAGE_SIDECAR_FLAGS)
      .split(';')
      .map((s) => s.trim()),
    imports: process.env.BENCH_IMPORTS !== '0',
    sidecarEntry: process.env.BENCH_SIDECAR_ENTRY
      ? resolve(process.env.BENCH_SIDECAR_ENTRY)
      : undefined,
  };
}
/** @typedef {ReturnType<typeof loadConfig>} Config */

const mb = (/** @type {number} */ bytes) => bytes / 2 ** 20;
const f1 = (/** @type {number} */ n) => n.toFixed(1);
const load = () => machine().load;

/**
 * Waits for a file the heap hook writes whole (rename), and returns its path.
 * @param {string} path
 * @param {number} timeoutMs
 */
async function waitForFile(path, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} not written in ${timeoutMs} ms`);
    await sleep(100);
  }
  return path;
}

/**
 * @param {Config} config
 * @param {string} tmp
 */
async function operatorMemory(config, tmp, main = OPERATOR_MAIN) {
  const heapDir = mkdtempSync(join(tmp, 'heap-'));
  const resources = join(tmp, 'empty');
  process.env.BENCH_HEAP_DIR = heapDir;
  const operator = await startOperatorAt(main, resources, 'operator (memory)', [
    '--expose-gc',
    '--import',
    pathToFileURL(HEAP_HOOK).href,
  ]);
  try {
    await sleep(SETTLE_MS);
    const loadBefore = load();
    const before = rssOf(operator.pid);
    const bulk = await registerMany({
      port: operator.port,
      count: config.instances,
      concurrency: BULK_CONCURRENCY,
      deadlineMs: 600_000,
      bodyOf: (i) => ({
        service: `svc-${String(i % SERVICES).padStart(3, '0')}`,
        namespace: 'bench-mem',
        host: hostOf(i),
        port: 8080,
      }),
    });
    await sleep(SETTLE_MS);
    const settled = rssOf(operator.pid);
    operator.proc.kill('SIGUSR2');
    const stats = JSON.parse(
      readFileSync(await waitForFile(join(heapDir, 'heap-stats.json'), 60_000), 'utf8'),
    );
    await sleep(SETTLE_MS);
    const afterGc = rssOf(operator.pid);
    const loadAfter = load();
    // The discovery answer of one of the 100 services (1,000 instances), built once, then
    // served from its bytes: what the held records cost on the hot path.
    const answer = await httpRequest({
      port: operator.port,
      path: '/api/v1/discover/bench-mem/svc-000?all=true',
    });
    if (answer.status !== 200) throw new Error(`discover svc-000: ${answer.status}`);
    let heap;
    if (config.snapshot) {
      process.stderr.write('memory: writing a heap snapshot ...\n');
      operator.proc.kill('SIGWINCH');
      const file = await waitForFile(join(heapDir, 'heap.heapsnapshot'), 300_000);
      heap = summarizeHeapSnapshot(file);
      rmSync(file);
    }
    return {
      instances: bulk.registered,
      seconds: bulk.seconds,
      before,
      settled,
      afterGc,
      stats,
      heap,
      load: { before: loadBefore, after: loadAfter },
    };
  } finally {
    delete process.env.BENCH_HEAP_DIR;
    await stopChild(operator);
  }
}

/**
 * Discovery on an operator (one service, 10 instances) against the bare server answering the
 * same bytes, in adjacent runs, as bench/run.js measures it.
 * @param {Config} config
 * @param {string} tmp
 */
async function discoveryRatio(config, tmp, main = OPERATOR_MAIN) {
  const resources = join(tmp, 'empty');
  const operator = await startOperatorAt(main, resources, 'operator (discovery)');
  /** @type {Child | undefined} */
  let baseline;
  try {
    await registerMany({
      port: operator.port,
      count: 10,
      concurrency: 1,
      deadlineMs: 30_000,
      bodyOf: (i) => ({
        service: 'api',
        namespace: 'bench',
        host: hostOf(i + 1),
        port: 8080,
        version: 'v1',
        zone: i % 2 === 0 ? 'a' : 'b',
        weight: 1 + (i % 3),
      }),
    });
    const path = '/api/v1/discover/bench/api';
    const res = await httpRequest({ port: operator.port, path });
    baseline = await startBaseline(res.body);
    const spec = {
      connections: 50,
      pipelining: 1,
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      path,
    };
    const loadBefore = load();
    /** @type {{ ratio: number, maxine: number, bare: number }[]} */
    const pairs = [];
    for (let round = 0; round < config.rounds; round += 1) {
      const first = round % 2 === 0 ? baseline : operator;
      const second = round % 2 === 0 ? operator : baseline;
      const a = await measure({ ...spec, port: first.port, pid: first.pid });
      const b = await measure({ ...spec, port: second.port, pid: second.pid });
      const [bare, maxine] = round % 2 === 0 ? [a, b] : [b, a];
      pairs.push({ ratio: maxine.rps / bare.rps, maxine: maxine.rps, bare: bare.rps });
      process.stderr.write(
        `discovery round ${round + 1}: maxine ${Math.round(maxine.rps)} req/s, bare ${Math.round(bare.rps)} req/s\n`,
      );
    }
    const ratios = pairs.map((p) => p.ratio).sort((x, y) => x - y);
    return {
      pairs,
      median: /** @type {number} */ (ratios[Math.floor(ratios.length / 2)]),
      load: { before: loadBefore, after: load() },
    };
  } finally {
    await stopChild(baseline);
    await stopChild(operator);
  }
}

/**
 * An operator holding `services` services (2 instances each, namespace `bench`, one of them
 * `api`), and a sidecar of another service with a copy of all of them, per flag set.
 * @param {Config} config
 * @param {string} tmp
 */
async function sidecarFootprint(
  config,
  tmp,
  beforeMain = /** @type {string | undefined} */ (undefined),
  beforeFlags = IMAGE_SIDECAR_FLAGS,
) {
  // The sidecar registers one more service than the copy holds: without room for it the
  // operator refuses it (429, 1,000 undeclared services per principal by default) and the
  // sidecar retries throughout the measurement.
  const operator = await startOperator(
    join(tmp, 'empty'),
    'operator (sidecar)',
    [],
    [
      ...BULK_LIMITS,
      ...['--max-undeclared-services-per-principal', String(config.sidecarServices + 10)],
    ],
  );
  /** @type {Child | undefined} */
  let baseline;
  try {
    await registerMany({
      port: operator.port,
      count: config.sidecarServices * 2,
      concurrency: BULK_CONCURRENCY,
      deadlineMs: 120_000,
      bodyOf: (i) => ({
        service: i < 2 ? 'api' : `svc-${String(i >> 1).padStart(4, '0')}`,
        namespace: 'bench',
        host: hostOf(i + 1),
        port: 8080,
        version: 'v1',
      }),
    });
    baseline = await startBaseline('{}');
    await sleep(SETTLE_MS);
    const bare = rssOf(baseline.pid);
    const rows = [];
    // BENCH_BEFORE_DIST's sidecar first, with the image's flags: before/after in the same run.
    if (beforeMain !== undefined)
      rows.push(await oneSidecar(operator, beforeFlags, beforeMain, 'before'));
    for (const flags of config.flagSets) {
      rows.push(await oneSidecar(operator, flags));
      if (config.sidecarEntry !== undefined)
        rows.push(await oneSidecar(operator, flags, config.sidecarEntry, 'bundle'));
    }
    return { services: config.sidecarServices, bare, rows };
  } finally {
    await stopChild(baseline);
    await stopChild(operator);
  }
}

/**
 * @param {Child} operator
 * @param {string} flags
 * @param {string} main the sidecar to start (this tree's, BENCH_BEFORE_DIST's or BENCH_SIDECAR_ENTRY)
 * @param {'before' | 'this build' | 'bundle'} build
 */
async function oneSidecar(operator, flags, main = SIDECAR_MAIN, build = 'this build') {
  const port = await freePort();
  const loadBefore = load();
  const started = process.hrtime.bigint();
  const { env: flagEnv, nodeFlags } = splitFlagSet(flags);
  const sidecar = await startChild({
    name: `sidecar ${flags}`,
    port,
    readyPath: '/v1/discover/api',
    args: [...nodeFlags, main],
    env: {
      ...process.env,
      ...flagEnv,
      MAXINE_DISCOVERY_SCOPE: 'cluster',
      MAXINE_SERVICE: 'client',
      MAXINE_POD_NAMESPACE: 'bench',
      MAXINE_POD_NAME: 'client-0',
      MAXINE_OPERATOR_URL: `http://127.0.0.1:${operator.port}`,
      MAXINE_LISTEN_PORT: String(port),
      MAXINE_LOG_LEVEL: 'warn',
    },
  });
  const firstAnswerMs = Number(process.hrtime.bigint() - started) / 1e6;
  try {
    const last = await httpRequest({ port, path: '/v1/discover/svc-0999?all=true' });
    await sleep(3 * SETTLE_MS);
    const synced = rssOf(sidecar.pid);
    // V8's memory reducer starts 8 s into idleness: Node 20 gives back what the sync grew then.
    await sleep(7 * SETTLE_MS);
    const idle = rssOf(sidecar.pid);
    // A short burst of local discovery, to show what serving adds (the idle figure is the aim).
    for (let i = 0; i < 2000; i += 1) await httpRequest({ port, path: '/v1/discover/api' });
    const served = rssOf(sidecar.pid);
    return {
      flags,
      build,
      main,
      firstAnswerMs,
      copyComplete: last.status === 200,
      synced,
      idle,
      served,
      load: loadBefore,
    };
  } finally {
    await stopChild(sidecar);
  }
}

/**
 * What importing each module costs in private memory: a fresh node per module, RssAnon after a
 * full GC before and after the import.
 */
function importCosts() {
  const probe = [
    'const { readFileSync } = await import("node:fs");',
    'const anon = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;',
    'gc(); gc(); const before = anon(); const heapBefore = process.memoryUsage().heapUsed;',
    'const spec = process.argv[1];',
    'if (spec.startsWith("require:")) (await import("node:module")).createRequire(import.meta.url)(spec.slice(8));',
    'else await import(spec.startsWith("./") ? new URL(spec, "file://" + process.cwd() + "/").href : spec);',
    'gc(); gc(); process.stdout.write(JSON.stringify({ before, after: anon(), heap: (process.memoryUsage().heapUsed - heapBefore) / 1048576 }));',
  ].join('\n');
  return IMPORTS.map((spec) => {
    const out = execFileSync(
      SERVER_NODE,
      ['--expose-gc', '--input-type=module', '-e', probe, spec],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_ENV: 'production' } },
    );
    const r = /** @type {{ before: number, after: number, heap: number }} */ (JSON.parse(out));
    return { spec, bareAnonMb: r.before, addedAnonMb: r.after - r.before, heapMb: r.heap };
  });
}

/**
 * @param {Awaited<ReturnType<typeof operatorMemory>>} m
 * @param {Awaited<ReturnType<typeof discoveryRatio>>} d
 */
function operatorSection(m, d) {
  const perInstance = (/** @type {number} */ rssMb) =>
    Math.round(((rssMb - m.before.rssMb) * 2 ** 20) / m.instances);
  const h = m.stats.heap;
  return [
    `| figure | value |`,
    `|---|---:|`,
    `| instances registered (100 services) | ${m.instances.toLocaleString('en-US')} in ${f1(m.seconds)} s |`,
    `| RSS before registrations | ${f1(m.before.rssMb)} MB |`,
    `| RSS ${SETTLE_MS / 1000} s after the last registration (peak VmHWM) | **${f1(m.settled.rssMb)} MB** (${f1(m.settled.hwmMb)} MB) |`,
    `| RSS after a forced full GC | **${f1(m.afterGc.rssMb)} MB** |`,
    `| growth per instance (settled · after GC) | **${perInstance(m.settled.rssMb)} · ${perInstance(m.afterGc.rssMb)} bytes** |`,
    `| V8 heap used after GC (total heap size) | ${f1(mb(h.used_heap_size))} MB (${f1(mb(h.total_heap_size))} MB) |`,
    `| V8 heap used per instance after GC | ${Math.round(h.used_heap_size / m.instances)} bytes |`,
    `| outside the V8 heap: external, array buffers (after GC) | ${f1(mb(m.stats.memoryUsage.external))} MB, ${f1(mb(m.stats.memoryUsage.arrayBuffers))} MB |`,
    `| discovery vs bare node:http, same run (median of ${d.pairs.length} adjacent pairs) | ${d.median.toFixed(2)}× (${d.pairs.map((p) => `${Math.round(p.maxine)}/${Math.round(p.bare)}`).join(', ')} req/s) |`,
    `| load average during registrations (start → end) | ${m.load.before} → ${m.load.after} |`,
    `| load average during the discovery runs | ${d.load.before} → ${d.load.after} |`,
  ].join('\n');
}

/**
 * @typedef {{ memory: Awaited<ReturnType<typeof operatorMemory>>, discovery: Awaited<ReturnType<typeof discoveryRatio>> }} Side
 * @param {Side} before
 * @param {Side} after
 */
function beforeAfterTable(before, after) {
  const per = (/** @type {Side} */ s, /** @type {number} */ rss) =>
    Math.round(((rss - s.memory.before.rssMb) * 2 ** 20) / s.memory.instances);
  /** @type {[string, (s: Side) => string][]} */
  const rows = [
    ['RSS before registrations', (s) => `${f1(s.memory.before.rssMb)} MB`],
    ['RSS settled with the instances', (s) => `${f1(s.memory.settled.rssMb)} MB`],
    ['RSS after a full GC', (s) => `${f1(s.memory.afterGc.rssMb)} MB`],
    ['growth per instance after GC', (s) => `${per(s, s.memory.afterGc.rssMb)} bytes`],
    ['V8 heap used after GC', (s) => `${f1(mb(s.memory.stats.heap.used_heap_size))} MB`],
    ['discovery vs bare (median of adjacent pairs)', (s) => `${s.discovery.median.toFixed(2)}×`],
    [
      'load average during registrations',
      (s) => `${s.memory.load.before} → ${s.memory.load.after}`,
    ],
  ];
  return [
    '| figure | before | after |',
    '|---|---:|---:|',
    ...rows.map(([what, f]) => `| ${what} | ${f(before)} | ${f(after)} |`),
  ].join('\n');
}

/** @param {Awaited<ReturnType<typeof operatorMemory>>['stats']} stats */
function spacesTable(stats) {
  /** @type {{ space_name: string, space_used_size: number, space_size: number }[]} */
  const spaces = stats.spaces;
  return [
    '| V8 space | used | size |',
    '|---|---:|---:|',
    ...spaces
      .filter((s) => s.space_size > 0)
      .map(
        (s) => `| ${s.space_name} | ${f1(mb(s.space_used_size))} MB | ${f1(mb(s.space_size))} MB |`,
      ),
  ].join('\n');
}

/** @param {Awaited<ReturnType<typeof sidecarFootprint>>} s */
function sidecarTable(s) {
  return [
    `| build | node flags | start-up to first answer | ${(3 * SETTLE_MS) / 1000} s later: RSS, private | idle (${(10 * SETTLE_MS) / 1000} s): RSS | idle private (RssAnon) | after 2,000 answers: RSS, private | load average |`,
    `|---|---|---:|---:|---:|---:|---:|---|`,
    ...s.rows.map(
      (r) =>
        `| ${r.build === 'bundle' ? `bundle (\`${relative(ROOT, r.main)}\`)` : r.build} | \`${r.flags || '(none)'}\` | ${Math.round(r.firstAnswerMs)} ms | ${f1(r.synced.rssMb)} MB, ${f1(r.synced.anonMb)} MB | ${f1(r.idle.rssMb)} MB | **${f1(r.idle.anonMb)} MB** | ${f1(r.served.rssMb)} MB, ${f1(r.served.anonMb)} MB | ${r.load} |`,
    ),
    `| bare node:http (reference) | | | | ${f1(s.bare.rssMb)} MB | ${f1(s.bare.anonMb)} MB | | |`,
  ].join('\n');
}

/** @param {ReturnType<typeof importCosts>} rows */
function importsTable(rows) {
  return [
    '| module (imported alone into a fresh node; `require:` loaded with require) | private memory added | V8 heap added |',
    '|---|---:|---:|',
    ...rows.map((r) => `| \`${r.spec}\` | ${f1(r.addedAnonMb)} MB | ${f1(r.heapMb)} MB |`),
    `| (a fresh node before any import) | ${f1(rows[0]?.bareAnonMb ?? 0)} MB | |`,
  ].join('\n');
}

/**
 * Replaces this Node major's section of RESULTS-memory.md, keeping the others.
 * @param {string} major e.g. `v24`
 * @param {string} section
 */
function writeResults(major, section) {
  const begin = (/** @type {string} */ m) => `<!-- node ${m} -->`;
  const end = (/** @type {string} */ m) => `<!-- /node ${m} -->`;
  const old = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  /** @type {Map<string, string>} */
  const sections = new Map();
  for (const m of old.matchAll(/<!-- node (v\d+) -->\n([\s\S]*?)<!-- \/node v\d+ -->/g))
    sections.set(/** @type {string} */ (m[1]), /** @type {string} */ (m[2]));
  sections.set(major, `${section}\n`);
  const ordered = [...sections.entries()].sort(
    ([a], [b]) => Number(a.slice(1)) - Number(b.slice(1)),
  );
  writeAtomically(
    RESULTS,
    [
      '# Maxine memory results',
      '',
      "_Generated by `bench/memory.js` (`npm run bench:memory`; `BENCH_NODE=/path/to/node` for another Node.js): each Node major has its own section, rewritten when the script runs on it. Memory figures move little with the machine's load; the discovery ratio does, so it is measured in adjacent runs._",
      '',
      ...ordered.map(([m, text]) => `${begin(m)}\n${text}${end(m)}\n`),
    ].join('\n'),
  );
}

/**
 * This Node major's section of RESULTS-memory.md as it stands (undefined: none yet).
 * @param {string} major
 */
function readSection(major) {
  const old = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
  for (const m of old.matchAll(/<!-- node (v\d+) -->\n([\s\S]*?)<!-- \/node v\d+ -->/g))
    if (m[1] === major) return /** @type {string} */ (m[2]).trimEnd();
  return undefined;
}

/**
 * BENCH_BEFORE_DIST's sidecar, when the before operator ran.
 * @param {boolean} ran
 */
function beforeSidecarMain(ran) {
  const dist = process.env.BENCH_BEFORE_DIST;
  return ran && dist !== undefined ? join(dist, 'sidecar', 'main.js') : undefined;
}

/**
 * What the memory runs start from: the host, the start time, the servers' Node version and a
 * temporary folder (removed on exit) holding an empty resource folder, `empty/`.
 */
function benchSetup() {
  const host = machine();
  const started = new Date();
  const serverNode = execFileSync(SERVER_NODE, ['--version'], { encoding: 'utf8' }).trim();
  const tmp = mkdtempSync(join(tmpdir(), 'maxine-bench-mem-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
  mkdirSync(join(tmp, 'empty'));
  writeFileSync(join(tmp, 'empty', '.keep'), '');
  return { host, started, serverNode, tmp };
}

/**
 * BENCH_SIDECAR_ONLY=1: the sidecar table alone (each flag set, and BENCH_SIDECAR_ENTRY's entry
 * beside this tree's), printed; RESULTS-memory.md is left alone.
 */
export async function sidecarOnlyMain() {
  const config = loadConfig();
  const { host, started, serverNode, tmp } = benchSetup();
  process.stderr.write(`memory: sidecar only, copy of ${config.sidecarServices} services ...\n`);
  // BENCH_BEFORE_SIDECAR: another build's sidecar entry, first, with BENCH_BEFORE_SIDECAR_FLAGS
  // (default: the image's), against the same operator: before/after in the same run.
  const sidecar = await sidecarFootprint(
    config,
    tmp,
    process.env.BENCH_BEFORE_SIDECAR ? resolve(process.env.BENCH_BEFORE_SIDECAR) : undefined,
    process.env.BENCH_BEFORE_SIDECAR_FLAGS ?? IMAGE_SIDECAR_FLAGS,
  );
  process.stdout.write(
    `## Sidecar only, Node ${serverNode}\n\n- date: ${started.toISOString()}; commit ${host.commit}; load at start ${host.load}, at end ${load()}\n\n${sidecarTable(sidecar)}\n`,
  );
}

/**
 * The operator's part: its memory with the instances (and BENCH_BEFORE_DIST's before it, same
 * run), the discovery ratio, their aims and their text (from `### Operator` to the heap table).
 * @param {Config} config
 * @param {string} tmp
 * @param {string} serverNode
 */
async function operatorPart(config, tmp, serverNode) {
  const beforeDist = process.env.BENCH_BEFORE_DIST;
  let before;
  if (beforeDist !== undefined && beforeDist !== '') {
    const main = join(beforeDist, 'operator', 'main.js');
    process.stderr.write(
      `memory: before (${main}), registering ${config.instances} instances ...\n`,
    );
    const memory = await operatorMemory({ ...config, snapshot: false }, tmp, main);
    process.stderr.write('memory: before, discovery vs bare ...\n');
    before = { memory, discovery: await discoveryRatio(config, tmp, main) };
  }
  process.stderr.write(`memory: ${serverNode}, registering ${config.instances} instances ...\n`);
  const operator = await operatorMemory(config, tmp);
  process.stderr.write('memory: discovery vs bare ...\n');
  const discovery = await discoveryRatio(config, tmp);
  const grownAfterGc =
    ((operator.afterGc.rssMb - operator.before.rssMb) * 2 ** 20) / operator.instances;
  /** @type {[string, string, string, boolean][]} */
  const aims = [
    [
      `operator RSS with ${operator.instances.toLocaleString('en-US')} instances, settled`,
      `≤ ${AIMS.rssMb} MB`,
      `${f1(operator.settled.rssMb)} MB`,
      operator.settled.rssMb <= AIMS.rssMb,
    ],
    [
      'the same after a full GC',
      `≤ ${AIMS.rssMb} MB`,
      `${f1(operator.afterGc.rssMb)} MB`,
      operator.afterGc.rssMb <= AIMS.rssMb,
    ],
    [
      'RSS growth per instance (after GC)',
      `≤ ${AIMS.bytesPerInstance} bytes`,
      `${Math.round(grownAfterGc)} bytes`,
      grownAfterGc <= AIMS.bytesPerInstance,
    ],
  ];
  const flags = OPERATOR_FLAGS.length === 0 ? "V8's defaults" : `\`${OPERATOR_FLAGS.join(' ')}\``;
  const text = [
    '### Operator',
    '',
    `A fresh operator (node flags ${flags}, the Deployment's \`NODE_OPTIONS\` unless BENCH_MEMORY_OPERATOR_FLAGS says otherwise; \`${BULK_LIMITS.join(' ')}\`, preloaded with \`bench/heap-hook.js\`), ${operator.instances.toLocaleString('en-US')} instances registered over HTTP (keep-alive, ${BULK_CONCURRENCY} in flight, ${SERVICES} services, namespace \`bench-mem\`, no metadata). VmRSS from /proc; the full GC and the heap statistics come from the hook (SIGUSR2).`,
    '',
    operatorSection(operator, discovery),
    '',
    ...(before === undefined
      ? []
      : [
          `Before and after in this same run (before: the operator of \`${beforeDist}\`, i.e. BENCH_BEFORE_DIST, same flags and load):`,
          '',
          beforeAfterTable(before, { memory: operator, discovery }),
          '',
        ]),
    spacesTable(operator.stats),
    '',
    ...(operator.heap === undefined
      ? []
      : [
          `#### Where the bytes go: the heap snapshot by constructor (${operator.heap.nodes.toLocaleString('en-US')} heap objects)`,
          '',
          heapTable(operator.heap, operator.instances),
          '',
        ]),
  ].join('\n');
  return { before, aims, text };
}

/** @param {[string, string, string, boolean][]} aims */
const aimRows = (aims) =>
  aims.map(
    ([what, target, measured, met]) => `| ${what} | ${target} | ${measured} | ${met ? '✓' : '✗'} |`,
  );

/**
 * The `- date / load / command` lines of a section.
 * @param {Date} started
 * @param {ReturnType<typeof machine>} host
 */
function runLines(started, host) {
  return [
    `- date: ${started.toISOString()}; commit ${host.commit}; ${host.cpus} CPUs, ${host.model}, ${host.memGb} GB`,
    `- load average (1, 5, 15 min) at start: ${host.load}; at end: ${load()}`,
    `- command: \`${commandLine({ vars: (k) => k.startsWith('BENCH_'), script: 'bench:memory', file: 'bench/memory.js' })}\``,
  ];
}

/**
 * BENCH_OPERATOR_ONLY=1: the operator's part alone, spliced into this Node major's section of
 * RESULTS-memory.md (its operator aims and its `### Operator` part; the sidecar's part and the
 * module costs are kept as they were, with the date of their own run).
 */
export async function operatorOnlyMain() {
  const config = loadConfig();
  if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build`);
  const { host, started, serverNode, tmp } = benchSetup();
  const part = await operatorPart(config, tmp, serverNode);
  const major = serverNode.split('.')[0] ?? serverNode;
  const old = readSection(major);
  const run = runLines(started, host).map((l) => l.replace('- ', '- operator part: '));
  let section;
  if (old === undefined || !old.includes('### Operator') || !old.includes('### Sidecar')) {
    section = [
      `## Node ${serverNode}`,
      '',
      ...run,
      '',
      '### Aims',
      '',
      '| aim | target | measured | met |',
      '|---|---|---|:---:|',
      ...aimRows(part.aims),
      '',
      part.text,
    ].join('\n');
  } else {
    const lines = old.split('\n').filter((l) => !l.startsWith('- operator part: '));
    const command = lines.findIndex((l) => l.startsWith('- command: '));
    lines.splice(command + 1, 0, ...run);
    const aimNames = part.aims.map(([what]) => `| ${what.split(' with ')[0]}`);
    let i = 0;
    const withAims = lines.map((l) =>
      aimNames.some((n) => l.startsWith(n)) ? (aimRows(part.aims)[i++] ?? l) : l,
    );
    const joined = withAims.join('\n');
    section =
      `${joined.slice(0, joined.indexOf('### Operator'))}${part.text}\n${joined.slice(joined.indexOf('### Sidecar'))}`.trimEnd();
  }
  writeResults(major, section);
  process.stdout.write(`${section}\nwritten: ${RESULTS}\n`);
}

/**
 * The row the aim reads: the image's flags, on the bundle when BENCH_SIDECAR_ENTRY measured it
 * (the image runs the bundle), else on this build's main.js.
 * @template {{ build: string, flags: string }} R
 * @param {R[]} rows
 */
function imageRow(rows) {
  const bundled = rows.filter((r) => r.build === 'bundle');
  const built = bundled.length > 0 ? bundled : rows.filter((r) => r.build === 'this build');
  return built.find((r) => r.flags === IMAGE_SIDECAR_FLAGS) ?? built[0];
}

export async function memoryMain() {
  const config = loadConfig();
  if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build`);
  const { host, started, serverNode, tmp } = benchSetup();
  const part = await operatorPart(config, tmp, serverNode);
  process.stderr.write(`memory: sidecar with a copy of ${config.sidecarServices} services ...\n`);
  const sidecar = await sidecarFootprint(config, tmp, beforeSidecarMain(part.before !== undefined));
  const imports = config.imports ? importCosts() : undefined;
  const image = imageRow(sidecar.rows);
  /** @type {[string, string, string, boolean][]} */
  const aims = [
    ...part.aims,
    [
      `sidecar private memory at idle, ${config.sidecarServices.toLocaleString('en-US')}-service copy (\`${image?.flags}\`)`,
      `≤ ${AIMS.sidecarAnonMb} MB`,
      `${f1(image?.idle.anonMb ?? NaN)} MB`,
      (image?.idle.anonMb ?? Infinity) <= AIMS.sidecarAnonMb,
    ],
  ];
  const section = [
    `## Node ${serverNode}`,
    '',
    ...runLines(started, host),
    '',
    '### Aims',
    '',
    '| aim | target | measured | met |',
    '|---|---|---|:---:|',
    ...aimRows(aims),
    '',
    part.text,
    '### Sidecar',
    '',
    `\`node <flags> dist/sidecar/main.js\` of \`bench/client\` with \`MAXINE_DISCOVERY_SCOPE=cluster\`: its copy holds ${sidecar.services.toLocaleString('en-US')} services of 2 instances each (fed by the operator's event stream). Start-up is from spawn to the first 200 answer of \`GET /v1/discover/api\` (polled every 50 ms); idle is ${(10 * SETTLE_MS) / 1000} s later, after V8's memory reducer and the sidecar's memory trim (10 s after the sync, \`MAXINE_MEMORY_TRIM_SECONDS\`) have had their turn. A flag set's \`NAME=value\` words are the sidecar's environment (\`MALLOC_ARENA_MAX=1\`: the image's).`,
    '',
    sidecarTable(sidecar),
    '',
    ...(imports === undefined
      ? []
      : [
          '#### What each module costs (private memory, after a full GC)',
          '',
          importsTable(imports),
          '',
        ]),
  ].join('\n');
  writeResults(serverNode.split('.')[0] ?? serverNode, section);
  process.stdout.write(`${section}\nwritten: ${RESULTS}\n`);
}

if (process.argv[1] === import.meta.filename) {
  const { runMain } = await import('./processes.js');
  runMain(
    'bench:memory',
    process.env.BENCH_SIDECAR_ONLY === '1'
      ? sidecarOnlyMain
      : process.env.BENCH_OPERATOR_ONLY === '1'
        ? operatorOnlyMain
        : memoryMain,
  );
}
