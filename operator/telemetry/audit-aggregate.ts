/**
 * Folds repeated refusals of one client into one audit record (pure; time is passed in).
 * The first refusal of an address (an IPv6 /64), outcome and reason (its quoted values
 * aside, see `reasonClass`) is written at once; the others within
 * the next `windowMs` are only counted, and when the window ends one record with
 * `repeated: N` (the window's bounds, and the request id of the last one) stands for them.
 * Nothing is lost: the refusals of
 * a window are 1 + repeated. The open windows live in a bounded map; a key beyond the bound
 * is counted under one `(many)` address per outcome.
 */
import { addressKey } from '../http/address-limit.js';
import type { AuditEntry } from './audit.js';

export interface RepeatedEntry extends AuditEntry {
  /** Refusals like the first one of the window that were not written one by one. */
  repeated: number;
  /** The window: from its first refusal to its end (ISO times). */
  from: string;
  to: string;
}

interface Window {
  first: AuditEntry;
  startedMs: number;
  count: number;
  /** The request id of the last refusal counted (the record names that one). */
  lastReqId: string | undefined;
}

export const MANY_ADDRESSES = '(many)';

export class RefusalAggregator {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly write: (entry: AuditEntry | RepeatedEntry) => void,
    private readonly opts: { windowMs: number; maxKeys: number; folded?: () => void },
  ) {}

  /** Writes `entry` or counts it into its open window. */
  add(entry: AuditEntry, nowMs: number): void {
    let key = keyOf(entry, entry.address ?? 'unknown');
    let window = this.windows.get(key);
    if (window === undefined && this.windows.size >= this.opts.maxKeys) {
      // Keyed by outcome alone: reasons may carry what a client chose (a token's issuer).
      key = `${MANY_ADDRESSES}\0${entry.outcome}`;
      window = this.windows.get(key);
      entry = { ...entry, address: MANY_ADDRESSES };
    }
    if (window !== undefined) {
      window.count += 1;
      window.lastReqId = entry.reqId;
      this.opts.folded?.();
      return;
    }
    this.windows.set(key, { first: entry, startedMs: nowMs, count: 0, lastReqId: undefined });
    this.write(entry);
  }

  /** Ends the windows older than `windowMs` (all of them with `all`), writing their counts. */
  flush(nowMs: number, all = false): void {
    // Insertion order is start order: stop at the first window still open.
    for (const [key, w] of this.windows) {
      const ends = w.startedMs + this.opts.windowMs;
      if (!all && ends > nowMs) break;
      this.windows.delete(key);
      if (w.count === 0) continue;
      const first: AuditEntry = { ...w.first };
      if (w.lastReqId === undefined) delete first.reqId;
      else first.reqId = w.lastReqId;
      this.write({
        ...first,
        repeated: w.count,
        from: new Date(w.startedMs).toISOString(),
        to: new Date(Math.min(ends, nowMs)).toISOString(),
      });
    }
  }

  /** Windows open now. */
  get size(): number {
    return this.windows.size;
  }

  /** Refusals counted and not yet written. */
  get pending(): number {
    let n = 0;
    for (const w of this.windows.values()) n += w.count;
    return n;
  }
}

function keyOf(entry: AuditEntry, address: string): string {
  // By the per-address limit's key: an IPv6 client holds its whole /64.
  return `${addressKey(address)}\0${entry.outcome}\0${reasonClass(entry.reason ?? '')}`;
}

/**
 * A reason with what the client chose taken out: quoted values (a token's issuer, a claim)
 * are one class, so one address cannot open a window (and an immediate record) per value.
 */
export function reasonClass(reason: string): string {
  return reason.replace(/"[^"]*"/g, '"…"').slice(0, 256);
}
