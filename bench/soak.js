// @ts-check
/**
 * Soak and abuse run: `npm run bench:soak` (builds, then runs this file).
 *
 * One operator (dist/operator/main.js) in a child process on 127.0.0.1, with a heap limit, a
 * static token file and anonymous access off, is put through, in turn, by an abuser that is
 * one authenticated tenant (user `soak-tenant`, its own random token per run):
 *   1. `register`: SOAK_INSTANCES (100,000) instances with SOAK_METADATA_BYTES (1 KB) of
 *      metadata each, over SOAK_SERVICES (100) services, keep-alive, SOAK_CONCURRENCY in flight;
 *   2. `renew`: SOAK_RENEWALS (10,000) renewals of one instance with SOAK_LARGE_METADATA_BYTES
 *      (16 KiB) of metadata — re-registrations of the same host:port, which restate every field
 *      (a heartbeat carries no metadata);
 *   3. `websocket`: SOAK_WS_CLIENTS (200) event-stream clients with the tenant's token, of which
 *      SOAK_WS_NONREADING (50) pause their socket once open and never read, and
 *      SOAK_WS_SNAPSHOT (20) ask `snapshot=true` (half of them among the non-readers); all stay
 *      connected to the end;
 *   4. `flood`: SOAK_FLOOD_RATE (2,000) unauthenticated requests per second for
 *      SOAK_FLOOD_SECONDS (30), from another loopback address (SOAK_FLOOD_ADDRESS, 127.0.0.2),
 *      so that a limit per client address does not also throttle the probe;
 *   then `after`: SOAK_AFTER_SECONDS (5) of quiet.
 * Beside every phase, a probe (bench/probe.js, a worker thread) asks for a discovery with
 * another principal's token (user `soak`, random per run) at SOAK_PROBE_RATE (200) per second and records its latency. Before the abuse the same
 * probe measures bench/baseline-server.js (the same answer bytes) and the idle operator. The
 * operator's VmRSS and VmHWM are read from /proc every 250 ms; its exit is a crash.
 *
 * SOAK_SCALE (1) scales every count and duration not given explicitly (0.05: under a minute).
 * SOAK_PHASES (all) runs only the named phases, e.g. `register,flood`. SOAK_NOTE is written
 * into the results as a note (which tree was measured, what else ran on the machine).
 * SOAK_HEAP_MB (768) is the operator's --max-old-space-size; SOAK_MEMORY_LIMIT_MB (the heap
 * limit) is the budget peak RSS is held to (+20%). Registry limit flags the operator lists in
 * `--help` are raised to fit the run; SOAK_OPERATOR_ARGS adds operator flags (space-separated).
 * SOAK_IDENTITY_RATE (1500; 0: off) and SOAK_IDENTITY_BURST (twice the rate) are passed as
 * --identity-rate-limit/--identity-rate-burst: the product's answer to one tenant flooding
 * with valid requests. The registrar and the renewer honour its 429 RATE_LIMITED (they resend
 * after Retry-After), so every instance is still registered; the refusals are counted apart.
 *
 * Results: stdout, bench/RESULTS-soak.md, and the soak section of bench/RESULTS.md (which
 * bench/run.js carries over from RESULTS-soak.md when it rewrites the file).
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import WebSocket from 'ws';
import {
  httpRequest,
  OPERATOR_MAIN,
  rssOf,
  runMain,
  SERVER_NODE,
  startBaseline,
  startOperator,
  startWatchdog,
  stopChild,
} from './processes.js';
import { hostOf, registerMany } from './registrations.js';
import {
  aimsTable,
  carriedSection,
  commandLine as runCommand,
  intEnv,
  machine,
  SOAK_HEADING,
  writeAtomically,
} from './report.js';

/** @typedef {import('./processes.js').Child} Child */
/** @typedef {import('./probe.js').PhaseFigures} PhaseFigures */

const PROBE = join(import.meta.dirname, 'probe.js');
const RESULTS = join(import.meta.dirname, 'RESULTS.md');
const RESULTS_SOAK = join(import.meta.dirname, 'RESULTS-soak.md');
const NAMESPACE = 'soak';
const SERVICE = 'api';
const DISCOVER_PATH = `/api/v1/discover/${NAMESPACE}/${SERVICE}`;
const DISCOVER_INSTANCES = 10;
const SAMPLE_MS = 250;
/** ws's default maxPayload, the sidecar's: a snapshot message above it is refused (1009). */
const WS_MAX_PAYLOAD = 100 * 1024 * 1024;
const AIMS = { rssOverLimit: 1.2, p99Ms: 50 };
/** The probe's principal and the abuser's: two static tokens, made for each run. */
const PROBE_USER = 'soak';
const TENANT_USER = 'soak-tenant';
/** How long the probe runs before the first phase when there is no idle phase. */
const WARMUP_MS = 2000;

const PHASES = ['idle', 'register', 'renew', 'websocket', 'flood', 'after'];

/** @param {string | undefined} raw SOAK_PHASES: a comma-separated subset of PHASES @returns {string[]} */
function phasesOf(raw) {
  if (raw === undefined || raw.trim() === '') return PHASES;
  const names = raw.split(',').map((p) => p.trim());
  const unknown = names.filter((p) => !PHASES.includes(p));
  if (unknown.length > 0) {
    throw new Error(
      `SOAK_PHASES: unknown phase(s) ${unknown.join(', ')}; known: ${PHASES.join(', ')}`,
    );
  }
  return names;
}

function loadConfig() {
  const raw = process.env.SOAK_SCALE ?? '';
  const scale = raw === '' ? 1 : Number(raw);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 10) {
    throw new Error(`SOAK_SCALE must be a number above 0 and at most 10, not "${raw}"`);
  }
  /** An integer setting: the variable when set, else the default scaled (at least `min`). */
  const sized = (
    /** @type {string} */ name,
    /** @type {number} */ full,
    min = 1,
    max = 10_000_000,
  ) => intEnv(name, Math.max(min, Math.round(full * scale)), min, max);
  const heapMb = intEnv('SOAK_HEAP_MB', 768, 64, 65_536);
  const wsClients = sized('SOAK_WS_CLIENTS', 200, 0, 10_000);
  return {
    scale,
    instances: sized('SOAK_INSTANCES', 100_000, 0),
    services: intEnv('SOAK_SERVICES', 100, 1, 100_000),
    metadataBytes: intEnv('SOAK_METADATA_BYTES', 1024, 0, 65_536),
    concurrency: intEnv('SOAK_CONCURRENCY', 64, 1, 1024),
    registerAddresses: intEnv('SOAK_REGISTER_ADDRESSES', 16, 1, 1000),
    renewals: sized('SOAK_RENEWALS', 10_000, 0),
    largeMetadataBytes: intEnv('SOAK_LARGE_METADATA_BYTES', 16_384, 0, 65_536),
    renewConcurrency: intEnv('SOAK_RENEW_CONCURRENCY', 16, 1, 1024),
    wsClients,
    wsNonReading: Math.min(wsClients, sized('SOAK_WS_NONREADING', 50, 0, 10_000)),
    wsSnapshot: Math.min(wsClients, sized('SOAK_WS_SNAPSHOT', 20, 0, 10_000)),
    wsHoldSeconds: sized('SOAK_WS_HOLD_SECONDS', 10, 1, 3600),
    floodRate: intEnv('SOAK_FLOOD_RATE', 2000, 0, 100_000),
    floodSeconds: sized('SOAK_FLOOD_SECONDS', 30, 1, 3600),
    floodConnections: intEnv('SOAK_FLOOD_CONNECTIONS', 16, 1, 1024),
    floodAddress: process.env.SOAK_FLOOD_ADDRESS ?? '127.0.0.2',
    probeRate: intEnv('SOAK_PROBE_RATE', 200, 1, 10_000),
    probeConnections: intEnv('SOAK_PROBE_CONNECTIONS', 32, 1, 256),
    phases: phasesOf(process.env.SOAK_PHASES),
    idleSeconds: sized('SOAK_IDLE_SECONDS', 5, 1, 600),
    afterSeconds: sized('SOAK_AFTER_SECONDS', 5, 1, 600),
    heapMb,
    memoryLimitMb: intEnv('SOAK_MEMORY_LIMIT_MB', heapMb, 64, 65_536),
    operatorArgs: (process.env.SOAK_OPERATOR_ARGS ?? '').split(/\s+/).filter(Boolean),
    budgetSec: intEnv('SOAK_BUDGET_SECONDS', 1800, 60, 86_400),
    identityRate: intEnv('SOAK_IDENTITY_RATE', 1500, 0, 1_000_000),
    identityBurst: intEnv(
      'SOAK_IDENTITY_BURST',
      2 * intEnv('SOAK_IDENTITY_RATE', 1500, 0, 1_000_000),
      0,
      10_000_000,
    ),
  };
}
/** @typedef {ReturnType<typeof loadConfig>} Config */

/** The command that reproduces this run: the SOAK_* and BENCH_* variables set, then the script. */
const commandLine = () =>
  runCommand({
    vars: (k) => (k.startsWith('SOAK_') && k !== 'SOAK_NOTE') || k.startsWith('BENCH_'),
    script: 'bench:soak',
    file: 'bench/soak.js',
  });

/**
 * Registry limits the operator may have (flag → value that fits this run). Only those its
 * `--help` lists are passed, so the script runs against operators with and without them.
 * @param {Config} config
 * @returns {[string, string][]}
 */
function limitCandidates(config) {
  // Every instance of the run (the bulk, the probe's, the renewed one) fits in total and for
  // one principal, with room to spare, whatever the scale.
  const total = String(config.instances + DISCOVER_INSTANCES + 1 + 1000);
  const perService = String(Math.ceil(config.instances / config.services) + 1000);
  const metadata = String(Math.max(config.metadataBytes, config.largeMetadataBytes) + 1024);
  const services = String(config.services + 100);
  return [
    ['max-instances', total],
    ['max-instances-per-service', perService],
    ['max-instances-per-principal', total],
    ['max-metadata-bytes', metadata],
    // The configured per-identity rate limit (SOAK_IDENTITY_RATE; 0: off, the default).
    ...(config.identityRate > 0
      ? /** @type {[string, string][]} */ ([
          ['identity-rate-limit', String(config.identityRate)],
          ['identity-rate-burst', String(Math.max(1, config.identityBurst))],
        ])
      : []),
    // Raised only for runs with more services than the operator's defaults (1,000) allow.
    ...(config.services > 900
      ? /** @type {[string, string][]} */ ([
          ['max-undeclared-services', services],
          ['max-undeclared-services-per-principal', services],
        ])
      : []),
  ];
}

/**
 * @param {Config} config
 * @returns {string[]} `--flag value` pairs for the limit flags this operator knows
 */
function limitArgs(config) {
  const help = execFileSync(SERVER_NODE, [OPERATOR_MAIN, '--help'], { encoding: 'utf8' });
  const known = new Set([...help.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]));
  return limitCandidates(config)
    .filter(([flag]) => known.has(flag))
    .flatMap(([flag, value]) => [`--${flag}`, value]);
}

/**
 * Metadata of about `bytes` bytes (keys plus values), in values of at most 1,000 characters.
 * @param {number} bytes
 * @param {number} seed makes the values of each instance distinct
 * @returns {Record<string, string>}
 */
function metadataOf(bytes, seed) {
  /** @type {Record<string, string>} */
  const metadata = {};
  let left = bytes;
  for (let k = 0; left > 0 && k < 64; k += 1) {
    const key = `soak-${k}`;
    const length = Math.max(1, Math.min(1000, left - key.length));
    metadata[key] = `${seed}-${'x'.repeat(length)}`.slice(0, length);
    left -= key.length + length;
  }
  return metadata;
}

/**
 * Reads the operator's VmRSS every SAMPLE_MS; keeps the peak per phase.
 * @param {number} pid
 */
function startSampler(pid) {
  /** @type {Map<string, { peakMb: number, lastMb: number }>} */
  const phases = new Map();
  let phase = 'start';
  let lastHwmMb = 0;
  const sample = () => {
    try {
      const { rssMb, hwmMb } = rssOf(pid);
      lastHwmMb = hwmMb;
      const entry = phases.get(phase) ?? { peakMb: 0, lastMb: 0 };
      entry.peakMb = Math.max(entry.peakMb, rssMb);
      entry.lastMb = rssMb;
      phases.set(phase, entry);
    } catch {
      // the process is gone; its exit is recorded elsewhere
    }
  };
  const timer = setInterval(sample, SAMPLE_MS);
  sample();
  return {
    /** @param {string} name */
    setPhase(name) {
      sample();
      phase = name;
      sample();
    },
    stop() {
      sample();
      clearInterval(timer);
      return { phases, hwmMb: lastHwmMb };
    },
  };
}

/**
 * The probe worker (bench/probe.js) against one server.
 * @param {number} port
 * @param {Config} config
 * @param {Record<string, string>} headers
 */
function startProbe(port, config, headers) {
  const worker = new Worker(PROBE, {
    workerData: {
      port,
      path: DISCOVER_PATH,
      headers,
      rate: config.probeRate,
      connections: config.probeConnections,
      timeoutMs: 10_000,
    },
  });
  /** @type {Promise<PhaseFigures[]>} */
  const result = new Promise((resolve, reject) => {
    worker.once('message', (/** @type {{ phases: PhaseFigures[] }} */ msg) => resolve(msg.phases));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`probe exited (${code}) without figures`)));
  });
  return {
    /** @param {string} name */
    phase: (name) => worker.postMessage({ phase: name }),
    /** @returns {Promise<PhaseFigures[]>} */
    stop: async () => {
      worker.postMessage({ stop: true });
      const phases = await result;
      await worker.terminate();
      return phases;
    },
  };
}

/** @param {Map<number, number>} statuses @param {(s: number) => boolean} which */
function countOf(statuses, which) {
  let n = 0;
  for (const [status, count] of statuses) if (which(status)) n += count;
  return n;
}

/** @param {Map<number, number> | Record<string, number>} statuses @returns {string} `201: 5, 429: 2` */
function statusList(statuses) {
  const entries = statuses instanceof Map ? [...statuses] : Object.entries(statuses);
  if (entries.length === 0) return 'none';
  return entries
    .map(([s, n]) => [Number(s), n])
    .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0))
    .map(([s, n]) => `${s}: ${int(n ?? 0)}`)
    .join(', ');
}

/**
 * Phase 1 or 2: registrations through bench/registrations.js, tallied by status, sent from
 * `addresses` loopback addresses in parallel (request i from address i mod addresses), as
 * many hosts would, so that a limit per client address does not refuse them.
 * @param {Child} operator
 * @param {Record<string, string>} headers
 * @param {{ count: number, concurrency: number, addresses: number, bodyOf: (i: number) => object }} spec
 */
async function registrations(operator, headers, spec) {
  /** @type {Map<number, number>} */
  const statuses = new Map();
  /** @type {Map<string, number>} */
  const throttled = new Map();
  const started = Date.now();
  /** @type {string[]} */
  const errors = [];
  const slices = Math.max(1, Math.min(spec.addresses, spec.count));
  const sliceOf = async (/** @type {number} */ k) => {
    try {
      await registerMany({
        port: operator.port,
        count: Math.ceil((spec.count - k) / slices),
        concurrency: Math.max(1, Math.ceil(spec.concurrency / slices)),
        bodyOf: (j) => spec.bodyOf(j * slices + k),
        deadlineMs: 900_000,
        headers,
        statuses,
        throttled,
        localAddress: registrationAddress(k),
      });
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  };
  if (spec.count > 0) await Promise.all(Array.from({ length: slices }, (_, k) => sliceOf(k)));
  const ok = countOf(statuses, (s) => s >= 200 && s < 300);
  const seconds = (Date.now() - started) / 1000;
  const error =
    errors.length === 0
      ? undefined
      : `${errors.length} of ${slices} senders gave up; first: ${errors[0]}`;
  return {
    statuses,
    throttled,
    fiveXx: countOf(statuses, (s) => s >= 500),
    ok,
    seconds,
    error,
  };
}

/**
 * @param {Map<string, number>} throttled 429 RATE_LIMITED answers by scope
 * @returns {string} `3 times (429 RATE_LIMITED, scope identity 3; each resent after Retry-After)`
 */
function throttledText(throttled) {
  const total = [...throttled.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return '0 times (429 RATE_LIMITED)';
  const scopes = [...throttled].map(([scope, n]) => `scope ${scope} ${int(n)}`).join(', ');
  return `${int(total)} times (429 RATE_LIMITED, ${scopes}; each resent after Retry-After)`;
}

/** @param {number} k @returns {string} the k-th registering client's address, 127.0.1.1 on */
function registrationAddress(k) {
  return `127.0.${1 + Math.floor(k / 250)}.${1 + (k % 250)}`;
}

/**
 * @typedef {object} ClientRecord
 * @property {boolean} reads
 * @property {boolean} snapshot
 * @property {boolean} opened
 * @property {number | undefined} refusedStatus the handshake's HTTP status when refused
 * @property {string | undefined} error
 * @property {number | undefined} closeCode set when the stream closed before the end
 * @property {string} closeReason
 * @property {number} messages
 * @property {number} bytes
 * @property {number | undefined} firstMessageMs after the handshake
 * @property {number | undefined} snapshotDoneMs after the handshake, when the snapshot's last
 *   message came (`resync` whole, or `resync_end` of a snapshot sent in chunks)
 */

/**
 * Phase 3: opens the event-stream clients; resolves once every handshake is settled.
 * @param {Child} operator
 * @param {Config} config
 * @param {Record<string, string>} headers
 */
async function openClients(operator, config, headers) {
  // Half of the snapshot clients are among the non-readers (the expensive case: a snapshot
  // queued to a socket nobody drains), half among the readers (they time the snapshot).
  const snapshotNonReading = Math.min(config.wsNonReading, Math.ceil(config.wsSnapshot / 2));
  const firstSnapshot = config.wsNonReading - snapshotNonReading;
  /** @type {{ ws: WebSocket, record: ClientRecord }[]} */
  const clients = [];
  /** @type {Promise<void>[]} */
  const handshakes = [];
  for (let i = 0; i < config.wsClients; i += 1) {
    const reads = i >= config.wsNonReading;
    const snapshot = i >= firstSnapshot && i < firstSnapshot + config.wsSnapshot;
    const url = `ws://127.0.0.1:${operator.port}/api/v1/events${snapshot ? '?snapshot=true' : ''}`;
    const ws = new WebSocket(url, {
      headers,
      perMessageDeflate: false,
      handshakeTimeout: 60_000,
      maxPayload: WS_MAX_PAYLOAD,
    });
    /** @type {ClientRecord} */
    const record = {
      reads,
      snapshot,
      opened: false,
      refusedStatus: undefined,
      error: undefined,
      closeCode: undefined,
      closeReason: '',
      messages: 0,
      bytes: 0,
      firstMessageMs: undefined,
      snapshotDoneMs: undefined,
    };
    clients.push({ ws, record });
    let openedAt = 0;
    handshakes.push(
      new Promise((resolve) => {
        ws.on('open', () => {
          record.opened = true;
          openedAt = performance.now();
          if (!reads) ws.pause();
          resolve();
        });
        ws.on('message', (data) => {
          record.firstMessageMs ??= performance.now() - openedAt;
          if (snapshot && record.snapshotDoneMs === undefined && endsSnapshot(data)) {
            record.snapshotDoneMs = performance.now() - openedAt;
          }
          record.messages += 1;
          record.bytes += Array.isArray(data)
            ? data.reduce((n, b) => n + b.length, 0)
            : data instanceof ArrayBuffer
              ? data.byteLength
              : data.length;
        });
        ws.on('error', (err) => {
          const status = /Unexpected server response: (\d+)/.exec(err.message)?.[1];
          if (status !== undefined) record.refusedStatus = Number(status);
          else record.error ??= err.message;
          resolve();
        });
        ws.on('close', (code, reason) => {
          record.closeCode = code;
          record.closeReason = reason.toString('utf8').slice(0, 120);
          resolve();
        });
      }),
    );
  }
  await Promise.all(handshakes);
  return clients;
}

/** The envelope's `type` comes first after `seq`: the head of a message says what it is. */
const SNAPSHOT_END = /"type":"resync(?:_end)?"/;

/** @param {import('ws').RawData} data @returns {boolean} whether it is a snapshot's last message */
function endsSnapshot(data) {
  const head = Buffer.isBuffer(data) ? data.subarray(0, 256).toString('utf8') : '';
  return SNAPSHOT_END.test(head);
}

/** @param {number[]} values @returns {string} `min–max ms`, or `—` */
function spread(values) {
  if (values.length === 0) return '—';
  return `${ms(Math.min(...values))}–${ms(Math.max(...values))} ms`;
}

/** @param {{ ws: WebSocket, record: ClientRecord }[]} clients */
function clientSummary(clients) {
  const records = clients.map((c) => c.record);
  /** @type {Map<number, number>} */
  const refused = new Map();
  /** @type {Map<string, number>} */
  const closed = new Map();
  for (const r of records) {
    if (r.refusedStatus !== undefined) {
      refused.set(r.refusedStatus, (refused.get(r.refusedStatus) ?? 0) + 1);
    }
    if (r.opened && r.closeCode !== undefined) {
      const key = `${r.closeCode}${r.closeReason === '' ? '' : ` (${r.closeReason})`}`;
      closed.set(key, (closed.get(key) ?? 0) + 1);
    }
  }
  const snapshotReaders = records.filter((r) => r.snapshot && r.reads && r.opened);
  const firsts = snapshotReaders.flatMap((r) => r.firstMessageMs ?? []);
  const dones = snapshotReaders.flatMap((r) => r.snapshotDoneMs ?? []);
  return {
    total: records.length,
    opened: records.filter((r) => r.opened).length,
    refused,
    errors: records.filter((r) => r.error !== undefined).map((r) => r.error ?? ''),
    closed,
    readers: records.filter((r) => r.reads && r.opened).length,
    nonReaders: records.filter((r) => !r.reads && r.opened).length,
    messages: records.reduce((n, r) => n + r.messages, 0),
    bytes: records.reduce((n, r) => n + r.bytes, 0),
    snapshotReaders: snapshotReaders.length,
    snapshotsStarted: firsts.length,
    firstMessages: spread(firsts),
    snapshotsDone: dones.length,
    snapshotTimes: spread(dones),
    snapshotBytes: snapshotReaders.reduce((n, r) => n + r.bytes, 0),
  };
}

/**
 * Phase 4: unauthenticated requests at a fixed rate from another loopback address, in turn a
 * discovery without a token, one with a wrong token and a registration without a token.
 * @param {Child} operator
 * @param {Config} config
 * @param {AbortSignal} signal
 */
async function flood(operator, config, signal) {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: config.floodConnections,
    localAddress: config.floodAddress,
  });
  const wrong = { authorization: `Bearer soak-wrong-${randomBytes(16).toString('hex')}` };
  const register = JSON.stringify({
    service: 'flood',
    namespace: NAMESPACE,
    host: '10.9.9.9',
    port: 1,
  });
  /** @type {{ method: string, path: string, body?: string, headers?: Record<string, string> }[]} */
  const kinds = [
    { method: 'GET', path: DISCOVER_PATH },
    { method: 'GET', path: DISCOVER_PATH, headers: wrong },
    { method: 'POST', path: '/api/v1/instances', body: register },
  ];
  /** @type {Map<number, number>} */
  const statuses = new Map();
  const maxInFlight = config.floodConnections * 64;
  const total = config.floodRate * config.floodSeconds;
  let scheduled = 0;
  let inFlight = 0;
  let errors = 0;
  let skipped = 0;
  /** @type {string | undefined} */
  let firstError;
  const started = performance.now();
  const fire = (/** @type {(typeof kinds)[number]} */ kind) => {
    inFlight += 1;
    httpRequest({ port: operator.port, agent, timeoutMs: 10_000, ...kind }).then(
      (res) => {
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        inFlight -= 1;
      },
      (/** @type {unknown} */ err) => {
        errors += 1;
        firstError ??= err instanceof Error ? err.message : String(err);
        inFlight -= 1;
      },
    );
  };
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(
        total,
        Math.floor(((performance.now() - started) * config.floodRate) / 1000),
      );
      for (; scheduled < due; scheduled += 1) {
        if (inFlight >= maxInFlight) skipped += 1;
        else fire(/** @type {(typeof kinds)[number]} */ (kinds[scheduled % kinds.length]));
      }
      if (scheduled >= total || signal.aborted) {
        clearInterval(timer);
        resolve(undefined);
      }
    }, 5);
  });
  const sendSeconds = (performance.now() - started) / 1000;
  for (let i = 0; i < 1200 && inFlight > 0; i += 1) await sleep(10);
  agent.destroy();
  return {
    sent: scheduled - skipped,
    skipped,
    sendSeconds,
    statuses,
    errors,
    firstError,
    fiveXx: countOf(statuses, (s) => s >= 500),
  };
}

/** @param {string} dir @returns {number} bytes of the files in dir (not recursive) */
function bytesIn(dir) {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

const int = (/** @type {number} */ n) =>
  Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
const ms = (/** @type {number | undefined} */ n) =>
  n !== undefined && Number.isFinite(n) ? n.toFixed(2) : '—';
const mb = (/** @type {number | undefined} */ n) =>
  n !== undefined && Number.isFinite(n) ? `${n.toFixed(1)} MB` : '—';

/**
 * @param {Config} config
 * @param {string} tmp
 */
async function soak(config, tmp) {
  // Two principals, each with a random token made for this run: the probe's (user `soak`)
  // and the abuser's (user `soak-tenant`), which registers, renews and holds the event
  // streams. The per-identity rate limit and the per-principal caps apply to each apart.
  const token = `soak-${randomBytes(24).toString('hex')}`;
  const tenantToken = `soak-tenant-${randomBytes(24).toString('hex')}`;
  const auth = { authorization: `Bearer ${token}` };
  const tenant = { authorization: `Bearer ${tenantToken}` };
  const resources = join(tmp, 'resources');
  mkdirSync(resources);
  const tokens = join(tmp, 'tokens.yaml');
  writeFileSync(
    tokens,
    `tokens:\n  - { token: ${token}, user: ${PROBE_USER} }\n  - { token: ${tenantToken}, user: ${TENANT_USER} }\n`,
    { mode: 0o600 },
  );
  const auditDir = join(tmp, 'audit');
  const limits = limitArgs(config);
  const operatorArgs = [
    ...['--anonymous', 'false', '--static-tokens-file', tokens, '--audit-dir', auditDir],
    ...limits,
    ...config.operatorArgs,
  ];
  const operator = await startOperator(
    resources,
    'operator (soak)',
    [`--max-old-space-size=${config.heapMb}`],
    operatorArgs,
  );
  const abort = new globalThis.AbortController();
  /** @type {{ phase: string, code: number | null, signal: string | null, output: string } | undefined} */
  let exit;
  let phase = 'setup';
  operator.proc.once('exit', (code, signal) => {
    exit = { phase, code, signal, output: operator.output() };
    abort.abort();
  });
  const sampler = startSampler(operator.pid);
  /** @type {{ ws: WebSocket, record: ClientRecord }[]} */
  let clients = [];
  try {
    await registerMany({
      port: operator.port,
      count: DISCOVER_INSTANCES,
      concurrency: 1,
      deadlineMs: 30_000,
      headers: auth,
      bodyOf: (i) => ({ service: SERVICE, namespace: NAMESPACE, host: hostOf(i + 1), port: 8080 }),
    });
    const answer = await httpRequest({ port: operator.port, path: DISCOVER_PATH, headers: auth });
    if (answer.status !== 200) throw new Error(`discovery: ${answer.status} ${answer.body}`);
    const baseline = await measureBaseline(answer.body, config);

    const probe = startProbe(operator.port, config, auth);
    if (!config.phases.includes('idle')) {
      // The probe's first requests open its connections (and warm the operator's discovery
      // path): without an idle phase that cold start would be charged to the first phase.
      // The probe keeps it in its `start` figures, which the aims leave out.
      await sleep(WARMUP_MS, undefined, { signal: abort.signal }).catch(() => {});
    }
    /** @type {{ name: string, what: string, seconds: number, error?: string }[]} */
    const done = [];
    /** @param {string} name @param {() => Promise<{ what: string, error?: string }>} body */
    const runPhase = async (name, body) => {
      if (abort.signal.aborted) {
        done.push({ name, what: 'not run: the operator had exited', seconds: 0 });
        return;
      }
      if (!config.phases.includes(name)) {
        done.push({ name, what: 'skipped (SOAK_PHASES)', seconds: 0 });
        return;
      }
      phase = name;
      probe.phase(name);
      sampler.setPhase(name);
      process.stderr.write(`soak: ${name} ...\n`);
      const started = Date.now();
      const outcome = await body();
      const seconds = (Date.now() - started) / 1000;
      done.push({ name, seconds, ...outcome });
      process.stderr.write(
        `soak: ${name}: ${outcome.what}${outcome.error ? ` — ${outcome.error}` : ''}\n`,
      );
    };

    /** @type {Awaited<ReturnType<typeof registrations>> | undefined} */
    let registered;
    /** @type {Awaited<ReturnType<typeof registrations>> | undefined} */
    let renewed;
    /** @type {ReturnType<typeof clientSummary> | undefined} */
    let ws;
    /** @type {Awaited<ReturnType<typeof flood>> | undefined} */
    let flooded;
    await runPhase('idle', async () => {
      await sleep(config.idleSeconds * 1000, undefined, { signal: abort.signal }).catch(() => {});
      return { what: `no load for ${config.idleSeconds} s` };
    });
    await runPhase('register', async () => {
      registered = await registrations(operator, tenant, {
        count: config.instances,
        concurrency: config.concurrency,
        addresses: config.registerAddresses,
        bodyOf: (i) => ({
          service: `svc-${String(i % config.services).padStart(3, '0')}`,
          namespace: 'soak-bulk',
          host: hostOf(i),
          port: 8080,
          metadata: metadataOf(config.metadataBytes, i),
        }),
      });
      const rate = registered.ok / Math.max(registered.seconds, 0.001);
      return {
        what: `${int(registered.ok)} of ${int(config.instances)} registered (${int(rate)}/s); answers ${statusList(registered.statuses)}; throttled ${throttledText(registered.throttled)}`,
        error: registered.error,
      };
    });
    await runPhase('renew', async () => {
      const body = {
        service: 'big',
        namespace: NAMESPACE,
        host: '10.255.255.1',
        port: 8080,
        metadata: metadataOf(config.largeMetadataBytes, 0),
      };
      renewed = await registrations(operator, tenant, {
        count: config.renewals,
        concurrency: config.renewConcurrency,
        addresses: config.registerAddresses,
        bodyOf: () => body,
      });
      return {
        what: `${int(renewed.ok)} of ${int(config.renewals)} renewals (${int(renewed.ok / Math.max(renewed.seconds, 0.001))}/s); answers ${statusList(renewed.statuses)}; throttled ${throttledText(renewed.throttled)}`,
        error: renewed.error,
      };
    });
    await runPhase('websocket', async () => {
      clients = await openClients(operator, config, tenant);
      await sleep(config.wsHoldSeconds * 1000, undefined, { signal: abort.signal }).catch(() => {});
      ws = clientSummary(clients);
      return {
        what: `${ws.opened} of ${ws.total} streams opened, then held up to ${config.wsHoldSeconds} s; refused ${statusList(ws.refused)}`,
      };
    });
    await runPhase('flood', async () => {
      flooded = await flood(operator, config, abort.signal);
      return {
        what: `${int(flooded.sent)} unauthenticated requests in ${flooded.sendSeconds.toFixed(1)} s; answers ${statusList(flooded.statuses)}; errors ${int(flooded.errors)}`,
      };
    });
    await runPhase('after', async () => {
      await sleep(config.afterSeconds * 1000, undefined, { signal: abort.signal }).catch(() => {});
      return { what: `no new load for ${config.afterSeconds} s (the streams stay open)` };
    });
    const wsAtEnd = clientSummary(clients);
    const probed = await probe.stop();
    const memory = sampler.stop();
    const alive = exit === undefined;
    const audit = bytesIn(auditDir);
    return {
      operatorArgs,
      limits,
      baseline,
      probed,
      memory,
      phases: done,
      registered,
      renewed,
      ws: ws ?? wsAtEnd,
      wsAtEnd,
      flooded,
      alive,
      exit,
      audit,
    };
  } finally {
    sampler.stop();
    for (const { ws } of clients) ws.terminate();
    await stopChild(operator);
  }
}

/**
 * The same probe against bench/baseline-server.js answering the same bytes, then nothing else.
 * @param {string} body a discovery answer
 * @param {Config} config
 */
async function measureBaseline(body, config) {
  const server = await startBaseline(body);
  try {
    const probe = startProbe(server.port, config, {});
    probe.phase('baseline');
    await sleep(config.idleSeconds * 1000);
    const [figures] = await probe.stop();
    return figures;
  } finally {
    await stopChild(server);
  }
}

/**
 * @param {Awaited<ReturnType<typeof soak>>} r
 * @returns {Record<string, number>} 5xx answers by source
 */
function fiveXxOf(r) {
  const probe = r.probed.reduce(
    (n, p) =>
      n + Object.entries(p.statuses).reduce((m, [s, c]) => (Number(s) >= 500 ? m + c : m), 0),
    0,
  );
  return {
    probe,
    register: r.registered?.fiveXx ?? 0,
    renew: r.renewed?.fiveXx ?? 0,
    websocket: countOf(r.wsAtEnd.refused, (s) => s >= 500),
    flood: r.flooded?.fiveXx ?? 0,
  };
}

/**
 * @param {Config} config
 * @param {Awaited<ReturnType<typeof soak>>} r
 * @returns {import('./report.js').Aim[]}
 */
function aimsOf(config, r) {
  const limitMb = config.memoryLimitMb * AIMS.rssOverLimit;
  const phases = r.probed.filter((p) => p.phase !== 'start');
  const worst = phases.reduce(
    (w, p) => (Number.isNaN(p.p99Ms) || p.p99Ms > (w?.p99Ms ?? -1) ? p : w),
    /** @type {PhaseFigures | undefined} */ (undefined),
  );
  const fiveXx = fiveXxOf(r);
  const total5xx = Object.values(fiveXx).reduce((a, b) => a + b, 0);
  const probeFailures = phases.reduce((n, p) => n + (p.sent - p.ok), 0);
  const skipped = r.phases.filter((p) => p.what.startsWith('skipped')).map((p) => p.name);
  return [
    {
      what: `operator peak RSS (VmHWM) vs the memory budget (${config.memoryLimitMb} MB; heap limit ${config.heapMb} MB) + 20%`,
      target: `< ${limitMb.toFixed(0)} MB`,
      measured: mb(r.memory.hwmMb),
      met: r.memory.hwmMb > 0 && r.memory.hwmMb < limitMb,
    },
    {
      what: 'discovery p99 in every phase (worst phase)',
      target: `< ${AIMS.p99Ms} ms`,
      measured: worst === undefined ? '—' : `${ms(worst.p99Ms)} ms (${worst.phase})`,
      met: worst !== undefined && phases.every((p) => p.p99Ms < AIMS.p99Ms),
    },
    {
      what: 'discovery answered 200 throughout (probe non-2xx + errors)',
      target: '0',
      measured: int(probeFailures),
      met: probeFailures === 0,
    },
    {
      what: 'the operator survived (no exit until stopped)',
      target: 'alive',
      measured: r.alive
        ? `alive, ${skipped.length === 0 ? 'every phase run' : `skipped: ${skipped.join(', ')}`}`
        : `exited (${r.exit?.code ?? r.exit?.signal}) in phase ${r.exit?.phase}`,
      met: r.alive,
    },
    {
      what: 'no 5xx answers (probe, registrations, renewals, handshakes, flood)',
      target: '0',
      measured: `${int(total5xx)} (${Object.entries(fiveXx)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
      met: total5xx === 0,
    },
  ];
}

/**
 * One row of the phase table.
 * @param {{ name: string, what: string, seconds: number }} phase
 * @param {PhaseFigures | undefined} p the probe's figures in the phase
 * @param {{ peakMb: number, lastMb: number } | undefined} m the operator's RSS in the phase
 */
function phaseRow({ name, what, seconds }, p, m) {
  const other = Object.fromEntries(Object.entries(p?.statuses ?? {}).filter(([s]) => s !== '200'));
  const cells = [
    name,
    `${seconds.toFixed(1)} s`,
    what.replaceAll('|', '\\|'),
    int(p?.sent ?? NaN),
    int(p?.ok ?? NaN),
    statusList(other),
    int(p?.errors ?? NaN),
    ms(p?.p50Ms),
    ms(p?.p99Ms),
    ms(p?.maxMs),
    mb(m?.peakMb),
    mb(m?.lastMb),
  ];
  return `| ${cells.join(' | ')} |`;
}

/** @param {Awaited<ReturnType<typeof soak>>} r */
function phaseTable(r) {
  const b = r.baseline;
  return [
    '| phase | duration | what happened | probe sent | 2xx | other answers | errors | p50 ms | p99 ms | max ms | peak RSS (sampled) | RSS at end |',
    '|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
    phaseRow(
      {
        name: 'baseline server',
        what: 'bench/baseline-server.js answering the same bytes, before the operator is loaded',
        seconds: b?.seconds ?? NaN,
      },
      b,
      undefined,
    ),
    ...r.phases.map((p) =>
      phaseRow(
        { ...p, what: p.error === undefined ? p.what : `${p.what} — ${p.error}` },
        r.probed.find((f) => f.phase === p.name),
        r.memory.phases.get(p.name),
      ),
    ),
  ].join('\n');
}

/** @param {Awaited<ReturnType<typeof soak>>} r */
function streamLines(r) {
  const w = r.wsAtEnd;
  const lines = [
    `- handshakes: ${w.opened} of ${w.total} opened; refused: ${statusList(w.refused)}; other errors: ${w.errors.length === 0 ? 'none' : [...new Set(w.errors)].join('; ')}`,
    `- open streams closed by the server before the end: ${w.closed.size === 0 ? 'none' : [...w.closed].map(([k, n]) => `${k} × ${n}`).join('; ')}`,
    `- reading clients: ${w.readers}, ${int(w.messages)} messages, ${int(w.bytes)} bytes in all; non-reading clients: ${w.nonReaders}`,
    `- snapshot clients that read: ${w.snapshotReaders}; got a first message: ${w.snapshotsStarted} (${w.firstMessages} after the handshake); got the whole snapshot: ${w.snapshotsDone} (${w.snapshotTimes} after the handshake); ${int(w.snapshotBytes)} bytes received by them`,
  ];
  return lines;
}

/** @param {Awaited<ReturnType<typeof soak>>} r */
function floodLines(r) {
  const f = r.flooded;
  if (f === undefined) return ['- not run'];
  return [
    `- sent ${int(f.sent)} in ${f.sendSeconds.toFixed(1)} s (${int(f.sent / f.sendSeconds)}/s); not sent because ${int(f.skipped)} were due while the in-flight cap was reached`,
    `- answers: ${statusList(f.statuses)} (401 and 429 are the expected refusals); 5xx: ${int(f.fiveXx)}; connection errors and timeouts: ${int(f.errors)}${f.firstError ? ` (first: ${f.firstError})` : ''}`,
    `- audit log on disk after the run: ${int(r.audit)} bytes`,
  ];
}

/**
 * @param {Config} config
 * @param {Awaited<ReturnType<typeof soak>>} r
 * @param {{ host: ReturnType<typeof machine>, started: Date, loadAfter: string }} run
 */
function resultsText(config, r, run) {
  const { host, started } = run;
  return [
    '# Maxine soak and abuse run',
    '',
    '_Generated by `bench/soak.js`; rewritten on every run and copied into RESULTS.md. One run on a shared machine: the figures are noisy, the survival and the 5xx count are not._',
    '',
    `- date: ${started.toISOString()}`,
    `- machine: ${host.cpus} CPUs (nproc), ${host.model}, ${host.memGb} GB RAM, Linux ${host.kernel}`,
    `- node: ${host.node}; commit: ${host.commit}`,
    `- load average (1, 5, 15 min) at start: ${host.load}; at end: ${run.loadAfter}`,
    `- command: \`${commandLine()}\` (scale ${config.scale})`,
    ...(process.env.SOAK_NOTE ? [`- note: ${process.env.SOAK_NOTE}`] : []),
    `- operator: \`node --max-old-space-size=${config.heapMb} dist/operator/main.js --host 127.0.0.1 --log-level warn --default-ttl-seconds 3600 ${r.operatorArgs.map((a) => (a.includes('/') ? a.replace(/.*\//, '…/') : a)).join(' ')}\``,
    `- limit flags configured for the run: ${r.limits.length === 0 ? 'none (this operator lists none of them in --help)' : `\`${r.limits.join(' ')}\``}`,
    `- per-identity rate limit: ${identityLine(config, r.limits)}`,
    `- principals: the probe is user \`${PROBE_USER}\`; the abuser (registrations, renewals, event streams) is user \`${TENANT_USER}\`, another principal with its own static token (both random, made for this run); the flood has no token or a wrong one`,
    '',
    '## Aims',
    '',
    aimsTable(aimsOf(config, r)),
    '',
    '## Phases',
    '',
    `A discovery probe (\`GET ${DISCOVER_PATH}\` with the probe's token, user \`${PROBE_USER}\`, ${DISCOVER_INSTANCES} instances) runs beside every phase at ${config.probeRate} requests/s, open loop over ${config.probeConnections} keep-alive connections, in a worker thread of the bench process; latency runs from each request's scheduled start (2xx only), so a stalled server is charged for every request it held up. RSS is the operator's VmRSS, sampled every ${SAMPLE_MS} ms; the peak over the whole run is the kernel's VmHWM: ${mb(r.memory.hwmMb)}.`,
    '',
    phaseTable(r),
    '',
    '## Event streams',
    '',
    `${config.wsClients} clients of \`/api/v1/events\` with the abuser's token (user \`${TENANT_USER}\`); ${config.wsNonReading} pause their socket once open and never read; ${config.wsSnapshot} ask \`snapshot=true\` (${Math.min(config.wsNonReading, Math.ceil(config.wsSnapshot / 2))} of them among the non-readers); readers accept messages up to ${WS_MAX_PAYLOAD / 2 ** 20} MiB (ws's default, the sidecar's). A stream that stops reading is sent a \`resync\` marker once its send buffer is full and, if it does not drain within the stall limit, closed with 1013 (docs/events.md, "Slow consumers"); the readers stay open through the flood and the quiet phase. At the end:`,
    '',
    ...streamLines(r),
    '',
    '## Unauthenticated flood',
    '',
    `${config.floodRate} requests/s for ${config.floodSeconds} s over ${config.floodConnections} keep-alive connections from ${config.floodAddress} (the probe and the event streams come from 127.0.0.1, the registrations from 127.0.1.x), in turn: a discovery without a token, one with a wrong token, a registration without a token.`,
    '',
    ...floodLines(r),
    '',
    '## Workload',
    '',
    `- register: by user \`${TENANT_USER}\`, ${int(config.instances)} instances, ${int(config.metadataBytes)} bytes of metadata each (keys + values), over ${config.services} services, keep-alive, ${config.concurrency} in flight.`,
    `- renew: by user \`${TENANT_USER}\`, ${int(config.renewals)} re-registrations of one instance (same host:port, so each renews it and restates every field) with ${int(config.largeMetadataBytes)} bytes of metadata, ${config.renewConcurrency} in flight. The heartbeat endpoint carries no metadata, so a renewal that restates it is a registration.`,
    `- registrations and renewals are sent from ${config.registerAddresses} loopback addresses (${registrationAddress(0)} on), as many hosts would, so that a limit per client address does not refuse them; the probe and the event streams come from 127.0.0.1, the flood from ${config.floodAddress}.`,
    `- a registration or renewal refused with 429 RATE_LIMITED (the per-identity limit, or the per-address one; the scope is counted) is sent again after its Retry-After (plus up to 100 ms of jitter), until it is registered; the phase table counts those refusals as \`throttled\`, apart from the answers. The rate shown is the one achieved, waits included.`,
    `- every count and duration above comes from SOAK_* variables (see bench/soak.js); SOAK_SCALE scales the defaults.`,
    ...(r.exit === undefined
      ? []
      : [
          '',
          '## The operator exited',
          '',
          `In phase \`${r.exit.phase}\`, with ${r.exit.code === null ? `signal ${r.exit.signal}` : `code ${r.exit.code}`}. Its last output:`,
          '',
          '```',
          exitExcerpt(r.exit.output),
          '```',
        ]),
    '',
  ].join('\n');
}

/**
 * @param {Config} config
 * @param {string[]} limits the limit flags passed to the operator
 * @returns {string} the per-identity rate limit the run configured, in words
 */
function identityLine(config, limits) {
  if (config.identityRate === 0) return 'off (SOAK_IDENTITY_RATE=0)';
  const at = limits.indexOf('--identity-rate-limit');
  if (at === -1)
    return `not configured: this operator does not list --identity-rate-limit in --help`;
  const burst = limits[limits.indexOf('--identity-rate-burst') + 1] ?? '—';
  return `${limits[at + 1]} requests/s, burst ${burst}, per principal (SOAK_IDENTITY_RATE, SOAK_IDENTITY_BURST); the probe's ${config.probeRate}/s on its own principal is ${config.probeRate < Number(limits[at + 1]) ? 'under it' : 'not under it: the probe is throttled too'}`;
}

/**
 * The part of a dead operator's output that says why: from V8's fatal error (or its last GCs)
 * when there is one, else the end; at most 3,000 characters.
 * @param {string} output
 */
function exitExcerpt(output) {
  const at = ['<--- Last few GCs --->', 'FATAL ERROR']
    .map((marker) => output.indexOf(marker))
    .find((i) => i >= 0);
  return at === undefined ? output.slice(-3000) : output.slice(at, at + 3000);
}

/**
 * Puts the soak section into RESULTS.md now (replacing the previous one), the way
 * bench/run.js will carry it over when it next rewrites the file.
 */
function spliceIntoResults() {
  if (!existsSync(RESULTS)) return;
  const text = readFileSync(RESULTS, 'utf8');
  const section = carriedSection(RESULTS_SOAK, SOAK_HEADING).join('\n');
  const start = text.indexOf(`${SOAK_HEADING}\n`);
  if (start === -1) {
    writeAtomically(RESULTS, `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const next = text.indexOf('\n## ', start + SOAK_HEADING.length);
  const rest = next === -1 ? '' : text.slice(next + 1);
  writeAtomically(RESULTS, `${text.slice(0, start)}${section}${rest === '' ? '' : `\n${rest}`}`);
}

async function main() {
  const config = loadConfig();
  if (!existsSync(OPERATOR_MAIN)) throw new Error(`${OPERATOR_MAIN} is missing: run npm run build`);
  startWatchdog('soak', config.budgetSec * 1000);
  const host = machine();
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'maxine-soak-'));
  const removeTmp = () => rmSync(tmp, { recursive: true, force: true });
  process.on('exit', removeTmp);
  try {
    const r = await soak(config, tmp);
    const text = resultsText(config, r, { host, started, loadAfter: machine().load });
    writeAtomically(RESULTS_SOAK, text);
    spliceIntoResults();
    process.stdout.write(`${text}\nwritten: ${RESULTS_SOAK} and its section of ${RESULTS}\n`);
    if (aimsOf(config, r).some((a) => !a.met)) {
      process.stderr.write('soak: some aims were not met (see the table)\n');
      process.exitCode = 1;
    }
  } finally {
    removeTmp();
  }
}

runMain('soak', main);
