// @ts-check
/**
 * Turns the measurements into the stdout table and bench/RESULTS.md (rewritten every run).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { median } from './load.js';

/** @typedef {import('./load.js').LoadResult} LoadResult */

/**
 * @typedef {object} Row
 * @property {string} key
 * @property {string} label
 * @property {string} [reference] key of the row the ratios compare against
 * @property {LoadResult[]} rounds
 * @property {LoadResult[]} [paired] the reference, measured right next to each round of this row
 */

/**
 * @typedef {object} Summary
 * @property {string} label
 * @property {number} rps
 * @property {number} p50Ms
 * @property {number} p99Ms
 * @property {number} p999Ms
 * @property {number} acP99Ms
 * @property {number | undefined} ratioRps
 * @property {number | undefined} ratioP99
 * @property {number} failures non-2xx responses and errors over all rounds
 * @property {number[]} perRoundRps
 * @property {number[]} perRoundP99
 * @property {number} bytesPerResponse
 * @property {number} cpuUsPerRequest
 * @property {number} cpuShare
 * @property {number | undefined} ratioCpu
 */

/**
 * @typedef {object} Memory
 * @property {number} instances
 * @property {number} services
 * @property {number} rssBeforeMb VmRSS after start-up and a settle
 * @property {number} rssAfterMb VmRSS after the registrations and a settle
 * @property {number} hwmAfterMb VmHWM (peak RSS) of the operator
 * @property {number | undefined} metricsRssMb maxine_process_resident_memory_bytes
 * @property {number | undefined} heapUsedMb maxine_nodejs_heap_size_used_bytes
 * @property {number} rssAfterGcMb VmRSS after a forced full GC
 * @property {number | undefined} heapUsedAfterGcMb heap used after a forced full GC
 * @property {number | undefined} instancesSeen sum of maxine_instances
 * @property {number} seconds time to register them all
 * @property {number} concurrency
 */

/**
 * @typedef {object} Aim
 * @property {string} what
 * @property {string} target
 * @property {string} measured
 * @property {boolean} met
 */

/**
 * @param {Row[]} rows
 * @returns {Map<string, Summary>}
 */
export function summarise(rows) {
  /** @type {Map<string, Summary>} */
  const out = new Map();
  for (const row of rows) {
    const pick = (/** @type {(r: LoadResult) => number} */ f) => median(row.rounds.map(f));
    out.set(row.key, {
      label: row.label,
      rps: pick((r) => r.rps),
      p50Ms: pick((r) => r.p50Ms),
      p99Ms: pick((r) => r.p99Ms),
      p999Ms: pick((r) => r.p999Ms),
      acP99Ms: pick((r) => r.acP99Ms),
      ratioRps: undefined,
      ratioP99: undefined,
      failures: row.rounds.reduce((n, r) => n + r.non2xx + r.errors, 0),
      perRoundRps: row.rounds.map((r) => r.rps),
      perRoundP99: row.rounds.map((r) => r.p99Ms),
      bytesPerResponse: pick((r) => r.bytesPerResponse),
      cpuUsPerRequest: pick((r) => r.cpuUsPerRequest),
      cpuShare: pick((r) => r.cpuShare),
      ratioCpu: undefined,
    });
  }
  for (const row of rows) {
    const summary = out.get(row.key);
    const base = row.reference === undefined ? undefined : out.get(row.reference);
    if (summary === undefined || base === undefined) continue;
    const paired = row.paired;
    if (paired !== undefined && paired.length === row.rounds.length && paired.length > 0) {
      // Median of the ratios of adjacent runs: drift between runs cancels out.
      const of = (/** @type {(r: LoadResult) => number} */ f) =>
        median(row.rounds.map((r, i) => f(r) / f(/** @type {LoadResult} */ (paired[i]))));
      summary.ratioRps = of((r) => r.rps);
      summary.ratioP99 = of((r) => r.p99Ms);
      summary.ratioCpu = of((r) => r.cpuUsPerRequest);
      continue;
    }
    summary.ratioRps = summary.rps / base.rps;
    summary.ratioP99 = summary.p99Ms / base.p99Ms;
    summary.ratioCpu = summary.cpuUsPerRequest / base.cpuUsPerRequest;
  }
  return out;
}

const int = (/** @type {number} */ n) =>
  Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
const ms = (/** @type {number} */ n) => (Number.isFinite(n) ? n.toFixed(2) : '—');
const ratio = (/** @type {number | undefined} */ n) =>
  n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(2);
const pct = (/** @type {number} */ n) => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '—');

/**
 * @param {Map<string, Summary>} summaries
 * @returns {string} a Markdown table
 */
export function throughputTable(summaries) {
  const lines = [
    '| scenario | req/s (median) | p50 ms | p99 ms | p99.9 ms | autocannon p99 ms | req/s ratio | p99 ratio | server CPU µs/req | CPU/req ratio | server CPU use | non-2xx + errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of summaries.values()) {
    lines.push(
      `| ${s.label} | ${int(s.rps)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${ms(s.p999Ms)} | ${s.acP99Ms} | ${ratio(s.ratioRps)} | ${ratio(s.ratioP99)} | ${int(s.cpuUsPerRequest)} | ${ratio(s.ratioCpu)} | ${pct(s.cpuShare)} | ${s.failures} |`,
    );
  }
  return lines.join('\n');
}

/**
 * @param {Map<string, Summary>} summaries
 * @returns {string} a Markdown table of every round, to judge the noise
 */
export function roundsTable(summaries) {
  const count = Math.max(...[...summaries.values()].map((s) => s.perRoundRps.length));
  const header = Array.from({ length: count }, (_, i) => `run ${i + 1} req/s · p99 ms`);
  const lines = [
    `| scenario | ${header.join(' | ')} |`,
    `|---|${header.map(() => '---:').join('|')}|`,
  ];
  for (const s of summaries.values()) {
    const cells = s.perRoundRps.map((rps, i) => `${int(rps)} · ${ms(s.perRoundP99[i] ?? NaN)}`);
    lines.push(`| ${s.label} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * @param {Memory} m
 * @returns {string} a Markdown table
 */
export function memoryTable(m) {
  const perInstance = ((m.rssAfterMb - m.rssBeforeMb) * 1024 * 1024) / m.instances;
  const perInstanceGc = ((m.rssAfterGcMb - m.rssBeforeMb) * 1024 * 1024) / m.instances;
  const opt = (/** @type {number | undefined} */ n) => (n === undefined ? '—' : n.toFixed(1));
  return [
    '| figure | value |',
    '|---|---:|',
    `| instances registered (services) | ${int(m.instances)} (${m.services}) |`,
    `| instances the operator reports (maxine_instances) | ${m.instancesSeen === undefined ? '—' : int(m.instancesSeen)} |`,
    `| RSS before registrations (VmRSS) | ${m.rssBeforeMb.toFixed(1)} MB |`,
    `| RSS after registrations (VmRSS) | ${m.rssAfterMb.toFixed(1)} MB |`,
    `| peak RSS (VmHWM) | ${m.hwmAfterMb.toFixed(1)} MB |`,
    `| RSS from /metrics (cross-check) | ${opt(m.metricsRssMb)} MB |`,
    `| V8 heap used from /metrics | ${opt(m.heapUsedMb)} MB |`,
    `| RSS after a forced full GC (VmRSS) | ${m.rssAfterGcMb.toFixed(1)} MB |`,
    `| V8 heap used after a forced full GC | ${opt(m.heapUsedAfterGcMb)} MB |`,
    `| RSS growth per instance (before GC · after GC) | ${int(perInstance)} · ${int(perInstanceGc)} bytes |`,
    `| registration time (keep-alive, ${m.concurrency} in flight) | ${m.seconds.toFixed(1)} s = ${int(m.instances / m.seconds)} /s |`,
  ].join('\n');
}

/**
 * @param {Aim[]} aims
 * @returns {string} a Markdown table
 */
export function aimsTable(aims) {
  return [
    '| aim | target | measured | met |',
    '|---|---|---|:---:|',
    ...aims.map((a) => `| ${a.what} | ${a.target} | ${a.measured} | ${a.met ? '✓' : '✗'} |`),
  ].join('\n');
}

/** @returns {{ cpus: number, model: string, node: string, kernel: string, memGb: string, load: string, commit: string }} */
export function machine() {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line !== undefined) model = line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // not Linux: keep os.cpus()
  }
  let commit = 'unknown';
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    // Tracked files only: an untracked node_modules link (a worktree's) does not make it dirty.
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
    }).trim();
    commit = dirty === '' ? head : `${head} (working tree has changes)`;
  } catch {
    // not a git checkout
  }
  return {
    cpus: availableParallelism(),
    model,
    node: process.version,
    kernel: release(),
    memGb: (totalmem() / 2 ** 30).toFixed(1),
    load: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    commit,
  };
}

/**
 * Writes the file whole (temp file + rename), so a reader never sees half of it.
 * @param {string} path
 * @param {string} text
 */
export function writeAtomically(path, text) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/**
 * An integer from the environment, or `fallback` when unset or empty.
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 */
export function intEnv(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, not "${raw}"`);
  }
  return value;
}

/** @param {string} value @returns {string} the value, quoted for a POSIX shell when needed */
export function shellQuote(value) {
  return /^[\w.,:=/+-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * The command that reproduces a run: the environment variables it reads that are set, then
 * `npm run <script>` (when run so) or `node <file>`.
 * @param {{ vars: (name: string) => boolean, script: string, file: string }} run
 * @returns {string}
 */
export function commandLine({ vars, script, file }) {
  const set = Object.keys(process.env)
    .filter(vars)
    .sort()
    .map((k) => `${k}=${shellQuote(process.env[k] ?? '')}`);
  const command = process.env.npm_lifecycle_event === script ? `npm run ${script}` : `node ${file}`;
  return [...set, command].join(' ');
}

/** The heading of the proxy run's section in RESULTS.md (bench/proxy.js, bench/run.js). */
export const PROXY_HEADING =
  '## Sidecar outbound proxy (latest `npm run bench:proxy`, copied from RESULTS-proxy.md)';

/** The heading of the soak run's section in RESULTS.md (bench/soak.js, bench/run.js). */
export const SOAK_HEADING =
  '## Soak and abuse (latest `npm run bench:soak`, copied from RESULTS-soak.md)';

/** The heading of the standalone store run's section in RESULTS.md (bench/store.js, bench/run.js). */
export const STORE_HEADING =
  '## Standalone store (latest `npm run bench:store`, copied from RESULTS-store.md)';

/** The heading of the discovery-scope run's section in RESULTS.md (bench/sidecar-scope.ts, bench/run.js). */
export const SCOPE_HEADING =
  '## Sidecar discovery scope (latest `npm run bench:scope`, copied from RESULTS-scope.md)';

/** The heading of the event fan-out run's section in RESULTS.md (bench/events-fanout.js, bench/run.js). */
export const FANOUT_HEADING =
  '## Event fan-out to WebSocket subscribers (latest `npm run bench:events-fanout`, copied from RESULTS-events-fanout.md)';

/**
 * Another script's results file as a section of RESULTS.md: its title line dropped, its
 * headings one level deeper; nothing when the file does not exist.
 * @param {string} file
 * @param {string} heading
 * @returns {string[]}
 */
export function carriedSection(file, heading) {
  if (!existsSync(file)) return [];
  const body = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => !line.startsWith('# '))
    .map((line) => (line.startsWith('#') ? `#${line}` : line));
  return [heading, ...body, ''];
}
