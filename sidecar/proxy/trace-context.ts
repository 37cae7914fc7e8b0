/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) without OpenTelemetry: parsing and
 * writing `traceparent`, normalising `tracestate`, and fresh ids. The sidecar that exports no
 * spans propagates with this alone, so an idle sidecar loads none of the OpenTelemetry SDK; the
 * rules are those of `@opentelemetry/core`'s W3CTraceContextPropagator, and the tracer tests
 * run one table of headers through both to keep them in step.
 */
import { randomFillSync } from 'node:crypto';

export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** The caller's span: 16 lower-case hex digits, not all zero. */
  readonly parentId: string;
  /** Trace flags (bit 0: sampled). */
  readonly flags: number;
}

// Version ff is forbidden; ids all zero are invalid; only lower-case hex is allowed.
const TRACEPARENT =
  /^([\da-f]{2})-((?![0]{32})[\da-f]{32})-((?![0]{16})[\da-f]{16})-([\da-f]{2})(-.*)?$/;

/**
 * The caller's trace context, or undefined when the header is absent or malformed (the caller
 * then starts a new trace). A version above 00 may carry more fields after a dash; version 00
 * may not. Several `traceparent` headers (joined by Node with ", ") are malformed.
 */
export function parseTraceParent(header: string | string[] | undefined): TraceParent | undefined {
  if (typeof header !== 'string') return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (match === null) return undefined;
  const [, version, traceId, parentId, flags, extra] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === 'ff') return undefined;
  if (version === '00' && extra !== undefined) return undefined;
  return { traceId, parentId, flags: Number.parseInt(flags, 16) };
}

/** Version 00, the one this implementation writes (a newer caller's extra fields are dropped). */
export function formatTraceParent(tp: TraceParent): string {
  return `00-${tp.traceId}-${tp.parentId}-${(tp.flags & 0xff).toString(16).padStart(2, '0')}`;
}

export const SAMPLED = 0x01;

const MAX_TRACESTATE_MEMBERS = 32;
const MAX_TRACESTATE_LENGTH = 512;
const TRACESTATE_KEY =
  /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
const TRACESTATE_VALUE = /^[ -~]{0,255}[!-~]$/;

/**
 * `tracestate` as it may be forwarded: members that are not `key=value` with a valid key and
 * value are dropped, and so is a member that would take the header past 512 characters; at most
 * 32 members are kept. Undefined when nothing is left.
 */
export function normalizeTraceState(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const raw = Array.isArray(header) ? header.join(',') : header;
  const kept: string[] = [];
  const keys = new Set<string>();
  let length = 0;
  for (const item of raw.split(',')) {
    const member = item.trim();
    const eq = member.indexOf('=');
    if (eq === -1) continue;
    const key = member.slice(0, eq);
    const value = member.slice(eq + 1);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(value) || /[,=]/.test(value)) continue;
    if (keys.has(key)) continue;
    const next = length + member.length + (kept.length > 0 ? 1 : 0);
    if (next > MAX_TRACESTATE_LENGTH) continue;
    kept.push(member);
    keys.add(key);
    length = next;
    if (kept.length >= MAX_TRACESTATE_MEMBERS) break;
  }
  return kept.length > 0 ? kept.join(',') : undefined;
}

// Ids come from a pooled buffer filled by the CSPRNG: one syscall per 170 calls, not per id.
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let poolOffset = POOL_SIZE;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > POOL_SIZE) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
    poolOffset += bytes;
    // All-zero ids are invalid; with 2^-64 odds this loop runs once.
    if (/[^0]/.test(hex)) return hex;
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);
