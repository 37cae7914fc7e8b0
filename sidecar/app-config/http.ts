/**
 * `GET /v1/config`: the pod's service's config, `ETag` its content hash and
 * `X-Maxine-Config-Version` its version; `If-None-Match` with the current ETag → 304.
 * `?wait=30s&version=N` long-polls: the answer comes at once when the version is not N, else
 * when it changes, or a 304 when the wait (capped) ends. Waiters are bounded (503 past it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MaxineError } from '../../common/errors.js';
import type { AppConfigState, ConfigSnapshot } from './state.js';
import { WaitersFull } from './state.js';

export const CONFIG_VERSION_HEADER = 'x-maxine-config-version';

export interface ConfigQuery {
  /** Milliseconds to wait (already capped); undefined: answer at once. */
  waitMs?: number;
  version?: number;
}

const DURATION = /^(\d{1,9})(ms|s|m)?$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000 } as const;

/** Parses `wait` and `version`; a bad value is a 400 naming it. Other parameters are ignored. */
export function parseConfigQuery(search: string, maxWaitMs: number): ConfigQuery {
  const params = new URLSearchParams(search);
  const out: ConfigQuery = {};
  const wait = params.get('wait');
  const version = params.get('version');
  if (wait !== null) {
    const m = DURATION.exec(wait);
    if (m === null)
      throw invalid('wait', `wait must be a duration such as 30s, 500ms or 1m (got ${clip(wait)})`);
    const ms = Number(m[1]) * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS];
    out.waitMs = Math.min(ms, maxWaitMs);
  }
  if (version !== null) {
    if (!/^\d{1,15}$/.test(version))
      throw invalid('version', `version must be a whole number ≥ 0 (got ${clip(version)})`);
    out.version = Number(version);
  }
  if (out.waitMs !== undefined && out.version === undefined)
    throw invalid('version', 'wait needs the version held (?wait=30s&version=N)');
  return out;
}

/** Whether an If-None-Match header names this ETag (or is `*`). */
export function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);
}

export const etagOf = (snapshot: ConfigSnapshot): string => `"${snapshot.hash}"`;

export function answerConfig(
  state: AppConfigState,
  req: IncomingMessage,
  res: ServerResponse,
  maxWaitMs: number,
): Promise<void> | undefined {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const query = parseConfigQuery(q === -1 ? '' : url.slice(q + 1), maxWaitMs);
  const head = req.method === 'HEAD';
  if (query.waitMs === undefined || query.version === undefined) {
    const current = state.current;
    if (matchesEtag(req.headers['if-none-match'], etagOf(current))) notModified(res, current);
    else write(res, current, head);
    return undefined;
  }
  const cancel = new AbortController();
  res.on('close', () => cancel.abort());
  let waiting: Promise<ConfigSnapshot | undefined>;
  try {
    waiting = state.wait(query.version, query.waitMs, cancel.signal);
  } catch (err) {
    if (err instanceof WaitersFull) {
      res.setHeader('retry-after', '1');
      throw new MaxineError(
        'CONFIG_WAITERS_FULL',
        'The sidecar holds all the config long-polls it may; retry shortly or poll without wait',
      );
    }
    throw err;
  }
  return waiting.then((changed) => {
    if (res.destroyed) return;
    if (changed === undefined) notModified(res, state.current);
    else write(res, changed, head);
  });
}

function write(res: ServerResponse, snapshot: ConfigSnapshot, head: boolean): void {
  const body = JSON.stringify({ service: snapshot.service, config: snapshot.config });
  res.writeHead(200, [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    'etag',
    etagOf(snapshot),
    CONFIG_VERSION_HEADER,
    String(snapshot.version),
    'cache-control',
    'no-cache',
  ]);
  res.end(head ? undefined : body);
}

function notModified(res: ServerResponse, snapshot: ConfigSnapshot): void {
  res.writeHead(304, ['etag', etagOf(snapshot), CONFIG_VERSION_HEADER, String(snapshot.version)]);
  res.end();
}

function invalid(param: string, message: string): MaxineError {
  return new MaxineError('VALIDATION_FAILED', `Invalid config query: ${message}`, {
    issues: [{ path: param, message }],
  });
}

const clip = (s: string): string => JSON.stringify(s.slice(0, 32));
