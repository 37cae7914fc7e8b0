/**
 * One-shot health checks as the sidecar runs them: a command, an HTTP GET or a TCP connect,
 * each ending in a status and a short output for the heartbeat. A runner never throws and never
 * outlives its timeout by more than a kill grace: a check that cannot even start is itself a
 * critical result, since that is what the instance's health is then.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import { http, https } from '../../common/node-http.js';
import type { RequestOptions } from 'node:https';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { getSystemErrorMap, types } from 'node:util';
import type { z } from 'zod';
import type { healthCheckSchema } from '../../common/resources.js';
import type { HealthStatus } from '../../common/wire.js';

/** A check spec after parsing, defaults applied. */
export type HealthCheck = z.infer<typeof healthCheckSchema>;

export interface CheckResult {
  status: HealthStatus;
  output: string;
  durationMs: number;
}

export interface CheckTarget {
  /** The instance's address, probed by http and tcp checks. */
  host: string;
  /** The port probed when the spec names none (the instance's main port). */
  defaultPort: number;
}

/** How exec checks run; `signal` cuts any check short (the monitor stopping). */
export interface CheckOptions {
  outputCapBytes?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
}

export interface ExecOptions extends CheckOptions {
  timeoutMs: number;
}

export interface HttpProbe {
  host: string;
  port: number;
  path: string;
  scheme: 'http' | 'https';
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface TcpProbe {
  host: string;
  port: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** The heartbeat's `output` holds at most 4096 characters; a UTF-8 byte cap of 4096 fits it. */
export const DEFAULT_OUTPUT_CAP_BYTES = 4096;
export const USER_AGENT = 'maxine-sidecar-health';
const BODY_SNIPPET_BYTES = 512;
/** How long a killed command may take to die before its result is reported anyway. */
const KILL_GRACE_MS = 1000;
/** How long output may still drain once the command has exited. */
const DRAIN_MS = 100;

/** `timeoutSeconds`, or 5 s, or the interval when that is shorter (a check never overlaps the next). */
export function checkTimeoutMs(
  spec: Pick<HealthCheck, 'intervalSeconds' | 'timeoutSeconds'>,
): number {
  return 1000 * (spec.timeoutSeconds ?? Math.min(5, spec.intervalSeconds));
}

export function runCheck(
  spec: HealthCheck,
  target: CheckTarget,
  opts: CheckOptions = {},
): Promise<CheckResult> {
  const timeoutMs = checkTimeoutMs(spec);
  const { host, defaultPort } = target;
  const { signal } = opts;
  if (spec.exec !== undefined) return runExec(spec.exec.command, { ...opts, timeoutMs });
  if (spec.http !== undefined) {
    const { path, scheme, port = defaultPort } = spec.http;
    return runHttp({ host, port, path, scheme, timeoutMs, signal });
  }
  if (spec.tcp !== undefined) {
    return runTcp({ host, port: spec.tcp.port ?? defaultPort, timeoutMs, signal });
  }
  // The schema rejects such a spec; a typed caller can still build one.
  return Promise.resolve({
    status: 'critical',
    output: 'the health check sets none of exec, http or tcp',
    durationMs: 0,
  });
}

/**
 * Runs `command` without a shell, as the leader of its own process group, so that a timeout
 * (or the exit of the command) kills everything it started: a check that leaves a `sleep`
 * behind would otherwise hold the output pipes open and pile up over thousands of runs.
 * Exit 0 is passing, 1 warning, anything else critical (the Nagios/Consul convention).
 */
export function runExec(command: readonly string[], opts: ExecOptions): Promise<CheckResult> {
  const started = performance.now();
  const [file, ...args] = command;
  if (file === undefined) return Promise.resolve(result(started, 'critical', 'empty command'));
  if (opts.signal?.aborted === true) {
    return Promise.resolve(result(started, 'critical', 'aborted before start'));
  }
  let child: ChildProcess;
  try {
    child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env,
      cwd: opts.cwd,
    });
  } catch (err) {
    // Invalid arguments (a NUL byte in the command) throw instead of emitting 'error'.
    return Promise.resolve(result(started, 'critical', cannotRun(file, err)));
  }
  return new Promise((resolve) => {
    watch(child, file, opts, (status, output) => resolve(result(started, status, output)));
  });
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Follows one spawned command to its result; `done` is called exactly once. */
function watch(
  child: ChildProcess,
  file: string,
  opts: ExecOptions,
  done: (status: HealthStatus, output: string) => void,
): void {
  const capture = new OutputCapture(opts.outputCapBytes ?? DEFAULT_OUTPUT_CAP_BYTES);
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on('data', capture.sink());
    // A read error only cuts the output short; the exit status still decides.
    stream?.on('error', () => {});
  }
  const timers: NodeJS.Timeout[] = [];
  let exit: Exit | undefined;
  /** Why the command was killed (timeout, abort), if it was. */
  let cut: string | undefined;
  let settled = false;

  const finish = (status: HealthStatus, output: string) => {
    if (settled) return;
    settled = true;
    for (const t of timers) clearTimeout(t);
    opts.signal?.removeEventListener('abort', onAbort);
    child.stdout?.destroy();
    child.stderr?.destroy();
    done(status, output);
  };
  const report = () => {
    if (cut !== undefined) finish('critical', capture.text(`[${cut}; process group killed]`));
    else if (exit !== undefined) finish(...exitResult(exit, capture));
  };
  const cutShort = (why: string) => {
    if (cut !== undefined || exit !== undefined) return;
    cut = why;
    killGroup(child.pid);
    timers.push(setTimeout(report, KILL_GRACE_MS));
  };
  const onAbort = () => cutShort('aborted');

  timers.push(setTimeout(() => cutShort(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  child.on('error', (err) => {
    // Without a pid the command never started (ENOENT, EACCES); other errors are about signals.
    if (child.pid === undefined) finish('critical', cannotRun(file, err));
  });
  child.once('exit', (code, signal) => {
    exit = { code, signal };
    // Whatever the command left running in its group dies with it.
    killGroup(child.pid);
    timers.push(setTimeout(report, DRAIN_MS));
  });
  // 'close' comes once the pipes are drained, which is when the output is complete.
  child.once('close', report);
}

function exitResult(exit: Exit, capture: OutputCapture): [HealthStatus, string] {
  if (exit.signal !== null) return ['critical', capture.text(`[killed by ${exit.signal}]`)];
  if (exit.code === 0) return ['passing', capture.text()];
  if (exit.code === 1) return ['warning', capture.text()];
  return ['critical', capture.text(`[exit status ${exit.code}]`)];
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is empty already.
  }
}

function cannotRun(file: string, err: unknown): string {
  const errno = (err as NodeJS.ErrnoException).errno;
  const reason = errno === undefined ? undefined : getSystemErrorMap().get(errno)?.[1];
  return `cannot run ${JSON.stringify(file)}: ${reason ?? describeError(err)}`;
}

const truncationMarker = (bytes: number) => `[output truncated: ${bytes} bytes more]`;
/** Room kept for the marker and its newline, whatever the count. */
const MARKER_BYTES = Buffer.byteLength(truncationMarker(Number.MAX_SAFE_INTEGER)) + 1;

/**
 * Interleaved stdout and stderr: keeps the first `cap` bytes and only counts the rest, so a
 * command printing gigabytes costs no memory. Each stream decodes with its own decoder, so a
 * character split between two chunks of one stream survives the other stream's interleaving.
 */
class OutputCapture {
  private readonly chunks: { stream: number; bytes: Buffer }[] = [];
  private streams = 0;
  private kept = 0;
  private dropped = 0;

  constructor(private readonly cap: number) {}

  /** A 'data' listener for one stream. */
  sink(): (chunk: Buffer) => void {
    const stream = this.streams++;
    return (chunk) => {
      const take = Math.min(chunk.length, this.cap - this.kept);
      if (take > 0) {
        // A copy: a small chunk can be a view of a 64 KiB read buffer, which it would keep.
        this.chunks.push({ stream, bytes: Buffer.from(chunk.subarray(0, take)) });
        this.kept += take;
      }
      this.dropped += chunk.length - take;
    };
  }

  /**
   * The output as text, `note` on a last line. The bytes shown plus the marker and the note
   * are at most `cap` (for a cap above the marker's 48 bytes), so the text is at most `cap`
   * characters: invalid bytes become one U+FFFD each. A cut never splits a character.
   */
  text(note = ''): string {
    const noteBytes = note === '' ? 0 : Buffer.byteLength(note) + 1;
    const whole = this.dropped === 0 && this.kept + noteBytes <= this.cap;
    const limit = whole ? this.kept : Math.max(0, this.cap - noteBytes - MARKER_BYTES);
    const decoders = Array.from({ length: this.streams }, () => new StringDecoder('utf8'));
    let out = '';
    let shown = 0;
    for (const { stream, bytes } of this.chunks) {
      const room = limit - shown;
      const part = bytes.length <= room ? bytes : bytes.subarray(0, charStart(bytes, room));
      out += decoders[stream]?.write(part) ?? '';
      shown += part.length;
      if (part !== bytes) break;
    }
    for (const d of decoders) out += d.end();
    const hidden = this.kept + this.dropped - shown;
    if (hidden > 0) out = line(out, truncationMarker(hidden));
    return note === '' ? out : line(out, note);
  }
}

/** Appends `next` on its own line. */
function line(text: string, next: string): string {
  return text === '' || text.endsWith('\n') ? `${text}${next}` : `${text}\n${next}`;
}

/** The largest index ≤ `at` where a UTF-8 character starts (never inside one). */
function charStart(bytes: Buffer, at: number): number {
  let i = at;
  while (i > 0 && ((bytes[i] ?? 0) & 0xc0) === 0x80) i--;
  return i;
}

/**
 * GETs the path without following redirects (a redirect is not an answer from this instance).
 * TLS certificates are not verified, as kubelet's probes: the check asks "is it up", not "is it
 * who it says", and pod certificates rarely name the pod IP.
 */
export function runHttp(probe: HttpProbe): Promise<CheckResult> {
  const url = `${probe.scheme}://${hostPort(probe.host, probe.port)}${probe.path}`;
  return bounded(probe, `GET ${url}`, (finish) => {
    const options: RequestOptions = {
      host: probe.host,
      port: probe.port,
      path: probe.path,
      method: 'GET',
      // A fresh connection each time, closed after: no pooled socket outlives the check.
      agent: false,
      headers: { 'User-Agent': USER_AGENT, Accept: '*/*', Connection: 'close' },
    };
    const req =
      probe.scheme === 'https'
        ? https().request({ ...options, rejectUnauthorized: false })
        : http.request(options);
    req.on('error', (err) => finish('critical', `GET ${url}: ${describeError(err)}`));
    req.on('response', (res) => {
      const code = res.statusCode ?? 0;
      const head = `HTTP ${code}${res.statusMessage ? ` ${res.statusMessage}` : ''}`;
      readSnippet(res, (body) => finish(httpStatus(code), body === '' ? head : `${head}\n${body}`));
    });
    req.end();
    return () => req.destroy();
  });
}

function httpStatus(code: number): HealthStatus {
  if (code >= 200 && code < 300) return 'passing';
  return code === 429 ? 'warning' : 'critical';
}

/** Reads at most BODY_SNIPPET_BYTES of the body, then lets go of it. */
function readSnippet(res: IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    res.destroy();
    const bytes = Buffer.concat(chunks);
    const cut =
      bytes.length <= BODY_SNIPPET_BYTES ? bytes.length : charStart(bytes, BODY_SNIPPET_BYTES);
    done(bytes.subarray(0, cut).toString('utf8'));
  };
  res.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= BODY_SNIPPET_BYTES) end();
  });
  // A body cut short (reset, closed early) still tells what the status line told.
  res.once('end', end);
  res.once('error', end);
  res.once('close', end);
}

export function runTcp(probe: TcpProbe): Promise<CheckResult> {
  const address = hostPort(probe.host, probe.port);
  return bounded(probe, `connect ${address}`, (finish) => {
    const socket = net.connect({ host: probe.host, port: probe.port });
    socket.once('connect', () => finish('passing', `connected to ${address}`));
    socket.once('error', (err) => finish('critical', `connect ${address}: ${describeError(err)}`));
    return () => socket.destroy();
  });
}

type Finish = (status: HealthStatus, output: string) => void;

/**
 * Runs a network check to the first of its own answer, the timeout or an abort. `start` returns
 * the cleanup, which runs in every case so that no socket outlives the check.
 */
function bounded(
  limits: { timeoutMs: number; signal?: AbortSignal },
  what: string,
  start: (finish: Finish) => () => void,
): Promise<CheckResult> {
  const started = performance.now();
  if (limits.signal?.aborted === true) {
    return Promise.resolve(result(started, 'critical', `${what}: aborted before start`));
  }
  let cleanup = (): void => {};
  const outcome = new Promise<CheckResult>((resolve) => {
    let settled = false;
    const finish: Finish = (status, output) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      limits.signal?.removeEventListener('abort', onAbort);
      resolve(result(started, status, output));
    };
    const onAbort = () => finish('critical', `${what}: aborted`);
    const timer = setTimeout(
      () => finish('critical', `${what}: timed out after ${limits.timeoutMs} ms`),
      limits.timeoutMs,
    );
    limits.signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = start(finish);
  });
  return outcome.finally(() => cleanup());
}

function result(started: number, status: HealthStatus, output: string): CheckResult {
  return { status, output, durationMs: Math.round(performance.now() - started) };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * An error's message; Node's AggregateError (both address families refused) has an empty one.
 * `isNativeError`, not `instanceof`: the error may come from another realm (a vm context).
 */
function describeError(err: unknown): string {
  if (!types.isNativeError(err)) return String(err);
  if (err.message !== '') return err.message;
  return (err as NodeJS.ErrnoException).code ?? err.name;
}
