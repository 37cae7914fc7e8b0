/**
 * `--audit-allowed-reads aggregate` (pure; time is passed in): allowed discoveries are counted
 * per principal, `x-maxine-source` and service, and each key's count is written as one
 * `outcome: allowed` audit record with `count`, `from` and `to` when the owner flushes (every
 * `--audit-reads-interval-ms`, and on shutdown). Nothing is lost: the counts of all
 * records sum to the allowed discoveries. Refusals never come here (they are recorded one by
 * one).
 *
 * Counting is three Map lookups on strings the request already holds (the principal's id, the
 * header as sent, the path's `namespace/name`) and one increment: no record, no key string, no
 * allocation once a key is open. The keys are bounded (`maxKeys`): a read that would open one
 * more key flushes every open count early (each written as a record, the cache emptied), then
 * opens its key; `earlyFlushes` counts those.
 */
import type { AuditEntry } from '../telemetry/audit.js';
import { NO_SOURCE } from './discovery-cache.js';

interface Count {
  who: string;
  count: number;
  fromMs: number;
}

/** One aggregated record: which key, how many, over which span. */
export interface AllowedReadsEntry extends AuditEntry {
  /** Allowed discoveries this record stands for. */
  count: number;
  /** The first one counted and the flush (ISO times). */
  from: string;
  to: string;
  /** The `x-maxine-source` they were made with, when sent. */
  source?: string;
}

export class AllowedReadCounts {
  /** principal id → source header → service key `namespace/name` → count. */
  private byPrincipal = new Map<string, Map<string, Map<string, Count>>>();
  private keys = 0;
  /** Times the bound made every count be written before its interval ended. */
  earlyFlushes = 0;

  constructor(
    private readonly write: (entry: AllowedReadsEntry) => void,
    private readonly maxKeys: number,
    private readonly onEarlyFlush?: () => void,
  ) {}

  /**
   * Counts one allowed discovery of `service` (`namespace/name`) by `principal` (keyed by its id) as `source`
   * (the header as sent, NO_SOURCE without one).
   */
  add(
    principal: { readonly id: string; readonly who: string },
    source: string,
    service: string,
    nowMs: number,
  ): void {
    const count = this.byPrincipal.get(principal.id)?.get(source)?.get(service);
    if (count !== undefined) {
      count.count += 1;
      return;
    }
    if (this.keys >= this.maxKeys) {
      this.flush(nowMs);
      this.earlyFlushes += 1;
      this.onEarlyFlush?.();
    }
    let bySource = this.byPrincipal.get(principal.id);
    if (bySource === undefined)
      this.byPrincipal.set(principal.id, (bySource = new Map<string, Map<string, Count>>()));
    let byService = bySource.get(source);
    if (byService === undefined) bySource.set(source, (byService = new Map<string, Count>()));
    byService.set(service, { who: principal.who, count: 1, fromMs: nowMs });
    this.keys += 1;
  }

  /** Writes one record per open key and forgets them all. */
  flush(nowMs: number): void {
    if (this.keys === 0) return;
    const open = this.byPrincipal;
    this.byPrincipal = new Map();
    this.keys = 0;
    const to = new Date(nowMs).toISOString();
    for (const bySource of open.values()) {
      for (const [source, byService] of bySource) {
        for (const [service, c] of byService) {
          this.write({
            who: c.who,
            action: 'discover',
            object: `service ${service}`,
            outcome: 'allowed',
            ...(source !== NO_SOURCE && { source }),
            count: c.count,
            from: new Date(c.fromMs).toISOString(),
            to,
          });
        }
      }
    }
  }

  /** Keys counted now (principal, source, service). */
  get size(): number {
    return this.keys;
  }

  /** Allowed discoveries counted and not yet written. */
  get pending(): number {
    let n = 0;
    for (const bySource of this.byPrincipal.values())
      for (const byService of bySource.values()) for (const c of byService.values()) n += c.count;
    return n;
  }
}
