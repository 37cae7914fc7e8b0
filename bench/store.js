// @ts-check
/**
 * Registration throughput of a standalone operator with each store, measured in the same run:
 * `--store memory`, `--store file --store-fsync always` (every answered registration fsynced),
 * `--store file --store-fsync interval` and `--store redis` (a local redis-server, when one
 * is on the PATH). Each round starts a fresh operator per store (a
 * fresh, empty store folder) and registers BENCH_STORE_COUNT distinct instances over HTTP
 * with BENCH_STORE_CONCURRENCY in flight; rounds alternate the order of the stores.
 *
 * Run: npm run bench:store (builds first). Writes bench/RESULTS-store.md and the standalone
 * store section of bench/RESULTS.md (which bench/run.js carries over when it rewrites it).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout } from 'node:timers';
import { registerMany } from './registrations.js';
import { freePort, runMain, startOperator, stopChild } from './processes.js';
import { STORE_HEADING } from './report.js';

const COUNT = Number(process.env.BENCH_STORE_COUNT ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_STORE_CONCURRENCY ?? 64);
const ROUNDS = Number(process.env.BENCH_STORE_ROUNDS ?? 3);
const RESULTS_STORE = join(import.meta.dirname, 'RESULTS-store.md');
const RESULTS = join(import.meta.dirname, 'RESULTS.md');

/** The Redis of the redis rows: started by main when `redis-server` is on the PATH. */
let redisUrl = '';
let measured = 0;

/** @type {{ name: string, args: (dir: string) => string[], redis?: boolean }[]} */
const ALL_STORES = [
  { name: 'memory', args: () => ['--store', 'memory'] },
  {
    name: 'file, fsync always',
    args: (dir) => ['--store', 'file', '--store-dir', dir, '--store-fsync', 'always'],
  },
  {
    name: 'file, fsync interval (1 s)',
    args: (dir) => ['--store', 'file', '--store-dir', dir, '--store-fsync', 'interval'],
  },
  {
    name: 'redis (local redis-server, no persistence of its own)',
    redis: true,
    // A prefix per measurement: each starts with an empty store, as the file rows do.
    args: () => [
      ...['--store', 'redis', '--store-redis-url', redisUrl],
      ...['--store-redis-prefix', `bench-${(measured += 1)}`],
    ],
  },
];
/** @type {typeof ALL_STORES} */
let STORES = ALL_STORES;

/**
 * Starts redis-server on a free port, when there is one on the PATH.
 * @returns {Promise<import('node:child_process').ChildProcess | undefined>}
 */
async function startRedis() {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const ready = await new Promise((resolve) => {
    let out = '';
    proc.once('error', () => resolve(false));
    proc.stdout?.on('data', (/** @type {Buffer} */ c) => {
      out += c.toString();
      if (out.includes('Ready to accept connections')) resolve(true);
    });
    setTimeout(() => resolve(false), 10_000).unref();
  });
  if (!ready) {
    proc.kill('SIGKILL');
    return undefined;
  }
  redisUrl = `redis://127.0.0.1:${port}`;
  return proc;
}

/**
 * @param {string} resources
 * @param {{ name: string, args: (dir: string) => string[] }} store
 * @returns {Promise<number>} registrations per second
 */
async function measure(resources, store) {
  const dir = mkdtempSync(join(tmpdir(), 'maxine-bench-store-'));
  const operator = await startOperator(
    resources,
    `operator (${store.name})`,
    [],
    [
      ...['--address-rate-limit', '0', '--max-instances', String(COUNT * 2)],
      ...[
        '--max-instances-per-service',
        String(COUNT),
        '--max-instances-per-principal',
        String(COUNT * 2),
      ],
      ...store.args(dir),
    ],
  );
  try {
    const { registered, seconds } = await registerMany({
      port: operator.port,
      count: COUNT,
      concurrency: CONCURRENCY,
      deadlineMs: 300_000,
      bodyOf: (i) => ({
        service: `svc-${i % 100}`,
        namespace: 'bench',
        host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        port: 8080,
      }),
    });
    return registered / seconds;
  } finally {
    await stopChild(operator);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function main() {
  const redis = await startRedis();
  if (redis === undefined) {
    process.stderr.write('redis-server not found or not ready: the redis row is left out\n');
    STORES = ALL_STORES.filter((st) => st.redis !== true);
  }
  const resources = mkdtempSync(join(tmpdir(), 'maxine-bench-res-'));
  const loadStart = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  /** @type {Map<string, number[]>} */
  const runs = new Map(STORES.map((s) => [s.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? STORES : [...STORES].reverse();
    for (const store of order) {
      const rps = await measure(resources, store);
      runs.get(store.name)?.push(rps);
      process.stderr.write(`round ${round} ${store.name}: ${Math.round(rps)} registrations/s\n`);
    }
  }
  rmSync(resources, { recursive: true, force: true });
  redis?.kill('SIGKILL');
  const memory = median(runs.get('memory') ?? []);
  const rows = STORES.map((s) => {
    const all = runs.get(s.name) ?? [];
    const m = median(all);
    return `| ${s.name} | ${Math.round(m).toLocaleString('en-US')} | ${(m / memory).toFixed(2)} | ${all.map((r) => Math.round(r).toLocaleString('en-US')).join(' · ')} |`;
  });
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const text = [
    '# Standalone store: registration throughput',
    '',
    '_Generated by `bench/store.js`; rewritten on every run. Only ratios measured in the same run mean anything on a shared machine._',
    '',
    `- date: ${new Date().toISOString()}; commit: ${commit}; node: ${process.version}`,
    `- machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); load average (1, 5, 15 min) at start: ${loadStart}; at end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    `- command: \`BENCH_STORE_COUNT=${COUNT} BENCH_STORE_CONCURRENCY=${CONCURRENCY} BENCH_STORE_ROUNDS=${ROUNDS} npm run bench:store\``,
    `- method: per round and store, a fresh operator (\`dist/operator/main.js\`, a fresh store folder under ${tmpdir()}, or a fresh key prefix in one local redis-server) and ${COUNT.toLocaleString('en-US')} \`POST /api/v1/instances\` of distinct host:port over 100 undeclared services, keep-alive, ${CONCURRENCY} in flight; registrations per second from the first request to the last answer; the median over ${ROUNDS} rounds (orders alternate). The load generator runs in the bench process on the same CPUs: when every row is near the memory row, the client is the bound, and the figure says only that a store costs less than that.`,
    '',
    '| store | registrations/s (median) | vs memory | every round |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(RESULTS_STORE, text);
  updateResults(text);
  process.stdout.write(text);
}

/**
 * Replaces (or appends) the store section of RESULTS.md with this run's figures.
 * @param {string} text
 */
function updateResults(text) {
  if (!existsSync(RESULTS)) return;
  const body = text
    .split('\n')
    .filter((line) => !line.startsWith('# '))
    .map((line) => (line.startsWith('#') ? `#${line}` : line));
  const section = [STORE_HEADING, ...body].join('\n');
  const current = readFileSync(RESULTS, 'utf8');
  const start = current.indexOf(STORE_HEADING);
  if (start === -1) {
    writeFileSync(RESULTS, `${current.trimEnd()}\n\n${section}`);
    return;
  }
  const next = current.indexOf('\n## ', start + STORE_HEADING.length);
  writeFileSync(
    RESULTS,
    current.slice(0, start) + section + (next === -1 ? '' : `\n${current.slice(next + 1)}`),
  );
}

runMain('bench:store', main);
