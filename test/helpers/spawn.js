// @ts-check
/**
 * The one "start a process and read its port from its listening log line" helper of the tests,
 * the end-to-end tier and the benchmarks. Plain ESM with JSDoc types, so that the TypeScript
 * tests (root tsconfig, `allowJs`) and the plain-JS benchmarks (`bench/tsconfig.json`,
 * `checkJs`) import the same code.
 */
import { spawn } from 'node:child_process';
import { clearTimeout, setTimeout } from 'node:timers';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

/**
 * @typedef {object} Listening
 * @property {ChildProcess} proc the running process
 * @property {number} port the port its listening line names
 * @property {Record<string, unknown>[]} lines every log line so far, parsed (a line that is not
 *   JSON is kept as `{ unparsed: line }`); it keeps growing after the promise resolves, up to
 *   `maxLines` (the oldest are dropped)
 * @property {() => string} output the raw stdout and stderr so far (the last `maxLines` lines)
 */

/**
 * @typedef {object} SpawnListeningOptions
 * @property {NodeJS.ProcessEnv} [env] the whole environment (default: this process's)
 * @property {string} [cwd]
 * @property {string} [command] default: this Node.js
 * @property {number} [timeoutMs] how long to wait for the listening line (default 30 s)
 * @property {number} [maxLines] lines kept in `lines` and `output()` (default 10 000)
 */

/**
 * Whether a parsed log line is a listening line: a numeric `port` and a `msg` containing
 * `listening` (the operator's `maxine operator listening (...)`, the sidecar's).
 * @param {Record<string, unknown>} line
 * @returns {line is Record<string, unknown> & { port: number }}
 */
export function isListeningLine(line) {
  return (
    typeof line.port === 'number' && typeof line.msg === 'string' && line.msg.includes('listening')
  );
}

/**
 * Starts `command args` with stdout and stderr piped, and resolves once a JSON log line on
 * either says it listens, with the port it names. Rejects (after SIGKILL, so nothing is left
 * running) when the process exits first or no such line comes within `timeoutMs`; the error
 * carries what the process wrote.
 * @param {string[]} args
 * @param {SpawnListeningOptions} [options]
 * @returns {Promise<Listening>}
 */
export function spawnListening(args, options = {}) {
  const { env = process.env, cwd, command = process.execPath } = options;
  const { timeoutMs = 30_000, maxLines = 10_000 } = options;
  const proc = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  /** @type {Record<string, unknown>[]} */
  const lines = [];
  /** @type {string[]} */
  const raw = [];
  const output = () => raw.join('\n');
  return new Promise((resolve, reject) => {
    let settled = false;
    /** @param {Error} err */
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new Error(`no listening line within ${timeoutMs} ms; output:\n${output()}`)),
      timeoutMs,
    );
    /** @param {string} text */
    const take = (text) => {
      raw.push(text);
      /** @type {Record<string, unknown>} */
      let line;
      try {
        const parsed = /** @type {unknown} */ (JSON.parse(text));
        line =
          typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
            ? /** @type {Record<string, unknown>} */ (parsed)
            : { unparsed: text };
      } catch {
        line = { unparsed: text };
      }
      lines.push(line);
      if (lines.length > maxLines) lines.shift();
      if (raw.length > maxLines) raw.shift();
      if (!settled && isListeningLine(line)) {
        settled = true;
        clearTimeout(timer);
        resolve({ proc, port: line.port, lines, output });
      }
    };
    for (const stream of [proc.stdout, proc.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (/** @type {string} */ chunk) => {
        partial += chunk;
        const parts = partial.split('\n');
        partial = parts.pop() ?? '';
        for (const part of parts) if (part.trim() !== '') take(part);
      });
    }
    proc.once('error', fail);
    proc.once('exit', (code, signal) =>
      fail(new Error(`exited (${code ?? signal}) before listening; output:\n${output()}`)),
    );
  });
}
