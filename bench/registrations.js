// @ts-check
/**
 * Bulk registration over HTTP with a keep-alive agent and bounded concurrency: used to
 * pre-register the heartbeat targets and to fill a registry for the memory measurement.
 */
import { Agent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpRequest } from './processes.js';

/**
 * @typedef {object} BulkSpec
 * @property {number} port
 * @property {number} count instances to register
 * @property {(i: number) => object} bodyOf the register body of the i-th instance
 * @property {number} concurrency requests in flight at most
 * @property {number} deadlineMs give up after this long
 * @property {boolean} [keepIds] return the ids the operator assigned
 * @property {number} [maxErrors] give up after this many failures
 * @property {Record<string, string>} [headers] sent with every request (a bearer token)
 * @property {Map<number, number>} [statuses] counts every answer's status into this map
 * @property {string} [localAddress] the loopback address to send from (default: the system's)
 * @property {Map<string, number>} [throttled] counts every 429 RATE_LIMITED answer by its
 *   scope (`identity`, `address`, ...; each is resent after its Retry-After); those answers
 *   are not counted into `statuses`
 */

/**
 * @param {BulkSpec} spec
 * @returns {Promise<{ registered: number, errors: number, seconds: number, ids: string[] }>}
 */
export async function registerMany(spec) {
  const { port, count, bodyOf, concurrency, deadlineMs, keepIds = false, maxErrors = 100 } = spec;
  const started = Date.now();
  const sent = {
    headers: spec.headers,
    statuses: spec.statuses,
    throttled: spec.throttled,
    deadline: started + deadlineMs,
  };
  const agent = new Agent({
    keepAlive: true,
    maxSockets: concurrency,
    ...(spec.localAddress !== undefined && { localAddress: spec.localAddress }),
  });
  /** @type {string[]} */
  const ids = [];
  let next = 0;
  let registered = 0;
  let errors = 0;
  /** @type {string | undefined} */
  let firstError;
  const worker = async () => {
    while (next < count && errors < maxErrors && Date.now() - started < deadlineMs) {
      const i = next;
      next += 1;
      try {
        const id = await registerOne(port, JSON.stringify(bodyOf(i)), agent, sent);
        registered += 1;
        if (keepIds) ids.push(id);
      } catch (err) {
        errors += 1;
        firstError ??= String(err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  if (registered < count) {
    throw new Error(
      `registered ${registered} of ${count} instances in ${Date.now() - started} ms (${errors} errors; first: ${firstError ?? 'none'})`,
    );
  }
  return { registered, errors, seconds: (Date.now() - started) / 1000, ids };
}

/**
 * Registers one instance, retrying twice on a timeout or a 5xx: registering the same
 * host:port again renews the same instance, so a retry never duplicates one. A 429
 * RATE_LIMITED (the caller's per-identity rate limit) is not a failure: the request is sent
 * again after the answer's Retry-After (plus up to 100 ms of jitter, so that the senders
 * waiting together do not all come back at once), as often as it takes until the deadline.
 * @param {number} port
 * @param {string} body
 * @param {Agent} agent
 * @param {{ headers?: Record<string, string>, statuses?: Map<number, number>, throttled?: Map<string, number>, deadline?: number }} [opts]
 * @returns {Promise<string>} the instance id
 */
async function registerOne(port, body, agent, { headers, statuses, throttled, deadline } = {}) {
  let lastError;
  for (let attempt = 0; attempt < 3;) {
    try {
      const res = await httpRequest({
        port,
        method: 'POST',
        path: '/api/v1/instances',
        body,
        agent,
        headers,
        timeoutMs: 30_000,
      });
      const limited = rateLimited(res);
      if (limited !== undefined) {
        const { waitMs, scope } = limited;
        throttled?.set(scope, (throttled.get(scope) ?? 0) + 1);
        lastError = new Error(
          `status 429 RATE_LIMITED until the deadline: ${res.body.slice(0, 300)}`,
        );
        if (deadline !== undefined && Date.now() + waitMs > deadline) break;
        await sleep(waitMs + Math.random() * 100);
        continue;
      }
      statuses?.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200 || res.status === 201) {
        return /** @type {{ instance: { id: string } }} */ (JSON.parse(res.body)).instance.id;
      }
      lastError = new Error(`status ${res.status}: ${res.body.slice(0, 300)}`);
      if (res.status < 500) break;
    } catch (err) {
      lastError = err;
    }
    attempt += 1;
  }
  throw lastError;
}

/**
 * @param {{ status: number, body: string, headers: import('node:http').IncomingHttpHeaders }} res
 * @returns {{ waitMs: number, scope: string } | undefined} how long to wait before resending
 *   and which limit refused, when the answer is a 429 RATE_LIMITED (a registry limit, 429
 *   LIMIT_EXCEEDED, is a real refusal: undefined)
 */
export function rateLimited(res) {
  if (res.status !== 429) return undefined;
  /** @type {{ code?: string, details?: { scope?: unknown } } | undefined} */
  let error;
  try {
    error = /** @type {{ error?: typeof error }} */ (JSON.parse(res.body)).error;
  } catch {
    return undefined;
  }
  if (error?.code !== 'RATE_LIMITED') return undefined;
  const seconds = Number(res.headers['retry-after']);
  return {
    waitMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 250,
    scope: typeof error.details?.scope === 'string' ? error.details.scope : 'unknown',
  };
}

/** @param {number} i @returns {string} a distinct IPv4 address in 10.0.0.0/8 per i */
export function hostOf(i) {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}
