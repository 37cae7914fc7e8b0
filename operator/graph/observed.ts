/**
 * Observed call edges (caller service → destination service) from the sidecars' reports, over
 * a sliding window: each edge keeps its counts in time slots, and what is read back is the sum
 * of the slots still inside the window. Pure (the time is passed in).
 *
 * Bounded: at most `maxEdges` edges are held; a new edge past the bound evicts the one reported
 * least recently (a Map keeps insertion order, and every report re-inserts its edge), and the
 * eviction is counted so it shows in metrics. An edge with nothing left in its window is gone.
 */
import { CALL_LATENCY_BUCKETS_MS } from '../../common/wire.js';
import type { ReportedEdge } from '../../common/wire.js';
import type { ServiceRef } from '../../common/policy/acl.js';

/** How many slots a window is cut into: rates move in steps of a tenth of the window. */
const SLOTS = 10;

interface Slot {
  /** The slot's number: floor(time / slotMs). */
  index: number;
  calls: number;
  errors: number;
  latency: number[];
}

interface HeldEdge {
  source: ServiceRef;
  destination: ServiceRef;
  /** Oldest first; at most SLOTS, all within the window of the last report. */
  slots: Slot[];
}

/** An edge's totals over the window. */
export interface ObservedEdge {
  source: ServiceRef;
  destination: ServiceRef;
  calls: number;
  errors: number;
  /** Calls per bucket of `CALL_LATENCY_BUCKETS_MS` (and the overflow bucket). */
  latency: number[];
}

export interface ObservedEdgesOptions {
  maxEdges: number;
  /**
   * Destinations one caller may have at once: a caller reporting more cannot evict everyone
   * else's edges; its extra destinations are refused (counted) until some leave the window.
   */
  maxEdgesPerSource: number;
  windowMs: number;
}

const keyOf = (source: ServiceRef, destination: ServiceRef): string =>
  `${source.namespace}/${source.name}>${destination.namespace}/${destination.name}`;

export class ObservedEdges {
  private readonly edges = new Map<string, HeldEdge>();
  private readonly slotMs: number;
  private readonly perSource = new Map<string, number>();
  /** Edges dropped to stay within `maxEdges`. */
  evictions = 0;
  /** New edges refused because their caller already had `maxEdgesPerSource`. */
  refused = 0;

  constructor(private readonly opts: ObservedEdgesOptions) {
    this.slotMs = Math.max(1, Math.floor(opts.windowMs / SLOTS));
  }

  /** Edges held now (some may have nothing left in their window until the next read). */
  get size(): number {
    return this.edges.size;
  }

  /**
   * Adds one report's counts for `source` → `edge.destination`, received at `now`; false when
   * the edge is new and its caller is at `maxEdgesPerSource`.
   */
  record(source: ServiceRef, edge: ReportedEdge, now: number): boolean {
    const key = keyOf(source, edge.destination);
    let held = this.edges.get(key);
    if (held === undefined) {
      if (edge.calls === 0) return true;
      const sourceKey = `${source.namespace}/${source.name}`;
      if ((this.perSource.get(sourceKey) ?? 0) >= this.opts.maxEdgesPerSource) {
        this.refused += 1;
        return false;
      }
      while (this.edges.size >= this.opts.maxEdges) {
        const oldest = this.edges.entries().next();
        if (oldest.done === true) break;
        this.remove(oldest.value[0], oldest.value[1]);
        this.evictions += 1;
      }
      this.perSource.set(sourceKey, (this.perSource.get(sourceKey) ?? 0) + 1);
      held = {
        source: { namespace: source.namespace, name: source.name },
        destination: { namespace: edge.destination.namespace, name: edge.destination.name },
        slots: [],
      };
    } else {
      this.edges.delete(key); // re-inserted below: the most recently reported goes last
    }
    this.edges.set(key, held);
    const index = Math.floor(now / this.slotMs);
    let slot = held.slots.at(-1);
    if (slot?.index !== index) {
      slot = {
        index,
        calls: 0,
        errors: 0,
        latency: new Array<number>(edge.latencyMs.length).fill(0),
      };
      held.slots.push(slot);
    }
    slot.calls += edge.calls;
    slot.errors += edge.errors;
    edge.latencyMs.forEach((n, i) => {
      slot.latency[i] = (slot.latency[i] ?? 0) + n;
    });
    this.prune(held, index);
    return true;
  }

  private remove(key: string, held: HeldEdge): void {
    this.edges.delete(key);
    const sourceKey = `${held.source.namespace}/${held.source.name}`;
    const left = (this.perSource.get(sourceKey) ?? 1) - 1;
    if (left <= 0) this.perSource.delete(sourceKey);
    else this.perSource.set(sourceKey, left);
  }

  /** Every edge's totals over the window ending at `now`; edges with none left are dropped. */
  read(now: number): ObservedEdge[] {
    const index = Math.floor(now / this.slotMs);
    const out: ObservedEdge[] = [];
    for (const [key, held] of this.edges) {
      this.prune(held, index);
      if (held.slots.length === 0) {
        this.remove(key, held);
        continue;
      }
      const latency = new Array<number>(CALL_LATENCY_BUCKETS_MS.length + 1).fill(0);
      let calls = 0;
      let errors = 0;
      for (const slot of held.slots) {
        calls += slot.calls;
        errors += slot.errors;
        slot.latency.forEach((n, i) => {
          latency[i] = (latency[i] ?? 0) + n;
        });
      }
      out.push({ source: held.source, destination: held.destination, calls, errors, latency });
    }
    return out;
  }

  /** Forgets the edges with nothing left in the window ending at `now`; how many are held. */
  sweep(now: number): number {
    const index = Math.floor(now / this.slotMs);
    for (const [key, held] of this.edges) {
      this.prune(held, index);
      if (held.slots.length === 0) this.remove(key, held);
    }
    return this.edges.size;
  }

  /** Drops the slots that have left the window ending in slot `index`. */
  private prune(held: HeldEdge, index: number): void {
    const first = held.slots.findIndex((s) => s.index > index - SLOTS);
    if (first === -1) held.slots.length = 0;
    else if (first > 0) held.slots.splice(0, first);
  }
}
