/**
 * Discoveries already allowed, per principal (pure): a caller repeating a discovery — the same
 * principal object (the authenticator hands out one per cached token), the same
 * `x-maxine-source` header, the same service — skips the ACL, source and intention checks for
 * three Map lookups, with no key string built per request (issue 17: those checks and their
 * keys were ~4 µs of a secured discovery).
 *
 * Only allowed outcomes are kept: a refusal is decided, counted and audited afresh every time.
 * An entry also holds the services the principal's workload was known to be (`sourcesOf`,
 * itself cached with a TTL by its owner): when that answer is a new one, the entry does not
 * count. The owner clears the whole cache when the policy version moves, so a changed ACL or
 * intention decides the very next request. Bounded: at `maxEntries` everything is dropped
 * (and `overflows` counts it), as the ACL decision cache does.
 */

/** The `x-maxine-source` key of a request without one (a header value is never empty). */
export const NO_SOURCE = '\u0000';

export class DiscoveryDecisions<P extends object = object> {
  private byPrincipal = new Map<P, Map<string, Map<string, readonly unknown[]>>>();
  private entries = 0;
  /** Times the cache was emptied because it reached its bound. */
  overflows = 0;

  constructor(private readonly maxEntries: number) {}

  /** Whether `principal` discovering `service` as `source` was allowed with these `known` sources. */
  allowed(principal: P, source: string, service: string, known: readonly unknown[]): boolean {
    const kept = this.byPrincipal.get(principal)?.get(source)?.get(service);
    return kept !== undefined && (kept === known || (kept.length === 0 && known.length === 0));
  }

  remember(principal: P, source: string, service: string, known: readonly unknown[]): void {
    let byService = this.byPrincipal.get(principal)?.get(source);
    if (byService?.has(service) !== true) {
      if (this.entries >= this.maxEntries) {
        this.clear();
        this.overflows += 1;
        byService = undefined;
      }
      this.entries += 1;
    }
    if (byService === undefined) {
      let bySource = this.byPrincipal.get(principal);
      if (bySource === undefined)
        this.byPrincipal.set(
          principal,
          (bySource = new Map<string, Map<string, readonly unknown[]>>()),
        );
      bySource.set(source, (byService = new Map<string, readonly unknown[]>()));
    }
    byService.set(service, known);
  }

  clear(): void {
    this.byPrincipal = new Map();
    this.entries = 0;
  }

  /** Entries held (principal, source, service). */
  get size(): number {
    return this.entries;
  }
}
