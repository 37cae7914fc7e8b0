// @ts-check
/**
 * Event fan-out to many WebSocket subscribers: a standalone operator (dist/, its own process,
 * so its RSS and CPU are its own) and BENCH_FANOUT_SUBSCRIBERS WebSocket subscribers in this
 * process (the `ws` package), each with a filter a sidecar sends (its dependencies as
 * `services=`, its own service as `caller=`, a snapshot first). Then bursts of events made over
 * REST (registrations, heartbeats that change an instance's health, deregistrations), every one
 * wanted by every subscriber; per delivery, the time from the REST request's send to the
 * message's arrival at that subscriber. The same run then measures the bar: a bare `ws`
 * broadcast server (bench/fanout-baseline-server.js, its own process) sending the same bytes,
 * in bursts of the same shape, to the same number of clients.
 *
 * Run: npm run bench:events-fanout (builds first). BENCH_FANOUT_SUBSCRIBERS (1000),
 * BENCH_FANOUT_BURSTS (20 per size), BENCH_FANOUT_BURST_EVENTS (burst sizes, `3,10,30`), BENCH_FANOUT_WARMUP (3 bursts),
 * BENCH_FANOUT_PAUSE_MS (300), BENCH_OPERATOR_NODE_FLAGS (e.g. --cpu-prof). Writes
 * bench/RESULTS-events-fanout.md and its section of bench/RESULTS.md.
 */
import { Buffer } from 'node:buffer';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { URLSearchParams } from 'node:url';
import { WebSocket } from 'ws';
import { cpuSecondsOf } from './load.js';
import {
  freePort,
  httpRequest,
  rssOf,
  runMain,
  startChild,
  startOperator,
  stopChild,
} from './processes.js';
import { carriedSection, commandLine, FANOUT_HEADING, intEnv, machine } from './report.js';

const SUBSCRIBERS = intEnv('BENCH_FANOUT_SUBSCRIBERS', 1000, 1, 10_000);
const BURSTS = intEnv('BENCH_FANOUT_BURSTS', 20, 1, 10_000);
/** Events per burst: each size is measured in turn, on the same subscribers. */
const SIZES = (process.env.BENCH_FANOUT_BURST_EVENTS ?? '3,10,30').split(',').map((v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 3 || n > 1000)
    throw new Error(`BENCH_FANOUT_BURST_EVENTS: burst sizes from 3 to 1000, not "${v}"`);
  return n;
});
const LARGEST = Math.max(...SIZES);
const WARMUP = intEnv('BENCH_FANOUT_WARMUP', 3, 0, 1000);
const PAUSE_MS = intEnv('BENCH_FANOUT_PAUSE_MS', 300, 0, 60_000);
/** Subscribers opening (and taking their snapshot) at once: under the snapshot queue. */
const CONNECT_WAVE = 40;
/** A burst whose deliveries are not all in after this long is recorded with what is missing. */
const BURST_TIMEOUT_MS = 60_000;
const NAMESPACE = 'bench';
const SERVICE = 'api';
const RESULTS_FANOUT = join(import.meta.dirname, 'RESULTS-events-fanout.md');
const RESULTS = join(import.meta.dirname, 'RESULTS.md');

/** The sequence number at the start of an event message: `{"seq":123,...`. */
const SEQ_PREFIX = Buffer.from('{"seq":');

/** @param {Buffer} buf @returns {number} the message's `seq`, or -1 */
function seqOf(buf) {
  if (buf.compare(SEQ_PREFIX, 0, SEQ_PREFIX.length, 0, SEQ_PREFIX.length) !== 0) return -1;
  let n = 0;
  for (let i = SEQ_PREFIX.length; i < buf.length; i++) {
    const c = buf[i] ?? 0;
    if (c < 48 || c > 57) return n;
    n = n * 10 + (c - 48);
  }
  return -1;
}

/** @param {Float64Array} sorted @param {number} q */
function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

/**
 * What one event is, learnt from the first copy that arrives (parsed once, not per delivery).
 * @typedef {{ sentAt: number, appendedAt: number, burst: number }} Known
 */

/**
 * The state of one measured phase (operator or baseline), shared by every subscriber.
 * @typedef {object} Phase
 * @property {(seq: number, buf: Buffer) => Known | undefined} learn
 * @property {Map<number, Known | undefined>} known
 * @property {boolean} recording
 * @property {number} burst the burst being measured
 * @property {number} delivered deliveries of the current burst
 * @property {number} expected deliveries the current burst must make
 * @property {number} lastAt performance.now() of the burst's last delivery
 * @property {(() => void) | undefined} done
 * @property {Float64Array} latencies send → receive, ms
 * @property {Float64Array} fromAppend the event's `time` → receive, ms (operator only)
 * @property {number} n
 * @property {number} unknown deliveries of an event no request of the burst explains
 * @property {number} outOfOrder deliveries with a seq not above the subscriber's last
 */

/**
 * @param {(seq: number, buf: Buffer) => Known | undefined} learn
 * @param {number} events per burst
 * @returns {Phase}
 */
function newPhase(learn, events) {
  const size = SUBSCRIBERS * BURSTS * events;
  return {
    learn,
    known: new Map(),
    recording: false,
    burst: -1,
    delivered: 0,
    expected: 0,
    lastAt: 0,
    done: undefined,
    latencies: new Float64Array(size),
    fromAppend: new Float64Array(size),
    n: 0,
    unknown: 0,
    outOfOrder: 0,
  };
}

/**
 * Opens the subscribers in waves; each resolves once its snapshot ended (operator) or at once
 * (baseline, which sends no snapshot).
 * @param {number} port
 * @param {{ phase: Phase | undefined }} current
 * @param {boolean} snapshot
 * @returns {Promise<WebSocket[]>}
 */
async function openSubscribers(port, current, snapshot) {
  /** @type {WebSocket[]} */
  const sockets = [];
  for (let from = 0; from < SUBSCRIBERS; from += CONNECT_WAVE) {
    const wave = [];
    for (let i = from; i < Math.min(SUBSCRIBERS, from + CONNECT_WAVE); i++) {
      wave.push(openOne(port, i, current, snapshot));
    }
    sockets.push(...(await Promise.all(wave)));
  }
  return sockets;
}

/**
 * @param {number} port
 * @param {number} i
 * @param {{ phase: Phase | undefined }} current
 * @param {boolean} snapshot
 * @returns {Promise<WebSocket>}
 */
function openOne(port, i, current, snapshot) {
  // A sidecar's filter: the services its pod depends on (one of them the churned one), itself
  // as the caller of intentions, a snapshot first (sidecar/mirror.ts).
  const deps = [
    `${NAMESPACE}/${SERVICE}`,
    ...[i % 40, (i + 7) % 40, (i + 13) % 40].map((d) => `${NAMESPACE}/dep-${d}`),
  ];
  const query = new URLSearchParams({
    services: deps.join(','),
    caller: `${NAMESPACE}/client-${i}`,
    ...(snapshot && { snapshot: 'true' }),
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/events?${query}`, {
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
  });
  let lastSeq = -1;
  let synced = !snapshot;
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`subscriber ${i} closed (${code}) while opening`)));
    ws.once('open', () => {
      if (synced) resolve(ws);
    });
    ws.on('message', (data) => {
      const at = performance.now();
      const buf = /** @type {Buffer} */ (data);
      if (!synced) {
        const message = /** @type {{ type: string }} */ (JSON.parse(buf.toString('utf8')));
        if (message.type === 'resync_end') {
          synced = true;
          ws.removeAllListeners('close');
          ws.removeAllListeners('error');
          ws.on('error', () => {});
          resolve(ws);
        }
        return;
      }
      const phase = current.phase;
      if (phase === undefined) return;
      const seq = seqOf(buf);
      let known = phase.known.get(seq);
      if (known === undefined && !phase.known.has(seq)) {
        known = phase.learn(seq, buf);
        phase.known.set(seq, known);
      }
      if (known === undefined || known.burst !== phase.burst) {
        phase.unknown += 1;
        return;
      }
      if (seq <= lastSeq && phase.learn === operatorLearn) phase.outOfOrder += 1;
      lastSeq = seq;
      if (phase.recording) {
        phase.latencies[phase.n] = at - known.sentAt;
        phase.fromAppend[phase.n] = performance.timeOrigin + at - known.appendedAt;
        phase.n += 1;
      }
      phase.delivered += 1;
      phase.lastAt = at;
      if (phase.delivered === phase.expected) phase.done?.();
    });
  });
}

/** REST requests of the operator phase by what their event names: `type|host:port` → send time. */
const sentByKey = new Map();
/** The bytes of every event of the operator phase, by burst, in seq order (the baseline replays them). */
/** @type {Buffer[][]} */
const captured = [];
let capturingBurst = -1;

/** @type {(seq: number, buf: Buffer) => Known | undefined} */
function operatorLearn(seq, buf) {
  const event =
    /** @type {{ type: string, time: string, instance?: { host: string, port: number } }} */ (
      JSON.parse(buf.toString('utf8'))
    );
  const key = `${event.type}|${event.instance?.host}:${event.instance?.port}`;
  const sentAt = sentByKey.get(key);
  if (sentAt === undefined || seq < 0) return undefined;
  sentByKey.delete(key);
  (captured[capturingBurst] ??= []).push(Buffer.from(buf));
  return { sentAt, appendedAt: Date.parse(event.time), burst: capturingBurst };
}

/** Baseline sends by seq (the replayed bytes keep their seq). */
/** @type {Map<number, { sentAt: number, burst: number }>} */
const baselineSent = new Map();
/** @type {(seq: number) => Known | undefined} */
function baselineLearn(seq) {
  const sent = baselineSent.get(seq);
  return sent === undefined ? undefined : { ...sent, appendedAt: Number.NaN };
}

/**
 * @typedef {{ id: string, host: string, port: number, status: 'passing' | 'critical' }} Live
 */

/**
 * One burst against the operator: `size` REST calls at once, a third each registrations
 * of new instances, heartbeats that flip a live instance's health, and deregistrations of the
 * oldest live instances; every one makes one event about bench/api.
 * @param {{ port: number, agent: Agent, live: Live[], hosts: { next: number } }} target
 * @param {number} size
 * @returns {Promise<void>[]}
 */
function operatorBurst({ port, agent, live, hosts }, size) {
  const calls = [];
  const flipping = live.slice(-size); // the newest: never among the deregistered
  const leaving = live.splice(0, Math.floor(size / 3));
  for (let j = 0; j < size; j++) {
    const kind = j % 3;
    if (kind === 0) {
      const n = (hosts.next += 1);
      const host = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
      sentByKey.set(`service_registered|${host}:8080`, performance.now());
      calls.push(
        httpRequest({
          port,
          agent,
          method: 'POST',
          path: '/api/v1/instances',
          body: JSON.stringify({ namespace: NAMESPACE, service: SERVICE, host, port: 8080 }),
        }).then((res) => {
          if (res.status !== 201) throw new Error(`register: ${res.status} ${res.body}`);
          const id = /** @type {{ instance: { id: string } }} */ (JSON.parse(res.body)).instance.id;
          live.push({ id, host, port: 8080, status: 'passing' });
        }),
      );
    } else if (kind === 1) {
      const target = flipping.shift();
      if (target === undefined) throw new Error('not enough live instances to flip');
      const status = target.status === 'passing' ? 'critical' : 'passing';
      target.status = status;
      const type = status === 'passing' ? 'service_healthy' : 'service_unhealthy';
      sentByKey.set(`${type}|${target.host}:${target.port}`, performance.now());
      calls.push(
        httpRequest({
          port,
          agent,
          method: 'PUT',
          path: `/api/v1/instances/${encodeURIComponent(target.id)}/heartbeat`,
          body: JSON.stringify({ status }),
        }).then((res) => {
          if (res.status !== 200) throw new Error(`heartbeat: ${res.status} ${res.body}`);
        }),
      );
    } else {
      const target = leaving.shift();
      if (target === undefined) throw new Error('not enough live instances to deregister');
      sentByKey.set(`service_deregistered|${target.host}:${target.port}`, performance.now());
      calls.push(
        httpRequest({
          port,
          agent,
          method: 'DELETE',
          path: `/api/v1/instances/${encodeURIComponent(target.id)}`,
        }).then((res) => {
          if (res.status !== 200 && res.status !== 204)
            throw new Error(`deregister: ${res.status} ${res.body}`);
        }),
      );
    }
  }
  return calls;
}

/** Bursts made so far in the phase (operator, then baseline): the index of `captured`. */
let burstNo = 0;

/**
 * Runs WARMUP + BURSTS bursts of `size` events made by `fire` in `phase`; the warm-up ones are
 * not recorded. The server's CPU (`pid`) is read over the recorded ones.
 * @param {Phase} phase
 * @param {number} size
 * @param {number} pid
 * @param {(burst: number) => Promise<void>[]} fire
 */
async function runBursts(phase, size, pid, fire) {
  /** @type {{ startedAt: number, endedAt: number, missing: number }[]} */
  const bursts = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let cpuStart = process.cpuUsage();
  let measuredStart = 0;
  let serverCpuStart = 0;
  for (let b = 0; b < WARMUP + BURSTS; b++) {
    const recording = b >= WARMUP;
    if (b === WARMUP) {
      loop.enable();
      cpuStart = process.cpuUsage();
      serverCpuStart = cpuSecondsOf(pid);
      measuredStart = performance.now();
    }
    const g = burstNo;
    burstNo += 1;
    phase.recording = recording;
    phase.burst = g;
    capturingBurst = g;
    phase.delivered = 0;
    phase.expected = SUBSCRIBERS * size;
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const all = new Promise((resolve) => {
      phase.done = () => resolve(undefined);
      timer = setTimeout(() => resolve(undefined), BURST_TIMEOUT_MS);
    });
    const startedAt = performance.now();
    const answers = Promise.all(fire(g));
    await all;
    clearTimeout(timer);
    await answers;
    if (recording) {
      bursts.push({
        startedAt,
        endedAt: phase.lastAt,
        missing: phase.expected - phase.delivered,
      });
    }
    await sleep(PAUSE_MS);
  }
  loop.disable();
  const cpu = process.cpuUsage(cpuStart);
  return {
    serverCpuSeconds: cpuSecondsOf(pid) - serverCpuStart,
    bursts,
    clientLoopP99Ms: loop.percentile(99) / 1e6,
    clientLoopMaxMs: loop.max / 1e6,
    clientCpuShare: (cpu.user + cpu.system) / 1000 / (performance.now() - measuredStart),
  };
}

/**
 * @param {Phase} phase
 * @param {Awaited<ReturnType<typeof runBursts>>} run
 */
function summarise(phase, run) {
  const cpuSeconds = run.serverCpuSeconds;
  const lat = phase.latencies.slice(0, phase.n).sort();
  const app = phase.fromAppend.slice(0, phase.n).sort();
  const busyMs = run.bursts.reduce((sum, b) => sum + (b.endedAt - b.startedAt), 0);
  const delivered = phase.n;
  return {
    delivered,
    missing: run.bursts.reduce((sum, b) => sum + b.missing, 0),
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
    p999: quantile(lat, 0.999),
    max: lat[lat.length - 1] ?? Number.NaN,
    appendP50: quantile(app, 0.5),
    appendP99: quantile(app, 0.99),
    burstMsMedian: quantile(
      Float64Array.from(run.bursts.map((b) => b.endedAt - b.startedAt)).sort(),
      0.5,
    ),
    deliveriesPerSecond: delivered / (busyMs / 1000),
    eventsPerSecond: delivered / SUBSCRIBERS / (busyMs / 1000),
    cpuUsPerDelivery: (cpuSeconds * 1e6) / delivered,
    unknown: phase.unknown,
    outOfOrder: phase.outOfOrder,
    ...run,
  };
}

/** @param {WebSocket[]} sockets */
async function closeAll(sockets) {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise((resolve) => {
          if (ws.readyState === ws.CLOSED) resolve(undefined);
          ws.once('close', () => resolve(undefined));
          ws.terminate();
        }),
    ),
  );
}

async function measureOperator() {
  const resources = mkdtempSync(join(tmpdir(), 'maxine-bench-fanout-'));
  const operator = await startOperator(
    resources,
    'operator',
    ['--expose-gc', '--import', join(import.meta.dirname, 'gc-hook.js')],
    [
      ...['--address-rate-limit', '0'],
      ...['--event-stream-max-per-principal', String(SUBSCRIBERS + 10)],
      ...['--event-stream-max-connections', String(SUBSCRIBERS + 10)],
    ],
  );
  const agent = new Agent({ keepAlive: true, maxSockets: LARGEST });
  /** @type {WebSocket[]} */
  let sockets = [];
  try {
    // A pool of live instances of bench/api, in every subscriber's snapshot.
    /** @type {Live[]} */
    const live = [];
    const hosts = { next: 0 };
    const pool = LARGEST * 3;
    for (let i = 0; i < pool; i++) {
      const n = (hosts.next += 1);
      const host = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
      const res = await httpRequest({
        port: operator.port,
        agent,
        method: 'POST',
        path: '/api/v1/instances',
        body: JSON.stringify({ namespace: NAMESPACE, service: SERVICE, host, port: 8080 }),
      });
      if (res.status !== 201) throw new Error(`register: ${res.status} ${res.body}`);
      const id = /** @type {{ instance: { id: string } }} */ (JSON.parse(res.body)).instance.id;
      live.push({ id, host, port: 8080, status: 'passing' });
    }
    await sleep(500);
    const rssBefore = rssOf(operator.pid);
    /** @type {{ phase: Phase | undefined }} */
    const current = { phase: undefined };
    const connectStart = performance.now();
    sockets = await openSubscribers(operator.port, current, true);
    const connectMs = performance.now() - connectStart;
    await sleep(1000);
    const rssConnected = rssOf(operator.pid);
    burstNo = 0;
    const summaries = [];
    for (const size of SIZES) {
      const phase = newPhase(operatorLearn, size);
      current.phase = phase;
      const run = await runBursts(phase, size, operator.pid, () =>
        operatorBurst({ port: operator.port, agent, live, hosts }, size),
      );
      summaries.push(summarise(phase, run));
      process.stderr.write(
        `operator, bursts of ${size}: p99 ${ms(summaries.at(-1)?.p99 ?? NaN)} ms\n`,
      );
    }
    const rssAfter = rssOf(operator.pid);
    operator.proc.kill('SIGUSR2'); // bench/gc-hook.js: a full GC
    await sleep(1000);
    const rssAfterGc = rssOf(operator.pid);
    const metrics = await httpRequest({ port: operator.port, path: '/metrics' });
    const gauge = (/** @type {string} */ name) =>
      Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics.body)?.[1] ?? Number.NaN) / 2 ** 20;
    const open = /^maxine_event_stream_connections (\d+)/m.exec(metrics.body)?.[1];
    return {
      summaries,
      rssBefore,
      rssConnected,
      rssAfter,
      rssAfterGc,
      heapUsedMb: gauge('maxine_nodejs_heap_size_used_bytes'),
      heapTotalMb: gauge('maxine_nodejs_heap_size_total_bytes'),
      connectMs,
      openStreams: Number(open ?? Number.NaN),
    };
  } finally {
    agent.destroy();
    await closeAll(sockets);
    await stopChild(operator);
    rmSync(resources, { recursive: true, force: true });
  }
}

async function measureBaseline() {
  const port = await freePort();
  const server = await startChild({
    name: 'ws broadcast baseline',
    port,
    readyPath: '/readyz',
    args: [join(import.meta.dirname, 'fanout-baseline-server.js'), String(port)],
  });
  const agent = new Agent({ keepAlive: true, maxSockets: LARGEST });
  /** @type {WebSocket[]} */
  let sockets = [];
  try {
    /** @type {{ phase: Phase | undefined }} */
    const current = { phase: undefined };
    sockets = await openSubscribers(port, current, false);
    await sleep(1000);
    const rssConnected = rssOf(server.pid);
    burstNo = 0;
    const summaries = [];
    for (const size of SIZES) {
      const phase = newPhase(baselineLearn, size);
      current.phase = phase;
      const run = await runBursts(phase, size, server.pid, (b) => {
        const messages = captured[b] ?? [];
        if (messages.length !== size)
          throw new Error(`burst ${b}: ${messages.length} events captured, not ${size}`);
        return messages.map((body) => {
          baselineSent.set(seqOf(body), { sentAt: performance.now(), burst: b });
          return httpRequest({
            port,
            agent,
            method: 'POST',
            path: '/broadcast',
            body: body.toString('utf8'),
          }).then((res) => {
            if (res.status !== 204) throw new Error(`broadcast: ${res.status}`);
          });
        });
      });
      summaries.push(summarise(phase, run));
    }
    return { summaries, rssConnected, rssAfter: rssOf(server.pid) };
  } finally {
    agent.destroy();
    await closeAll(sockets);
    await stopChild(server);
  }
}

const ms = (/** @type {number} */ v) => (Number.isFinite(v) ? v.toFixed(2) : '—');
const int = (/** @type {number} */ v) => Math.round(v).toLocaleString('en-US');
const mb = (/** @type {number} */ v) => `${v.toFixed(1)} MB`;

async function main() {
  const host = machine();
  const loadStart = host.load;
  process.stderr.write(
    `operator: ${SUBSCRIBERS} subscribers, ${WARMUP}+${BURSTS} bursts of ${SIZES.join(', ')} events\n`,
  );
  const op = await measureOperator();
  process.stderr.write('baseline next\n');
  const base = await measureBaseline();
  const pairs = SIZES.map((size, i) => {
    const o = op.summaries[i];
    const b = base.summaries[i];
    if (o === undefined || b === undefined) throw new Error(`no figures for bursts of ${size}`);
    return { size, o, b };
  });
  /** @param {string} name @param {number} size @param {(typeof pairs)[number]['o']} s */
  const row = (name, size, s) =>
    `| ${name} | ${size} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.p999)} | ${ms(s.max)} | ${ms(s.burstMsMedian)} | ${int(s.eventsPerSecond)} | ${int(s.deliveriesPerSecond)} | ${s.cpuUsPerDelivery.toFixed(2)} | ${ms((s.cpuUsPerDelivery * SUBSCRIBERS * size) / 1000)} | ${int(s.delivered)} | ${int(s.missing)} | ${ms(s.clientLoopP99Ms)} · ${ms(s.clientLoopMaxMs)} | ${Math.round(s.clientCpuShare * 100)}% |`;
  const command = commandLine({
    vars: (k) =>
      k.startsWith('BENCH_FANOUT_') || k === 'BENCH_NODE' || k === 'BENCH_OPERATOR_NODE_FLAGS',
    script: 'bench:events-fanout',
    file: 'bench/events-fanout.js',
  });
  const missing = pairs.reduce((n, p) => n + p.o.missing, 0);
  const outOfOrder = pairs.reduce((n, p) => n + p.o.outOfOrder, 0);
  const met = pairs.every((p) => p.o.p99 <= 100) && missing === 0 && outOfOrder === 0;
  const text = [
    '# Event fan-out to WebSocket subscribers',
    '',
    '_Generated by `bench/events-fanout.js`; rewritten on every run. One run on a shared machine: latencies are noisy; the ratios to the bare `ws` server measured in the same run, and the counts, are sturdier. The hot-path change and its before/after figures: bench/PROFILE-events-fanout.md._',
    '',
    `- date: ${new Date().toISOString()}; commit: ${host.commit}; node: ${process.version} (subscribers), servers: the same unless BENCH_NODE`,
    `- machine: ${host.cpus} CPUs (${host.model}), ${host.memGb} GB RAM; load average (1, 5, 15 min) at start: ${loadStart}; at end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    `- command: \`${command}\``,
    `- method: a standalone operator (\`dist/operator/main.js\`, its own process, \`--event-stream-max-per-principal ${SUBSCRIBERS + 10}\`) with ${LARGEST * 3} instances of \`${NAMESPACE}/${SERVICE}\`; ${int(SUBSCRIBERS)} WebSocket subscribers (\`ws\`, no compression) in the bench process, each with a sidecar's filter (\`services=${NAMESPACE}/${SERVICE}\` and three other services, \`caller=\` its own service, \`snapshot=true\`), opened ${CONNECT_WAVE} at a time, each waiting for its snapshot. Then, per burst size (${SIZES.join(', ')} events), ${WARMUP} warm-up bursts (not recorded) and ${BURSTS} measured bursts, ${PAUSE_MS} ms apart, each that many REST calls sent at once over as many keep-alive connections: a third registrations of new instances, a third heartbeats that flip an instance's health (\`service_unhealthy\` / \`service_healthy\`), a third deregistrations; every event is wanted by every subscriber (size × ${int(SUBSCRIBERS)} deliveries per burst).`,
    `- latency: per delivery, from the moment the bench sent the REST call (performance.now() just before the request, in this process) to the message's \`message\` callback at that subscriber (the same clock): it includes the request's handling, the fan-out to the ${int(SUBSCRIBERS)} sockets before and after this one, the kernel, and this process's own event loop, which handles all ${int(SUBSCRIBERS)} subscribers (its delay and CPU are shown: a subscriber process near 100% CPU adds queueing of its own). The event's own \`time\` (operator clock at append, millisecond resolution, same host) gives the append → receive figure. Each event's JSON is parsed once (its first copy); a delivery costs a seq read.`,
    `- baseline: \`bench/fanout-baseline-server.js\` (its own process): a bare \`ws\` server whose \`POST /broadcast\` sends its body to every client (\`client.send(body)\` in a loop, a write per client per message). The bench replays the operator's exact event bytes, burst by burst, as many POSTs at once, to the same number of clients of the same process.`,
    `- server CPU: user + system time of the server's process (/proc/<pid>/stat) over the measured bursts (the pauses included), per delivery, and per burst (CPU per delivery × the burst's deliveries: the time one free core would need for the burst, the floor of its last delivery's latency on a machine with nothing else to run). Events/s: deliveries ÷ subscribers over the bursts' time (first send → last delivery of each burst, summed).`,
    '',
    '### Aims',
    '',
    '| aim | target | measured | met |',
    '|---|---|---|:---:|',
    ...pairs.map(
      ({ size, o, b }) =>
        `| delivery p99, ${int(SUBSCRIBERS)} subscribers, bursts of ${size} events | ≤ 100 ms | ${ms(o.p99)} ms (bare ws: ${ms(b.p99)} ms) | ${o.p99 <= 100 ? '✓' : '✗'} |`,
    ),
    `| every event at every subscriber, in order | 0 missing, 0 out of order | ${int(missing)} missing, ${int(outOfOrder)} out of order | ${missing === 0 && outOfOrder === 0 ? '✓' : '✗'} |`,
    ...pairs.map(
      ({ size, o, b }) =>
        `| operator CPU per delivery vs bare ws, bursts of ${size} | reported | ${(o.cpuUsPerDelivery / b.cpuUsPerDelivery).toFixed(2)}× (${o.cpuUsPerDelivery.toFixed(2)} vs ${b.cpuUsPerDelivery.toFixed(2)} µs) | ✓ |`,
    ),
    '',
    '### Delivery',
    '',
    '| server | events per burst | p50 ms | p99 ms | p99.9 ms | max ms | burst ms (median, first send → last delivery) | events/s | deliveries/s | server CPU µs/delivery | server CPU ms/burst | deliveries | missing | subscriber loop delay p99 · max ms | subscriber process CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...pairs.flatMap(({ size, o, b }) => [
      row('maxine operator', size, o),
      row('bare ws broadcast (same bytes)', size, b),
    ]),
    '',
    ...pairs.map(
      ({ size, o, b }) =>
        `- bursts of ${size}: operator from the event's append (its \`time\`, millisecond resolution) to receive p50 ${ms(o.appendP50)} ms, p99 ${ms(o.appendP99)} ms; operator ÷ bare ws: p50 ${(o.p50 / b.p50).toFixed(2)}×, p99 ${(o.p99 / b.p99).toFixed(2)}×, CPU per delivery ${(o.cpuUsPerDelivery / b.cpuUsPerDelivery).toFixed(2)}×; deliveries no request explains: ${int(o.unknown)} · ${int(b.unknown)}`,
    ),
    `- opening ${int(SUBSCRIBERS)} subscribers with their snapshots: ${(op.connectMs / 1000).toFixed(1)} s; open streams the operator reports at the end: ${int(op.openStreams)}`,
    '',
    '### Memory',
    '',
    '| figure | operator | bare ws |',
    '|---|---:|---:|',
    `| RSS before the subscribers (VmRSS) | ${mb(op.rssBefore.rssMb)} | — |`,
    `| RSS with ${int(SUBSCRIBERS)} subscribers connected | ${mb(op.rssConnected.rssMb)} | ${mb(base.rssConnected.rssMb)} |`,
    `| RSS after the bursts | ${mb(op.rssAfter.rssMb)} | ${mb(base.rssAfter.rssMb)} |`,
    `| peak RSS (VmHWM) | ${mb(op.rssAfter.hwmMb)} | ${mb(base.rssAfter.hwmMb)} |`,
    `| RSS after the bursts and a forced full GC (bench/gc-hook.js) | ${mb(op.rssAfterGc.rssMb)} | — |`,
    `| V8 heap after that GC: used · reserved | ${mb(op.heapUsedMb)} · ${mb(op.heapTotalMb)} | — |`,
    `| RSS per subscriber (connected − before) | ${(((op.rssConnected.rssMb - op.rssBefore.rssMb) * 1024) / SUBSCRIBERS).toFixed(1)} KB | — |`,
    '',
  ].join('\n');
  writeFileSync(RESULTS_FANOUT, text);
  updateResults();
  process.stdout.write(text);
  if (!met) process.stderr.write('aim not met (see the Aims table)\n');
}

/** Replaces (or appends) this run's section of RESULTS.md, as `npm run bench` carries it. */
function updateResults() {
  if (!existsSync(RESULTS)) return;
  const section = carriedSection(RESULTS_FANOUT, FANOUT_HEADING).join('\n').trimEnd();
  const current = readFileSync(RESULTS, 'utf8');
  const start = current.indexOf(FANOUT_HEADING);
  if (start === -1) {
    writeFileSync(RESULTS, `${current.trimEnd()}\n\n${section}\n`);
    return;
  }
  const next = current.indexOf('\n## ', start + FANOUT_HEADING.length);
  writeFileSync(
    RESULTS,
    current.slice(0, start) + section + (next === -1 ? '\n' : `\n${current.slice(next + 1)}`),
  );
}

runMain('bench:events-fanout', main);
