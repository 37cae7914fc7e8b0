// @ts-check
/**
 * The sidecar's outbound proxy under load (`npm run bench:proxy`, after a build): the same
 * upstream (bench/baseline-server.js, a 187-byte JSON answer) called
 *
 * - directly,
 * - through the sidecar's path form `GET /v1/proxy/upstream/`,
 * - the same to `guarded`, a service (same upstream process) with what a real deployment sets:
 *   an L7 intention allowing the caller, a rateLimit (never reached), a circuitBreaker, retries
 *   with a per-try timeout and a requestTimeoutSeconds, so every per-call hook has work to do,
 * - through the sidecar's forward-proxy listener (`GET http://upstream.bench/`, as an app with
 *   HTTP_PROXY sends it),
 * - through a minimal node:http forwarding proxy (bench/proxy-reference.js),
 *
 * in the same run, 50 connections, each scenario next to a direct run so that only adjacent
 * ratios are compared on a noisy box. The sidecar is the real entry point (dist/sidecar/main.js)
 * with the hooks `sidecar/sidecar.ts` composes (intentions, rate limits, breakers, retry
 * budget, reporter, propagating tracer). Sidecar RSS is read from /proc after the load.
 * Writes bench/RESULTS-proxy.md and its section of bench/RESULTS.md.
 *
 * Environment (all optional): BENCH_DURATION seconds per measured run (10), BENCH_WARMUP (3),
 * BENCH_ROUNDS (2), BENCH_CONNECTIONS (50), BENCH_SIDECAR_NODE_FLAGS (the image's: a small young
 * generation), BENCH_ONLY (scenario keys, e.g. `path,guarded,reference`), BENCH_CPU_PROF=1 to
 * profile the sidecar (`--cpu-prof`, top frames printed, the file kept under the temp dir).
 */
import { Buffer } from 'node:buffer';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measure, median } from './load.js';
import { formatFrames, topFrames } from './profile-top.js';
import {
  freePort,
  httpRequest,
  rssOf,
  runMain,
  SERVER_NODE,
  startChild,
  startOperator,
  stopChild,
} from './processes.js';
import {
  carriedSection,
  commandLine,
  intEnv,
  machine,
  PROXY_HEADING,
  writeAtomically,
} from './report.js';

/** @typedef {import('./processes.js').Child} Child */
/** @typedef {import('./load.js').LoadResult} LoadResult */

const ROOT = join(import.meta.dirname, '..');
const SIDECAR_MAIN = join(ROOT, 'dist', 'sidecar', 'main.js');
const BASELINE_MAIN = join(import.meta.dirname, 'baseline-server.js');
const REFERENCE_MAIN = join(import.meta.dirname, 'proxy-reference.js');
const RESULTS = join(import.meta.dirname, 'RESULTS.md');
const RESULTS_PROXY = join(import.meta.dirname, 'RESULTS-proxy.md');
const NAMESPACE = 'bench';
/** The service with an intention, a rate limit, a circuit breaker, retries and a deadline. */
const GUARDED = 'guarded';
/** The flags Dockerfile.sidecar sets (BENCH_SIDECAR_NODE_FLAGS to try others). */
const SIDECAR_NODE_FLAGS = (
  process.env.BENCH_SIDECAR_NODE_FLAGS ?? '--max-semi-space-size=8 --max-old-space-size=96'
)
  .split(' ')
  .filter(Boolean);
const BODY = Buffer.from(
  '{"instance":{"id":"api-01e62ac62d9b5abd","service":{"namespace":"bench","name":"api"},"host":"10.0.0.6","port":8080,"version":"v1","zone":"b","weight":3,"metadata":{},"health":"passing"}}',
);
const AIMS = { addedP50Ms: 0.3, throughputRatio: 0.7 };

function loadConfig() {
  return {
    durationSec: intEnv('BENCH_DURATION', 10, 1, 600),
    warmupSec: intEnv('BENCH_WARMUP', 3, 0, 120),
    rounds: intEnv('BENCH_ROUNDS', 2, 1, 20),
    connections: intEnv('BENCH_CONNECTIONS', 50, 1, 1000),
    /** Connections of the latency phase: a proxy's own added latency, without queueing. */
    latencyConnections: intEnv('BENCH_LATENCY_CONNECTIONS', 1, 1, 1000),
    /** Scenario keys to run (BENCH_ONLY=path,guarded), all when unset. */
    only: process.env.BENCH_ONLY?.split(',').filter(Boolean),
    cpuProf: process.env.BENCH_CPU_PROF === '1',
  };
}

/**
 * @param {string} dir
 */
function writeServices(dir) {
  const service = (/** @type {string} */ name, /** @type {string} */ extra = '') =>
    `apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: ${name}, namespace: ${NAMESPACE} }\nspec:\n  loadBalancing: { strategy: round-robin }\n${extra}`;
  writeFileSync(
    join(dir, 'bench.yaml'),
    [
      service('upstream'),
      service('client'),
      // What a real deployment sets on a called service: every per-call hook has work to do.
      service(
        GUARDED,
        [
          '  circuitBreaker: { failureThreshold: 5, openSeconds: 30 }',
          '  retries: { attempts: 2, retryOn: [5xx, connect-failure], perTryTimeoutSeconds: 2 }',
          '  rateLimit: { requestsPerSecond: 1000000, burst: 1000000 }',
          '  requestTimeoutSeconds: 5',
          '',
        ].join('\n'),
      ),
      // An L7 intention the authorizer evaluates on each call (allow GET under /).
      `apiVersion: maxine.io/v1alpha1\nkind: MaxineIntention\nmetadata: { name: ${GUARDED}-callers, namespace: ${NAMESPACE} }\nspec:\n  destination: { name: ${GUARDED} }\n  sources:\n    - name: client\n      permissions:\n        - { action: allow, http: { methods: [GET], pathPrefix: / } }\n`,
    ].join('---\n'),
  );
}

/**
 * @param {Child} operator
 * @param {number} proxyPort
 * @param {string | undefined} profileDir where `--cpu-prof` writes, when profiling
 * @returns {Promise<Child>}
 */
async function startSidecar(operator, proxyPort, profileDir) {
  const port = await freePort();
  const prof = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  return startChild({
    name: 'sidecar',
    port,
    readyPath: `/v1/proxy/${GUARDED}/`,
    args: [...SIDECAR_NODE_FLAGS, ...prof, SIDECAR_MAIN],
    env: {
      ...process.env,
      // The figures are for a copy of the whole registry, as measured before `pod` became the default scope.
      MAXINE_DISCOVERY_SCOPE: 'cluster',
      MAXINE_SERVICE: 'client',
      MAXINE_POD_NAMESPACE: NAMESPACE,
      MAXINE_POD_NAME: 'client-0',
      MAXINE_OPERATOR_URL: `http://127.0.0.1:${operator.port}`,
      MAXINE_LISTEN_PORT: String(port),
      MAXINE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
      MAXINE_LOG_LEVEL: 'warn',
    },
  });
}

/**
 * @typedef {object} Scenario
 * @property {string} key
 * @property {string} label
 * @property {number} port
 * @property {string} path
 * @property {number} pid the process whose CPU is read (the proxy, or the upstream when direct)
 */

/**
 * @param {ReturnType<typeof loadConfig>} config
 * @param {Scenario} s
 * @param {number} connections
 */
function run(config, s, connections) {
  return measure({
    port: s.port,
    path: s.path,
    connections,
    pipelining: 1,
    durationSec: config.durationSec,
    warmupSec: config.warmupSec,
    pid: s.pid,
  });
}

/**
 * One measured run, printed; a proxied run with errors stops the bench (its figures would lie).
 * @param {ReturnType<typeof loadConfig>} config
 * @param {Scenario} s
 * @param {{ isDirect: boolean, round: number, connections: number }} at
 */
async function runChecked(config, s, { isDirect, round, connections }) {
  const result = await run(config, s, connections);
  if (result.non2xx + result.errors > 0 && !isDirect) {
    const sample = await httpRequest({ port: s.port, method: 'GET', path: s.path });
    throw new Error(
      `${s.label}: ${result.non2xx} non-2xx, ${result.errors} errors; one now: ${sample.status} ${sample.body.slice(0, 300)}`,
    );
  }
  process.stdout.write(
    `round ${round}, ${connections} conn, ${s.label}: ${Math.round(result.rps)} req/s, p50 ${fixed(result.p50Ms, 3)} ms, p99 ${fixed(result.p99Ms, 3)} ms\n`,
  );
  return result;
}

/**
 * @param {number} value
 * @param {number} [digits]
 */
const fixed = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : '—');

async function main() {
  const config = loadConfig();
  if (!existsSync(SIDECAR_MAIN)) throw new Error(`${SIDECAR_MAIN} is missing: run npm run build`);
  const host = machine();
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'maxine-bench-proxy-'));
  /** @type {Child[]} */
  const children = [];
  try {
    const resources = join(tmp, 'resources');
    mkdirSync(resources);
    writeServices(resources);
    const operator = await startOperator(resources, 'operator');
    children.push(operator);
    const upstreamPort = await freePort();
    const upstream = await startChild({
      name: 'upstream',
      port: upstreamPort,
      readyPath: '/',
      args: [BASELINE_MAIN, String(upstreamPort), BODY.toString('base64')],
    });
    children.push(upstream);
    // The same upstream process is the one instance of both called services.
    for (const service of ['upstream', GUARDED]) {
      const registered = await httpRequest({
        port: operator.port,
        method: 'POST',
        path: '/api/v1/instances',
        body: JSON.stringify({
          service,
          namespace: NAMESPACE,
          host: '127.0.0.1',
          port: upstreamPort,
          ttlSeconds: 3600,
        }),
      });
      if (registered.status !== 201)
        throw new Error(`register ${service}: ${registered.status} ${registered.body}`);
    }
    const forwardPort = await freePort();
    // Kept after the run, for `node bench/profile-top.js <file> 40 total`.
    const profileDir = config.cpuProf
      ? mkdtempSync(join(tmpdir(), 'maxine-proxy-profile-'))
      : undefined;
    const sidecar = await startSidecar(operator, forwardPort, profileDir);
    children.push(sidecar);
    const referencePort = await freePort();
    const reference = await startChild({
      name: 'reference',
      port: referencePort,
      readyPath: '/',
      // The sidecar's Node flags, so that only the code differs.
      args: [...SIDECAR_NODE_FLAGS, REFERENCE_MAIN, String(referencePort), String(upstreamPort)],
    });
    children.push(reference);
    const idle = rssOf(sidecar.pid);

    /** @type {Scenario} */
    const direct = {
      key: 'direct',
      label: 'direct call to the upstream',
      port: upstreamPort,
      path: '/',
      pid: upstream.pid,
    };
    /** @type {Scenario[]} */
    const proxied = [
      {
        key: 'path',
        label: 'sidecar path form GET /v1/proxy/upstream/',
        port: sidecar.port,
        path: '/v1/proxy/upstream/',
        pid: sidecar.pid,
      },
      {
        key: 'guarded',
        label: `sidecar path form, ${GUARDED} (intention, rateLimit, circuitBreaker, retries, timeout)`,
        port: sidecar.port,
        path: `/v1/proxy/${GUARDED}/`,
        pid: sidecar.pid,
      },
      {
        key: 'forward',
        label: `sidecar forward listener GET http://upstream.${NAMESPACE}/`,
        port: forwardPort,
        path: `http://upstream.${NAMESPACE}/`,
        pid: sidecar.pid,
      },
      {
        key: 'reference',
        label: 'minimal node:http forwarding proxy (reference)',
        port: referencePort,
        path: '/',
        pid: reference.pid,
      },
    ];
    if (config.only !== undefined) {
      const only = config.only;
      proxied.splice(0, proxied.length, ...proxied.filter((s) => only.includes(s.key)));
    }
    const loadedPhase = await phase(config, direct, proxied, config.connections);
    const loaded = rssOf(sidecar.pid);
    const latencyPhase = await phase(config, direct, proxied, config.latencyConnections);
    if (profileDir !== undefined) {
      await stopChild(sidecar);
      for (const file of readdirSync(profileDir)) {
        process.stdout.write(
          `\nsidecar profile ${join(profileDir, file)}, top frames by self time:\n${formatFrames(topFrames(join(profileDir, file), 30))}\n`,
        );
      }
    }
    const rows = loadedPhase.rows;
    const latencyRows = latencyPhase.rows;
    const text = report({
      config,
      host,
      started,
      rows,
      direct: loadedPhase.direct,
      latencyRows,
      latencyDirect: latencyPhase.direct,
      memory: { idle, loaded },
    });
    writeAtomically(RESULTS_PROXY, text);
    spliceIntoResults();
    process.stdout.write(`\n${text}`);
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Every proxied scenario next to a direct run of its own, at `connections`, over the rounds.
 * @param {ReturnType<typeof loadConfig>} config
 * @param {Scenario} direct
 * @param {Scenario[]} proxied
 * @param {number} connections
 */
async function phase(config, direct, proxied, connections) {
  /** @type {Map<string, { results: LoadResult[], directs: LoadResult[] }>} */
  const runs = new Map(proxied.map((s) => [s.key, { results: [], directs: [] }]));
  for (let round = 1; round <= config.rounds; round++) {
    const order = round % 2 === 1 ? proxied : [...proxied].reverse();
    for (const s of order) {
      const entry = /** @type {{ results: LoadResult[], directs: LoadResult[] }} */ (
        runs.get(s.key)
      );
      const pair = round % 2 === 1 ? [direct, s] : [s, direct];
      for (const one of pair) {
        const result = await runChecked(config, one, {
          isDirect: one === direct,
          round,
          connections,
        });
        (one === direct ? entry.directs : entry.results).push(result);
      }
    }
  }
  const rows = proxied.map((s) => {
    const { results, directs } = /** @type {{ results: LoadResult[], directs: LoadResult[] }} */ (
      runs.get(s.key)
    );
    const ratio = (/** @type {(r: LoadResult) => number} */ f) =>
      median(results.map((r, i) => f(r) / f(/** @type {LoadResult} */ (directs[i]))));
    const added = median(
      results.map((r, i) => r.p50Ms - /** @type {LoadResult} */ (directs[i]).p50Ms),
    );
    return {
      s,
      rps: median(results.map((r) => r.rps)),
      p50: median(results.map((r) => r.p50Ms)),
      p99: median(results.map((r) => r.p99Ms)),
      cpu: median(results.map((r) => r.cpuUsPerRequest)),
      rpsRatio: ratio((r) => r.rps),
      p50Ratio: ratio((r) => r.p50Ms),
      p99Ratio: ratio((r) => r.p99Ms),
      addedP50: added,
    };
  });
  const directAll = [...runs.values()].flatMap((r) => r.directs);
  return {
    rows,
    direct: {
      rps: median(directAll.map((r) => r.rps)),
      p50: median(directAll.map((r) => r.p50Ms)),
      p99: median(directAll.map((r) => r.p99Ms)),
    },
  };
}

/**
 * @param {{
 *   config: ReturnType<typeof loadConfig>, host: ReturnType<typeof machine>, started: Date,
 *   rows: { s: Scenario, rps: number, p50: number, p99: number, cpu: number, rpsRatio: number, p50Ratio: number, p99Ratio: number, addedP50: number }[],
 *   direct: { rps: number, p50: number, p99: number },
 *   latencyRows: { s: Scenario, rps: number, p50: number, p99: number, cpu: number, rpsRatio: number, p50Ratio: number, p99Ratio: number, addedP50: number }[],
 *   latencyDirect: { rps: number, p50: number, p99: number },
 *   memory: { idle: ReturnType<typeof rssOf>, loaded: ReturnType<typeof rssOf> },
 * }} r
 */
function report(r) {
  const path = r.rows.find((row) => row.s.key === 'path');
  const forward = r.rows.find((row) => row.s.key === 'forward');
  const pathLatency = r.latencyRows.find((row) => row.s.key === 'path');
  const forwardLatency = r.latencyRows.find((row) => row.s.key === 'forward');
  /** @param {typeof r.rows} rows @param {typeof r.direct} direct */
  const table = (rows, direct) => [
    '| scenario | req/s | p50 ms | p99 ms | added p50 ms | req/s vs direct | p50 vs direct | p99 vs direct | proxy CPU µs/req |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| direct call to the upstream | ${Math.round(direct.rps)} | ${fixed(direct.p50, 3)} | ${fixed(direct.p99, 3)} | — | — | — | — | — |`,
    ...rows.map(
      (row) =>
        `| ${row.s.label} | ${Math.round(row.rps)} | ${fixed(row.p50, 3)} | ${fixed(row.p99, 3)} | ${fixed(row.addedP50, 3)} | ${fixed(row.rpsRatio)}× | ${fixed(row.p50Ratio)}× | ${fixed(row.p99Ratio)}× | ${fixed(row.cpu, 0)} |`,
    ),
  ];
  const aim = (
    /** @type {string} */ what,
    /** @type {string} */ target,
    /** @type {string} */ measured,
    /** @type {boolean} */ met,
  ) => `| ${what} | ${target} | ${measured} | ${met ? '✓' : '✗'} |`;
  return [
    '# Maxine sidecar proxy benchmark',
    '',
    '_Generated by `bench/proxy.js`; rewritten on every run. On a shared or noisy machine only the ratios measured in the same run mean anything._',
    '',
    `- date: ${r.started.toISOString()}`,
    `- machine: ${r.host.cpus} CPUs, ${r.host.model}, ${r.host.memGb} GB RAM, Linux ${r.host.kernel}`,
    `- node: ${r.host.node} (load generator); servers: ${SERVER_NODE === process.execPath ? r.host.node : SERVER_NODE}; commit: ${r.host.commit}`,
    `- load average at start: ${r.host.load}`,
    `- command: \`${commandLine({ vars: (k) => k.startsWith('BENCH_'), script: 'bench:proxy', file: 'bench/proxy.js' })}\``,
    '',
    '## Method',
    '',
    `- One upstream (\`bench/baseline-server.js\`, ${BODY.length}-byte JSON answer) registered as the only instance of \`${NAMESPACE}/upstream\`; a sidecar of \`${NAMESPACE}/client\` (\`node ${SIDECAR_NODE_FLAGS.join(' ')} dist/sidecar/main.js\`, the hooks sidecar/sidecar.ts composes) that learned it from a standalone operator's event stream; the same upstream is also the only instance of \`${NAMESPACE}/${GUARDED}\`, which has an L7 intention allowing \`client\` (GET under /), a rateLimit of 10⁶/s, a circuitBreaker, retries (2, per-try timeout 2 s) and requestTimeoutSeconds 5; a minimal node:http forwarding proxy (\`bench/proxy-reference.js\`, same Node flags) as the reference. Every server is its own process; autocannon runs in the bench process; all on 127.0.0.1.`,
    `- Two phases: under load, ${r.config.connections} connections; then latency, ${r.config.latencyConnections} connection(s), where nothing queues and the added p50 is the proxy's own cost per call (under load the added p50 is mostly queueing behind the proxy's CPU). Pipelining 1, ${r.config.durationSec} s measured after ${r.config.warmupSec} s of warm-up, ${r.config.rounds} rounds per phase. Each proxied scenario is measured next to a direct run of its own (direct first on odd rounds, second on even ones); ratios and the added p50 are medians over those adjacent pairs.`,
    '- Latencies: microsecond histogram of autocannon per-response times. Server CPU: the proxy process (the upstream for the direct run), µs per response.',
    '',
    '## Aims',
    '',
    '| aim | target | measured | met |',
    '|---|---|---|:---:|',
    pathLatency
      ? aim(
          `added p50, path form, ${r.config.latencyConnections} connection(s)`,
          `≤ ${AIMS.addedP50Ms} ms`,
          `${fixed(pathLatency.addedP50, 3)} ms`,
          pathLatency.addedP50 <= AIMS.addedP50Ms,
        )
      : '',
    path
      ? aim(
          `added p50, path form, ${r.config.connections} connections`,
          `≤ ${AIMS.addedP50Ms} ms`,
          `${fixed(path.addedP50, 3)} ms`,
          path.addedP50 <= AIMS.addedP50Ms,
        )
      : '',
    path
      ? aim(
          'throughput vs direct, path form',
          `≥ ${AIMS.throughputRatio}×`,
          `${fixed(path.rpsRatio)}×`,
          path.rpsRatio >= AIMS.throughputRatio,
        )
      : '',
    forwardLatency
      ? aim(
          `added p50, forward listener, ${r.config.latencyConnections} connection(s)`,
          `≤ ${AIMS.addedP50Ms} ms`,
          `${fixed(forwardLatency.addedP50, 3)} ms`,
          forwardLatency.addedP50 <= AIMS.addedP50Ms,
        )
      : '',
    forward
      ? aim(
          'throughput vs direct, forward listener',
          `≥ ${AIMS.throughputRatio}×`,
          `${fixed(forward.rpsRatio)}×`,
          forward.rpsRatio >= AIMS.throughputRatio,
        )
      : '',
    aim(
      'sidecar RSS after the load (peak VmHWM)',
      'reported',
      `${fixed(r.memory.loaded.rssMb, 1)} MB (peak ${fixed(r.memory.loaded.hwmMb, 1)} MB; idle before: ${fixed(r.memory.idle.rssMb, 1)} MB)`,
      true,
    ),
    '',
    `## Under load (${r.config.connections} connections)`,
    '',
    ...table(r.rows, r.direct),
    '',
    `## Latency (${r.config.latencyConnections} connection(s))`,
    '',
    ...table(r.latencyRows, r.latencyDirect),
    '',
  ]
    .filter((line, i, all) => line !== '' || all[i - 1] !== '')
    .join('\n');
}

/** Puts the proxy section into RESULTS.md now, as bench/run.js carries it over. */
function spliceIntoResults() {
  if (!existsSync(RESULTS)) return;
  const text = readFileSync(RESULTS, 'utf8');
  const section = carriedSection(RESULTS_PROXY, PROXY_HEADING).join('\n');
  const start = text.indexOf(`${PROXY_HEADING}\n`);
  if (start === -1) {
    writeAtomically(RESULTS, `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const next = text.indexOf('\n## ', start + PROXY_HEADING.length);
  const rest = next === -1 ? '' : text.slice(next + 1);
  writeAtomically(RESULTS, `${text.slice(0, start)}${section}${rest === '' ? '' : `\n${rest}`}`);
}

runMain('bench:proxy', main);
