// @ts-check
/**
 * A fixed-rate latency probe, run in a worker thread of the bench process (its own event
 * loop, so the load the bench generates beside it does not delay its timers):
 *
 *   new Worker(PROBE, { workerData: { port, path, headers, rate, connections, timeoutMs } })
 *
 * It sends `rate` GET requests per second over keep-alive connections, open loop: each
 * request has a scheduled start, and its latency runs from that time, not from when a free
 * connection took it, so a server that stalls is charged for every request it held up
 * (no coordinated omission). Figures are kept per phase: the parent posts
 * `{ phase: name }` to switch (requests count in the phase they were scheduled in) and
 * `{ stop: true }` to end; the worker then waits for the requests in flight and posts
 * `{ phases: PhaseFigures[] }`.
 */
import { Agent, request } from 'node:http';
import { createHistogram, performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/**
 * @typedef {object} ProbeSpec
 * @property {number} port
 * @property {string} path
 * @property {Record<string, string>} headers
 * @property {number} rate requests per second
 * @property {number} connections keep-alive connections at most
 * @property {number} timeoutMs a request unanswered this long counts as a timeout
 */

/**
 * @typedef {object} PhaseFigures
 * @property {string} phase
 * @property {number} seconds
 * @property {number} sent
 * @property {number} ok 2xx answers
 * @property {Record<string, number>} statuses answers by status code
 * @property {number} errors connection errors and timeouts
 * @property {number} p50Ms latency of 2xx answers, from the scheduled start
 * @property {number} p99Ms
 * @property {number} maxMs
 */

/** @param {ProbeSpec} spec */
function run(spec) {
  const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
  const agent = new Agent({ keepAlive: true, maxSockets: spec.connections });
  /** @type {Map<string, { started: number, ended: number, sent: number, ok: number, statuses: Record<string, number>, errors: number, histogram: import('node:perf_hooks').RecordableHistogram }>} */
  const phases = new Map();
  let current = openPhase('start');
  let inFlight = 0;
  let stopping = false;
  const startedAt = performance.now();
  let scheduled = 0;

  /** @param {string} name */
  function openPhase(name) {
    const phase = {
      started: performance.now(),
      ended: Number.NaN,
      sent: 0,
      ok: 0,
      /** @type {Record<string, number>} */
      statuses: {},
      errors: 0,
      histogram: createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 }),
    };
    phases.set(name, phase);
    return phase;
  }

  /** @param {number} dueAt the scheduled start (performance.now() time base) */
  function send(dueAt) {
    const phase = current;
    phase.sent += 1;
    inFlight += 1;
    let settled = false;
    const done = (/** @type {number | undefined} */ status) => {
      if (settled) return;
      settled = true;
      inFlight -= 1;
      if (status === undefined) {
        phase.errors += 1;
        return;
      }
      phase.statuses[status] = (phase.statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) {
        phase.ok += 1;
        phase.histogram.record(Math.max(1, Math.round((performance.now() - dueAt) * 1000)));
      }
    };
    const req = request(
      { host: '127.0.0.1', port: spec.port, path: spec.path, headers: spec.headers, agent },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode));
        res.on('error', () => done(undefined));
      },
    );
    req.setTimeout(spec.timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => done(undefined));
    req.end();
  }

  // Every 2 ms, send what is due by now (the timer itself may run late; the schedule does not).
  const ticker = setInterval(() => {
    const due = Math.floor(((performance.now() - startedAt) * spec.rate) / 1000);
    for (; scheduled < due; scheduled += 1) send(startedAt + (scheduled * 1000) / spec.rate);
  }, 2);

  function finish() {
    if (inFlight > 0) return;
    clearInterval(waiter);
    agent.destroy();
    /** @type {PhaseFigures[]} */
    const figures = [...phases.entries()]
      .filter(([, p]) => p.sent > 0)
      .map(([name, p]) => ({
        phase: name,
        seconds: (p.ended - p.started) / 1000,
        sent: p.sent,
        ok: p.ok,
        statuses: p.statuses,
        errors: p.errors,
        p50Ms: p.ok > 0 ? p.histogram.percentile(50) / 1000 : Number.NaN,
        p99Ms: p.ok > 0 ? p.histogram.percentile(99) / 1000 : Number.NaN,
        maxMs: p.ok > 0 ? p.histogram.max / 1000 : Number.NaN,
      }));
    port.postMessage({ phases: figures });
    port.close();
  }
  /** @type {NodeJS.Timeout | undefined} */
  let waiter;

  port.on('message', (/** @type {{ phase?: string, stop?: boolean }} */ msg) => {
    if (stopping) return;
    current.ended = performance.now();
    if (msg.phase !== undefined) current = openPhase(msg.phase);
    if (msg.stop === true) {
      stopping = true;
      clearInterval(ticker);
      waiter = setInterval(finish, 20);
    }
  });
}

if (!isMainThread) run(/** @type {ProbeSpec} */ (workerData));
