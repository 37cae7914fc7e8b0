// @ts-check
/**
 * Child processes of the benchmark: every server runs in its own process so that the load
 * generator (autocannon, in the bench process) and the server never share an event loop.
 * Every child is recorded and killed when the bench exits, also on error or on a signal.
 */
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

/**
 * @typedef {object} Child
 * @property {string} name
 * @property {number} port
 * @property {number} pid
 * @property {ChildProcess} proc
 * @property {() => string} output the last lines the child wrote (stdout and stderr)
 */

/** @type {Set<ChildProcess>} */
const live = new Set();
let hooked = false;

function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Kills every child still running, at once (used on exit). */
export function killAll() {
  for (const proc of live) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
  live.clear();
}

/** @returns {Promise<number>} a TCP port free on 127.0.0.1 right now */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * One HTTP request to 127.0.0.1, body read fully (bounded by `timeoutMs`).
 * @param {{ port: number, method?: string, path: string, body?: string, timeoutMs?: number, agent?: import('node:http').Agent, headers?: Record<string, string> }} opts
 * @returns {Promise<{ status: number, body: string, headers: import('node:http').IncomingHttpHeaders }>}
 */
export function httpRequest({
  port,
  method = 'GET',
  path,
  body,
  timeoutMs = 5000,
  agent,
  headers: extra,
}) {
  return new Promise((resolve, reject) => {
    const headers = {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...extra,
    };
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, agent, timeout: timeoutMs },
      (res) => {
        /** @type {string[]} */
        const chunks = [];
        res.setEncoding('utf8');
        res.on('data', (chunk) => chunks.push(/** @type {string} */ (chunk)));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: chunks.join(''), headers: res.headers }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The Node.js that runs every server (operator, sidecar, baseline): `BENCH_NODE` when set (for
 * example the production images' LTS, while the load generator stays on this one), else this.
 */
export const SERVER_NODE = process.env.BENCH_NODE ?? process.execPath;

/** The built operator (`npm run build`). */
export const OPERATOR_MAIN = join(import.meta.dirname, '..', 'dist', 'operator', 'main.js');
const BASELINE_MAIN = join(import.meta.dirname, 'baseline-server.js');

/**
 * Starts an operator from dist/ in its own process on a free port of 127.0.0.1, with the
 * Node flags of BENCH_OPERATOR_NODE_FLAGS first.
 * @param {string} resources
 * @param {string} name
 * @param {string[]} [nodeFlags]
 * @param {string[]} [operatorArgs]
 * @returns {Promise<Child>}
 */
export function startOperator(resources, name, nodeFlags = [], operatorArgs = []) {
  return startOperatorFrom(OPERATOR_MAIN, { resources, name, nodeFlags, operatorArgs });
}

/**
 * startOperator with another build's operator `main` (bench/memory.js's before/after runs).
 * @param {string} main
 * @param {{ resources: string, name: string, nodeFlags?: string[], operatorArgs?: string[] }} o
 * @returns {Promise<Child>}
 */
export async function startOperatorFrom(
  main,
  { resources, name, nodeFlags = [], operatorArgs = [] },
) {
  const port = await freePort();
  const extra = (process.env.BENCH_OPERATOR_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  return startChild({
    name,
    port,
    readyPath: '/readyz',
    args: [
      ...extra,
      ...nodeFlags,
      main,
      ...['--resources', resources, '--host', '127.0.0.1', '--port', String(port)],
      ...['--log-level', 'warn', '--default-ttl-seconds', '3600'],
      ...operatorArgs,
    ],
  });
}

/**
 * The Node flags the operator ships with: the Deployment's `NODE_OPTIONS`
 * (manifests/deployment.yaml, `--max-old-space-size=384 --max-semi-space-size=8`).
 * @returns {string[]}
 */
export function deploymentNodeFlags() {
  const manifest = readFileSync(
    join(import.meta.dirname, '..', 'manifests', 'deployment.yaml'),
    'utf8',
  );
  const match = /- name: NODE_OPTIONS\s+value: (.+)/.exec(manifest);
  if (match?.[1] === undefined) throw new Error('manifests/deployment.yaml sets no NODE_OPTIONS');
  return match[1].trim().split(/\s+/);
}

/**
 * Resident memory of a process from /proc/<pid>/status: now (VmRSS), its peak so far
 * (VmHWM, kept by the kernel, so no sample misses it) and the private part (RssAnon).
 * @param {number} pid
 * @returns {{ rssMb: number, hwmMb: number, anonMb: number }}
 */
export function rssOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (/** @type {string} */ field) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (match?.[1] === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024 };
}

/**
 * Starts `node <args>` as a child, and resolves once `GET readyPath` answers 200.
 * @param {{ name: string, args: string[], port: number, readyPath: string, timeoutMs?: number, env?: NodeJS.ProcessEnv }} opts
 * @returns {Promise<Child>}
 */
export async function startChild({ name, args, port, readyPath, timeoutMs = 20_000, env }) {
  hookExit();
  const proc = spawn(SERVER_NODE, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env ?? process.env,
  });
  live.add(proc);
  /** @type {string[]} */
  const tail = [];
  const keep = (/** @type {Buffer} */ chunk) => {
    tail.push(chunk.toString('utf8'));
    while (tail.length > 50) tail.shift();
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  proc.on('exit', () => live.delete(proc));
  const output = () => tail.join('').trim();
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt += 1) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(
        `${name} exited (${proc.exitCode ?? proc.signalCode}) before ready:\n${output()}`,
      );
    }
    const ok = await httpRequest({ port, path: readyPath, timeoutMs: 1000 }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return { name, port, pid: proc.pid ?? -1, proc, output };
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`${name} not ready on port ${port} after ${timeoutMs} ms:\n${output()}`);
}

/**
 * Stops a child with SIGTERM, then SIGKILL after `graceMs`.
 * @param {Child | undefined} child
 * @param {number} [graceMs]
 */
export async function stopChild(child, graceMs = 5000) {
  if (child === undefined) return;
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', () => resolve('exited')));
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs);
  });
  proc.kill('SIGTERM');
  const outcome = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    proc.kill('SIGKILL');
    await exited;
  }
}

/**
 * bench/baseline-server.js answering `answer` (a discovery answer's bytes) on a free port: the
 * bare `node:http` reference the discovery scenarios are compared with.
 * @param {Uint8Array | string} answer
 * @returns {Promise<Child>}
 */
export async function startBaseline(answer) {
  const port = await freePort();
  return startChild({
    name: 'baseline',
    port,
    readyPath: '/',
    args: [BASELINE_MAIN, String(port), Buffer.from(answer).toString('base64')],
  });
}

/**
 * Ends the process (exit 1) once `budgetMs` has passed, so that a stuck run cannot go on
 * forever; the timer does not keep the process alive.
 * @param {string} name the run, in the message (`bench`, `soak`)
 * @param {number} budgetMs
 */
export function startWatchdog(name, budgetMs) {
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: over its time budget of ${budgetMs / 1000} s, aborting\n`);
    process.exit(1);
  }, budgetMs);
  watchdog.unref();
}

/**
 * Runs a bench script's `main`, then exits: 0 when it resolves, 1 (after its stack on stderr)
 * when it throws, so that no child outlives it.
 * @param {string} name what failed, in the message (`bench`, `soak`)
 * @param {() => Promise<void>} main
 */
export function runMain(name, main) {
  main().then(
    () => process.exit(),
    (err) => {
      process.stderr.write(
        `${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
