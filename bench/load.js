// @ts-check
/**
 * One load measurement with autocannon (programmatic, in the bench process; the server is a
 * child process). A warm-up run is made first and discarded. Latencies come from two sources:
 * autocannon's own histogram (whole milliseconds, as it records them) and a microsecond
 * histogram filled from autocannon's `response` events, used for the figures we report.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
// @ts-expect-error -- autocannon ships no type declarations; the shapes used are typed below
import autocannonUntyped from 'autocannon';

/**
 * The fields of autocannon's result that we read (latency in whole ms, throughput in bytes).
 * @typedef {{
 *   duration: number, '2xx': number, non2xx: number, errors: number, timeouts: number,
 *   latency: { p99: number }, throughput: { total: number },
 * }} AutocannonResult
 */
/**
 * @typedef {Promise<AutocannonResult> & {
 *   on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): void
 * }} AutocannonInstance
 */
const autocannon = /** @type {(opts: Record<string, unknown>) => AutocannonInstance} */ (
  autocannonUntyped
);

/**
 * @typedef {object} LoadSpec
 * @property {number} port
 * @property {string} path
 * @property {string} [method]
 * @property {string} [body]
 * @property {() => { path?: string, body?: string }} [vary] per-request path/body (cycling ids)
 * @property {Record<string, string>} [headers] sent with every request (a bearer token)
 * @property {number} connections
 * @property {number} pipelining
 * @property {number} durationSec
 * @property {number} warmupSec
 * @property {number} [pid] the server's process, whose CPU time is read around the run
 */

/**
 * @typedef {object} LoadResult
 * @property {number} rps successful (2xx) responses per second
 * @property {number} p50Ms
 * @property {number} p99Ms
 * @property {number} p999Ms
 * @property {number} acP99Ms autocannon's own p99 (whole ms)
 * @property {number} total2xx
 * @property {number} non2xx
 * @property {number} errors connection errors and timeouts
 * @property {number} bytesPerResponse bytes on the wire per 2xx response, headers included
 * @property {number} cpuUsPerRequest server CPU time (user + system) per 2xx response, µs
 * @property {number} cpuShare server CPU time over wall time (1 = one core busy)
 */

/** Clock ticks per second of /proc/<pid>/stat times. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * @param {number | undefined} pid
 * @returns {number} CPU seconds (user + system) the process has used so far; NaN when unknown
 */
export function cpuSecondsOf(pid) {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/**
 * @param {LoadSpec} spec
 * @param {boolean} record whether to fill the microsecond histogram
 */
function runOnce(spec, record) {
  const { port, path, method = 'GET', body, vary } = spec;
  const headers = {
    ...(method === 'GET' ? {} : { 'content-type': 'application/json' }),
    ...spec.headers,
  };
  /** @type {Record<string, unknown>} */
  const request = { method, path, headers, body };
  if (vary !== undefined) {
    request.setupRequest = (/** @type {Record<string, unknown>} */ req) => ({ ...req, ...vary() });
  }
  const histogram = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 });
  const instance = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: spec.connections,
    pipelining: spec.pipelining,
    duration: record ? spec.durationSec : spec.warmupSec,
    timeout: 10,
    requests: [request],
  });
  if (record) {
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) {
        histogram.record(Math.max(1, Math.round(responseTimeMs * 1000)));
      }
    });
  }
  return instance.then((result) => ({ result, histogram }));
}

/**
 * Warm-up (discarded), then the measured run.
 * @param {LoadSpec} spec
 * @returns {Promise<LoadResult>}
 */
export async function measure(spec) {
  if (spec.warmupSec > 0) await runOnce(spec, false);
  const cpuBefore = cpuSecondsOf(spec.pid);
  const { result, histogram } = await runOnce(spec, true);
  const cpu = cpuSecondsOf(spec.pid) - cpuBefore;
  const ok = result['2xx'];
  return {
    rps: result.duration > 0 ? ok / result.duration : 0,
    p50Ms: histogram.percentile(50) / 1000,
    p99Ms: histogram.percentile(99) / 1000,
    p999Ms: histogram.percentile(99.9) / 1000,
    acP99Ms: result.latency.p99,
    total2xx: ok,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    bytesPerResponse: ok > 0 ? result.throughput.total / ok : 0,
    cpuUsPerRequest: ok > 0 ? (cpu * 1e6) / ok : Number.NaN,
    cpuShare: result.duration > 0 ? cpu / result.duration : Number.NaN,
  };
}

/**
 * @param {number[]} values
 * @returns {number} the median (mean of the two middle values for an even count)
 */
export function median(values) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}

/** @returns {{ idle: number, total: number }} the machine's CPU ticks so far (/proc/stat, all CPUs) */
function cpuTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …: idle and iowait are the idle ones.
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { idle, total: ticks.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/**
 * Waits until the machine is idle: at least `share` of all CPU time idle over a 500 ms window
 * (what is left of the last run, a peer's background work, another process), or `maxMs`.
 * @param {number} maxMs
 * @param {number} [share]
 * @returns {Promise<{ idle: boolean, waitedMs: number }>}
 */
export async function untilIdle(maxMs, share = 0.9) {
  const started = Date.now();
  if (maxMs <= 0) return { idle: true, waitedMs: 0 };
  for (;;) {
    const before = cpuTicks();
    await sleep(500);
    const after = cpuTicks();
    const total = after.total - before.total;
    const waitedMs = Date.now() - started;
    if (total > 0 && (after.idle - before.idle) / total >= share) return { idle: true, waitedMs };
    if (waitedMs >= maxMs) return { idle: false, waitedMs };
  }
}
