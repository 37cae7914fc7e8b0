// @ts-check
/**
 * The heartbeat's own cost, in-process: the operator's real HTTP server (a standalone
 * operator of this tree's dist/, as bench/run.js starts it) fed through in-memory sockets, so
 * Node's HTTP parsing, the fast path, the registry and the response are measured without the
 * syscalls and the scheduler of a shared machine. `PUT /api/v1/instances/{id}/heartbeat` with
 * `{"status":"passing"}` over BENCH_HEARTBEAT_INSTANCES (1,000) registered ids in turn, 50
 * connections, one request in flight on each (as bench/run.js). Says the CPU µs per heartbeat
 * (process.cpuUsage, the best of BENCH_HEARTBEAT_RUNS runs), and what the garbage collector did
 * meanwhile: pauses per 10,000 heartbeats, their total and longest (a p99 is where a pause falls).
 *
 * Run: npm run build && node [node flags] bench/heap-heartbeat.js
 * (BENCH_HEARTBEAT_BARE=1: bench/baseline-server.js's bare PUT fed alike, the reference;
 * BENCH_HEARTBEAT_REQUESTS, default 60,000 per run; BENCH_HEARTBEAT_RUNS, default 5;
 * BENCH_HEARTBEAT_DIST, another build's dist/ for a before/after).
 */
import { Buffer } from 'node:buffer';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';
import { pathToFileURL } from 'node:url';
import { intEnv } from './report.js';

const DIST = resolve(process.env.BENCH_HEARTBEAT_DIST ?? join(import.meta.dirname, '..', 'dist'));
const REQUESTS = intEnv('BENCH_HEARTBEAT_REQUESTS', 60_000, 1000, 10_000_000);
const RUNS = intEnv('BENCH_HEARTBEAT_RUNS', 5, 1, 100);
const INSTANCES = intEnv('BENCH_HEARTBEAT_INSTANCES', 1000, 1, 100_000);
const CONNECTIONS = 50;
const BODY = '{"status":"passing"}';

/** @param {string} rel */
const load = (rel) => import(pathToFileURL(join(DIST, rel)).href);
const { loadConfig } = await load('operator/config.js');
const { createOperator } = await load('operator/operator.js');
const { createLogger } = await load('common/logger.js');

const config = loadConfig(
  [
    ...[
      '--resources',
      mkdtempSync(join(tmpdir(), 'maxine-heartbeat-')),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
    ],
    ...['--log-level', 'warn', '--default-ttl-seconds', '3600', '--address-rate-limit', '0'],
  ],
  {},
);
const operator = createOperator(config, createLogger('warn'));
await operator.start();
// A default-type event subscriber, as bench/run.js's sidecar is (it takes no heartbeats).
const unsubscribe = operator.events.subscribe(() => undefined, { heartbeats: false });
/** @type {string[]} */
const ids = [];
for (let i = 0; i < INSTANCES; i++) {
  const { instance } = operator.registry.register({
    service: 'heartbeats',
    namespace: 'bench',
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 9000,
    weight: 1,
    metadata: {},
  });
  ids.push(instance.id);
}

/** One in-memory connection: writes a request when the previous answer is whole. */
/** Answers other than 200 (there must be none: the figures would be of refusals). */
let refused = 0;

class Connection extends Duplex {
  /** @param {() => void} onAnswer */
  constructor(onAnswer) {
    super();
    this.onAnswer = onAnswer;
    this.remoteAddress = '127.0.0.1';
    this.remotePort = 40000;
  }
  /** @override */
  _read() {}
  /** @override @param {Buffer} chunk @param {string} _enc @param {() => void} done */
  _write(chunk, _enc, done) {
    // Each answer is small and written in one chunk (head and body corked together).
    if (chunk.includes('HTTP/1.1 ')) {
      if (!chunk.includes('HTTP/1.1 200 ')) refused += 1;
      this.onAnswer();
    }
    done();
  }
  setTimeout() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  setKeepAlive() {
    return this;
  }
}

let beat = 0;
const request = () => {
  const id = ids[beat++ % ids.length];
  return `PUT /api/v1/instances/${id}/heartbeat HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`;
};

/** What the garbage collector did in this run (its pauses, as perf_hooks reports them). */
const gc = { n: 0, ms: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.n += 1;
    gc.ms += e.duration;
    gc.maxMs = Math.max(gc.maxMs, e.duration);
  }
}).observe({ entryTypes: ['gc'] });

/** @returns {Promise<{ us: number, gcs: number, gcMs: number, gcMaxMs: number }>} */
function run() {
  return new Promise((done) => {
    let sent = 0;
    let answered = 0;
    gc.n = 0;
    gc.ms = 0;
    gc.maxMs = 0;
    const cpu = process.cpuUsage();
    /** @type {Connection[]} */
    const conns = [];
    const next = (/** @type {Connection} */ c) => {
      if (sent >= REQUESTS) return;
      sent += 1;
      c.push(request());
    };
    for (let i = 0; i < CONNECTIONS; i++) {
      const c = new Connection(() => {
        answered += 1;
        if (answered === REQUESTS) {
          const used = process.cpuUsage(cpu);
          for (const k of conns) k.destroy();
          // GC entries are delivered after the fact: read them a moment later.
          setTimeout(() => {
            done({
              us: (used.user + used.system) / REQUESTS,
              gcs: gc.n,
              gcMs: gc.ms,
              gcMaxMs: gc.maxMs,
            });
          }, 50);
          return;
        }
        next(c);
      });
      conns.push(c);
      server.emit('connection', c);
      next(c);
    }
  });
}

/** @type {import('node:http').Server} */
let server = operator.server;
if (process.env.BENCH_HEARTBEAT_BARE === '1') {
  // The bare reference of bench/run.js (bench/baseline-server.js) fed alike: reads the body,
  // answers a fixed heartbeat-sized body.
  const answer = Buffer.from(
    JSON.stringify({ instance: operator.registry.getInstance(ids[0] ?? '') }),
  );
  const headers = { 'content-type': 'application/json', 'content-length': answer.length };
  const { createServer } = createRequire(import.meta.url)('node:http');
  server = createServer(
    { keepAliveTimeout: 65_000 },
    (
      /** @type {import('node:http').IncomingMessage} */ req,
      /** @type {import('node:http').ServerResponse} */ res,
    ) => {
      req.on('data', () => {});
      req.on('end', () => {
        res.writeHead(200, headers);
        res.end(answer);
      });
    },
  );
}

const results = [];
for (let r = 0; r < RUNS; r++) results.push(await run());
if (refused > 0) throw new Error(`${refused} answers were not 200`);
const best = results.reduce((a, b) => (b.us < a.us ? b : a));
const per10k = (/** @type {number} */ n) => (n * 10_000) / REQUESTS;
process.stdout.write(
  `${process.env.BENCH_HEARTBEAT_BARE === '1' ? 'BARE node:http' : 'operator'} ${process.version} ${process.execArgv.join(' ')} dist=${DIST}\n` +
    `runs (CPU µs per heartbeat): ${results.map((x) => x.us.toFixed(1)).join(', ')}\n` +
    `best: ${best.us.toFixed(1)} µs; GC per 10,000 heartbeats: ${per10k(best.gcs).toFixed(1)} pauses, ${per10k(best.gcMs).toFixed(1)} ms, longest ${best.gcMaxMs.toFixed(2)} ms; ` +
    `load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
);
unsubscribe();
await operator.stop();
process.exit(0);
