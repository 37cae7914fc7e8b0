/**
 * Which reported circuit transitions become events, and when (pure; time is passed in). Each
 * caller service may turn 10 transitions a second into events (burst 200), so one reporter
 * cannot flood the event log. Past its rate a transition is held, not dropped: held
 * transitions are coalesced per circuit — (caller, its pod, destination, instance) — into one
 * carrying the first `from` and the latest `to`, and released in arrival order as the
 * caller's tokens refill. An intermediate state may be skipped; the last state of every
 * circuit is always emitted. A coalesced transition that comes back where it started
 * (closed → open → closed) is no change for subscribers and is dropped.
 *
 * Held circuits are bounded (`maxHeld`); a transition for a new circuit past the bound is
 * refused (the caller counts and logs it), a newer state of a held circuit never is.
 */
import { RateLimiter } from '../../common/policy/rate-limit.js';
import type { BucketLimits } from '../../common/policy/rate-limit.js';
import type { RegistryEventDraft } from '../../common/wire.js';

export type CircuitEvent = Extract<RegistryEventDraft, { type: 'circuit_state_changed' }>;

export const CIRCUIT_EVENT_LIMIT: BucketLimits = { requestsPerSecond: 10, burst: 200 };
/** Circuits held at once over all callers: 64 transitions a report, so ~150 floods at once. */
export const MAX_HELD_CIRCUITS = 10_000;

export interface GateOutcome {
  /** To emit now, in order. */
  emit: CircuitEvent[];
  /** Held for later (a new held circuit, or coalesced into a held one). */
  held: number;
  /** Refused: a new circuit past `maxHeld`. */
  refused: number;
}

interface Held {
  caller: string;
  event: CircuitEvent;
}

function circuitKey(caller: string, e: CircuitEvent): string {
  const s = e.service;
  return [caller, e.data.reporter.pod ?? '', s.namespace, s.name, e.data.instanceId ?? ''].join(
    '\u0000',
  );
}

export class CircuitEventGate {
  private readonly buckets = new RateLimiter(10_000);
  private readonly held = new Map<string, Held>();
  /** Held transitions replaced by a later one of the same circuit. */
  coalesced = 0;
  /** Held circuits that came back to their first state (nothing to emit). */
  settled = 0;

  constructor(
    private readonly limits: BucketLimits = CIRCUIT_EVENT_LIMIT,
    private readonly maxHeld = MAX_HELD_CIRCUITS,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** The transitions `caller` (a service, `namespace/name`) reported, in the order seen. */
  offer(caller: string, events: readonly CircuitEvent[], nowMs: number): GateOutcome {
    const out: GateOutcome = { emit: [], held: 0, refused: 0 };
    for (const event of events) {
      const key = circuitKey(caller, event);
      const pending = this.held.get(key);
      if (pending !== undefined) {
        // A held circuit keeps its place: the newer state replaces the held one.
        this.coalesce(key, pending, event);
        out.held += 1;
      } else if (this.buckets.take(caller, this.limits, nowMs).allowed) {
        out.emit.push(event);
      } else if (this.held.size >= this.maxHeld) {
        out.refused += 1;
      } else {
        this.held.set(key, { caller, event });
        out.held += 1;
      }
    }
    return out;
  }

  /** Held transitions whose caller has tokens again, oldest first. */
  release(nowMs: number): CircuitEvent[] {
    const out: CircuitEvent[] = [];
    const exhausted = new Set<string>();
    for (const [key, h] of this.held) {
      if (exhausted.has(h.caller)) continue;
      if (!this.buckets.take(h.caller, this.limits, nowMs).allowed) {
        exhausted.add(h.caller);
        continue;
      }
      this.held.delete(key);
      out.push(h.event);
    }
    return out;
  }

  private coalesce(key: string, pending: Held, next: CircuitEvent): void {
    this.coalesced += 1;
    const from = pending.event.data.from;
    if (next.data.to === from) {
      this.held.delete(key);
      this.settled += 1;
      return;
    }
    pending.event = {
      ...next,
      data: { ...next.data, from },
    };
  }
}
