/**
 * Circuit breakers of the outbound proxy (issue 14), driven by `spec.circuitBreaker` of the
 * destination. Pure apart from the injected clock: every call takes `now` (ms).
 *
 * Per instance: `closed` → `open` after `failureThreshold` consecutive failures (a 5xx
 * response, connect-failure, reset, timeout; any other status, 4xx included, is a success and
 * resets the count). Open for `openSeconds` × `backoffMultiplier`^(n-1) on the n-th opening in
 * a row, at most `maxOpenSeconds` (default: 300, or `openSeconds` if longer). When that time
 * has passed, the next `admit` turns it `half-open` and lets `halfOpenProbes` tries through,
 * one slot each: all succeed → `closed` (the open time starts from `openSeconds` again); one
 * fails → `open` again, for the next, longer time. A probe whose outcome never arrives frees
 * its slot after the last open time has passed once more, so a lost `record` cannot wedge the
 * circuit half-open. Outcomes of tries admitted before the circuit opened do not touch an open
 * circuit.
 *
 * Per service (the breaker without `instanceId`): derived, never blocking on its own. It is
 * `open` when every known instance of the service is open, `half-open` when none is closed and
 * some are half-open, `closed` otherwise. The known instances are those of the last `retain`
 * (the service's membership; an instance never tried counts as closed), or, before any
 * `retain`, the instances tried so far (successes included). When it is open every `admit` is false, and the
 * engine answers 503.
 *
 * Without `spec.circuitBreaker` nothing is broken: `admit` is always true, like the mesh
 * renders no outlier detection then; circuits of a destination whose spec lost its
 * `circuitBreaker` are closed (with a transition each) and forgotten.
 *
 * Bounded: at most `maxDestinations` destinations and `maxInstances` instances per
 * destination; past that the least recently used closed entry is forgotten (it holds only a
 * failure count), else the least recently used one at all: logged, and announced as closed so
 * listeners do not keep an open circuit nobody tracks. Instances that left the service are
 * forgotten by `retain`.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { effectiveMaxOpenSeconds } from '../../common/resources.js';
import type { ServiceSpec } from '../../common/resources.js';
import type { ServiceRef } from '../../common/wire.js';
import type { AttemptOutcome, BreakerState, BreakerTransition, CircuitBreakers } from './hooks.js';

export type BreakerSpec = NonNullable<ServiceSpec['circuitBreaker']>;

export interface CircuitBreakerOptions {
  readonly log: Logger;
  /** Where the metrics go; none registered when absent. */
  readonly registry?: PromRegistry;
  /**
   * Told of every transition, instance or service level (e.g. to emit `circuit_state_changed`).
   * Called synchronously on the call path: it must only queue work; a throw is logged.
   */
  readonly onTransition?: (t: BreakerTransition) => void;
  /** Destinations tracked at most (default 256). */
  readonly maxDestinations?: number;
  /** Instances tracked per destination at most (default 256). */
  readonly maxInstances?: number;
}

interface Circuit {
  state: BreakerState;
  /** Consecutive failures while closed. */
  failures: number;
  /** Openings in a row since the circuit was last closed. */
  opens: number;
  openMs: number;
  /** When an open circuit may turn half-open. */
  openUntil: number;
  /** Half-open probe slots taken, and how many of those succeeded. */
  probes: number;
  probeSuccesses: number;
  /** When outstanding probes are presumed lost and their slots freed. */
  probeDeadline: number;
}

interface Destination {
  readonly ref: ServiceRef;
  readonly circuits: Map<string, Circuit>;
  /** The service's instances as of the last `retain`; undefined before one. */
  members: Set<string> | undefined;
  serviceState: BreakerState;
}

type EvictReason = 'lru-closed' | 'lru-open' | 'left';

function keyOf(ref: ServiceRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Log fields naming the destination (docs/operations.md, "Log fields"). */
function named(ref: ServiceRef): { kind: 'MaxineService'; namespace: string; name: string } {
  return { kind: 'MaxineService', namespace: ref.namespace, name: ref.name };
}

/** Whether an outcome counts against the circuit: 5xx or no response at all. */
export function isBreakerFailure(outcome: AttemptOutcome): boolean {
  return outcome.kind !== 'response' || outcome.status >= 500;
}

/** Open time of the `opens`-th opening in a row, in ms. */
export function openTimeMs(spec: BreakerSpec, opens: number): number {
  const max = effectiveMaxOpenSeconds(spec);
  const seconds = spec.openSeconds * spec.backoffMultiplier ** Math.max(0, opens - 1);
  return Math.round(Math.min(seconds, max) * 1000);
}

function outcomeText(outcome: AttemptOutcome): string {
  return outcome.kind === 'response'
    ? `HTTP ${outcome.status}`
    : `${outcome.kind}: ${outcome.message}`;
}

function newCircuit(): Circuit {
  return {
    state: 'closed',
    failures: 0,
    opens: 0,
    openMs: 0,
    openUntil: 0,
    probes: 0,
    probeSuccesses: 0,
    probeDeadline: 0,
  };
}

/** Moves `key` to the most recently used end of a Map. */
function touch<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
}

export class Breakers implements CircuitBreakers {
  private readonly destinations = new Map<string, Destination>();
  private readonly log: Logger;
  private readonly onTransition: (t: BreakerTransition) => void;
  private readonly maxDestinations: number;
  private readonly maxInstances: number;
  private readonly transitions: Counter<'level' | 'to'> | undefined;
  private readonly evictions: Counter<'reason'> | undefined;

  constructor(options: CircuitBreakerOptions) {
    this.log = options.log;
    this.onTransition = options.onTransition ?? (() => undefined);
    // 256 × 256 circuits of ~200 bytes: at most ~13 MB, whatever the app calls.
    this.maxDestinations = options.maxDestinations ?? 256;
    this.maxInstances = options.maxInstances ?? 256;
    const registry = options.registry;
    if (registry === undefined) return;
    this.transitions = new Counter({
      name: 'maxine_sidecar_circuit_transitions_total',
      help: 'Circuit breaker transitions of the outbound proxy, by level (instance, service) and new state',
      labelNames: ['level', 'to'],
      registers: [registry],
    });
    this.evictions = new Counter({
      name: 'maxine_sidecar_circuit_evictions_total',
      help: 'Circuits forgotten: least recently used past the bounds (lru-closed, lru-open) or instance left the service (left)',
      labelNames: ['reason'],
      registers: [registry],
    });
    const counts = (): Record<string, number> => this.counts();
    new Gauge({
      name: 'maxine_sidecar_open_circuits',
      help: 'Circuits not closed, by level (instance, service) and state (open, half-open)',
      labelNames: ['level', 'state'],
      registers: [registry],
      collect() {
        const c = counts();
        for (const level of ['instance', 'service'])
          for (const state of ['open', 'half-open'])
            this.set({ level, state }, c[`${level}/${state}`] ?? 0);
      },
    });
    new Gauge({
      name: 'maxine_sidecar_circuits_tracked',
      help: 'Circuit breaker entries held, by kind (destinations, instances)',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const c = counts();
        this.set({ kind: 'destinations' }, c.destinations ?? 0);
        this.set({ kind: 'instances' }, c.instances ?? 0);
      },
    });
  }

  admit(
    destination: ServiceRef,
    instanceId: string,
    spec: ServiceSpec['circuitBreaker'],
    now: number,
  ): boolean {
    if (spec === undefined) {
      this.dropDestination(destination, now);
      return true;
    }
    const dest = this.destinations.get(keyOf(destination));
    const circuit = dest?.circuits.get(instanceId);
    if (dest === undefined || circuit === undefined) return true;
    touch(dest.circuits, instanceId, circuit);
    switch (circuit.state) {
      case 'closed':
        return true;
      case 'open':
        if (now < circuit.openUntil) return false;
        this.move(dest, instanceId, circuit, {
          to: 'half-open',
          now,
          why: 'its open time elapsed',
        });
        return this.takeProbe(circuit, spec, now);
      case 'half-open':
        return this.takeProbe(circuit, spec, now);
    }
  }

  // The five parameters are the CircuitBreakers interface's (hooks.ts).
  // eslint-disable-next-line max-params
  record(
    destination: ServiceRef,
    instanceId: string,
    outcome: AttemptOutcome,
    spec: ServiceSpec['circuitBreaker'],
    now: number,
  ): void {
    if (spec === undefined) {
      this.dropDestination(destination, now);
      return;
    }
    const known = this.destinations.get(keyOf(destination));
    let circuit = known?.circuits.get(instanceId);
    // With the membership known (`retain`), a closed circuit without failures needs no entry;
    // without it, the entry is how the service-level breaker knows the instance exists.
    if (circuit === undefined && known?.members !== undefined && !isBreakerFailure(outcome)) return;
    const dest = this.destination(destination, now);
    if (circuit === undefined) circuit = this.addCircuit(dest, instanceId, now);
    else touch(dest.circuits, instanceId, circuit);
    if (circuit.state === 'closed')
      this.recordClosed(dest, instanceId, circuit, { outcome, spec, now });
    else if (circuit.state === 'half-open')
      this.recordHalfOpen(dest, instanceId, circuit, { outcome, spec, now });
  }

  state(destination: ServiceRef, instanceId?: string): BreakerState {
    const dest = this.destinations.get(keyOf(destination));
    if (dest === undefined) return 'closed';
    if (instanceId === undefined) return dest.serviceState;
    return dest.circuits.get(instanceId)?.state ?? 'closed';
  }

  /**
   * The service's instances now: circuits of instances not listed are forgotten (they left),
   * and the list is the membership the service-level breaker is judged on.
   */
  retain(destination: ServiceRef, instanceIds: Iterable<string>, now: number): void {
    const key = keyOf(destination);
    const members = new Set(instanceIds);
    let dest = this.destinations.get(key);
    if (dest === undefined) {
      if (members.size === 0) return;
      dest = this.destination(destination, now);
    }
    dest.members = members;
    for (const id of [...dest.circuits.keys()]) {
      if (members.has(id)) continue;
      dest.circuits.delete(id);
      this.evictions?.inc({ reason: 'left' });
    }
    this.updateService(dest, now, 'its instances changed');
    if (members.size === 0) this.destinations.delete(key);
  }

  /** The destinations with circuits, for refreshing their membership after a snapshot. */
  tracked(): ServiceRef[] {
    return [...this.destinations.values()].map((d) => d.ref);
  }

  /** Whether circuits of `destination` are kept (it was called, or `retain`ed). */
  isTracked(destination: ServiceRef): boolean {
    return this.destinations.has(keyOf(destination));
  }

  /** Forgets a destination (the service is gone), closing its circuits. */
  forget(destination: ServiceRef, now: number): void {
    this.retain(destination, [], now);
  }

  private takeProbe(circuit: Circuit, spec: BreakerSpec, now: number): boolean {
    if (circuit.probes >= spec.halfOpenProbes) {
      if (now < circuit.probeDeadline) return false;
      circuit.probes = circuit.probeSuccesses; // outstanding probes presumed lost
      if (circuit.probes >= spec.halfOpenProbes) return false;
    }
    circuit.probes++;
    circuit.probeDeadline = now + Math.max(circuit.openMs, 1);
    return true;
  }

  private recordClosed(dest: Destination, id: string, circuit: Circuit, r: RecordArgs): void {
    if (!isBreakerFailure(r.outcome)) {
      circuit.failures = 0;
      return;
    }
    circuit.failures++;
    if (circuit.failures < r.spec.failureThreshold) return;
    this.open(dest, id, circuit, {
      ...r,
      why: `${circuit.failures} consecutive failures (last: ${outcomeText(r.outcome)})`,
    });
  }

  private recordHalfOpen(dest: Destination, id: string, circuit: Circuit, r: RecordArgs): void {
    if (isBreakerFailure(r.outcome)) {
      this.open(dest, id, circuit, {
        ...r,
        why: `a half-open probe failed (${outcomeText(r.outcome)})`,
      });
      return;
    }
    circuit.probeSuccesses++;
    if (circuit.probeSuccesses < r.spec.halfOpenProbes) return;
    circuit.failures = 0;
    circuit.opens = 0;
    this.move(dest, id, circuit, {
      to: 'closed',
      now: r.now,
      why: `${circuit.probeSuccesses} half-open probe(s) succeeded`,
    });
  }

  private open(
    dest: Destination,
    id: string,
    circuit: Circuit,
    r: RecordArgs & { why: string },
  ): void {
    circuit.opens++;
    circuit.openMs = openTimeMs(r.spec, circuit.opens);
    circuit.openUntil = r.now + circuit.openMs;
    circuit.failures = 0;
    this.move(dest, id, circuit, { to: 'open', now: r.now, why: r.why });
  }

  private move(dest: Destination, id: string, circuit: Circuit, m: Move): void {
    const from = circuit.state;
    circuit.state = m.to;
    circuit.probes = 0;
    circuit.probeSuccesses = 0;
    this.announce({
      destination: dest.ref,
      instanceId: id,
      from,
      to: m.to,
      ...(m.to === 'open' ? { openMs: circuit.openMs } : {}),
      at: m.now,
      why: m.why,
    });
    this.updateService(dest, m.now, `instance ${id} is ${m.to}`);
  }

  /** Re-derives the service-level state and announces a change. */
  private updateService(dest: Destination, now: number, why: string): void {
    const ids = dest.members ?? dest.circuits.keys();
    let members = 0;
    let open = 0;
    let halfOpen = 0;
    let firstRetry = Infinity;
    for (const id of ids) {
      members++;
      const c = dest.circuits.get(id);
      if (c?.state === 'open') {
        open++;
        firstRetry = Math.min(firstRetry, c.openUntil);
      } else if (c?.state === 'half-open') halfOpen++;
    }
    const to: BreakerState =
      members > 0 && open === members
        ? 'open'
        : members > 0 && open + halfOpen === members
          ? 'half-open'
          : 'closed';
    if (to === dest.serviceState) return;
    const from = dest.serviceState;
    dest.serviceState = to;
    this.announce({
      destination: dest.ref,
      from,
      to,
      ...(to === 'open' ? { openMs: Math.max(0, firstRetry - now) } : {}),
      at: now,
      why,
    });
  }

  private announce(t: BreakerTransition & { why: string }): void {
    const { why, ...transition } = t;
    const level = t.instanceId === undefined ? 'service' : 'instance';
    this.transitions?.inc({ level, to: t.to });
    const service = keyOf(t.destination);
    const subject = t.instanceId === undefined ? service : `${service} instance ${t.instanceId}`;
    const fields = {
      ...named(t.destination),
      instance: t.instanceId,
      scope: level, // not `level`: pino's own field
      from: t.from,
      to: t.to,
      openMs: t.openMs,
      reason: why,
    };
    const msg = `circuit of ${subject}: ${t.from} → ${t.to} because ${why}`;
    if (t.to === 'open') this.log.warn(fields, msg);
    else this.log.info(fields, msg);
    try {
      this.onTransition(transition);
    } catch (err) {
      this.log.error({ err, ...named(t.destination) }, 'the circuit transition listener failed');
    }
  }

  /** The destination's entry, created (and the map kept bounded) when missing. */
  private destination(ref: ServiceRef, now: number): Destination {
    const key = keyOf(ref);
    const found = this.destinations.get(key);
    if (found !== undefined) {
      touch(this.destinations, key, found);
      return found;
    }
    if (this.destinations.size >= this.maxDestinations) this.evictDestination(now);
    const dest: Destination = {
      ref: { namespace: ref.namespace, name: ref.name },
      circuits: new Map(),
      members: undefined,
      serviceState: 'closed',
    };
    this.destinations.set(key, dest);
    return dest;
  }

  private evictDestination(now: number): void {
    const closed = [...this.destinations].find(
      ([, d]) => d.serviceState === 'closed' && allClosed(d),
    );
    const [key, dest] = closed ?? this.destinations.entries().next().value ?? [];
    if (key === undefined || dest === undefined) return;
    const reason: EvictReason = closed === undefined ? 'lru-open' : 'lru-closed';
    this.evictions?.inc({ reason });
    if (reason === 'lru-open') {
      this.log.warn(
        { ...named(dest.ref), maxDestinations: this.maxDestinations },
        `forgetting the circuits of ${key}: more than ${this.maxDestinations} destinations tracked and none all closed`,
      );
      this.closeAll(dest, now, `more than ${this.maxDestinations} destinations are tracked`);
    }
    this.destinations.delete(key);
  }

  private addCircuit(dest: Destination, id: string, now: number): Circuit {
    if (dest.circuits.size >= this.maxInstances) this.evictCircuit(dest, now);
    const circuit = newCircuit();
    dest.circuits.set(id, circuit);
    return circuit;
  }

  private evictCircuit(dest: Destination, now: number): void {
    const closed = [...dest.circuits].find(([, c]) => c.state === 'closed');
    const [victim, circuit] = closed ?? dest.circuits.entries().next().value ?? [];
    if (victim === undefined || circuit === undefined) return;
    const reason: EvictReason = closed === undefined ? 'lru-open' : 'lru-closed';
    this.evictions?.inc({ reason });
    if (reason === 'lru-open') {
      const service = keyOf(dest.ref);
      this.log.warn(
        { ...named(dest.ref), instance: victim, maxInstances: this.maxInstances },
        `forgetting the circuit of ${service} instance ${victim}: more than ${this.maxInstances} instances tracked and none closed`,
      );
      const why = `more than ${this.maxInstances} instances of the service are tracked`;
      this.move(dest, victim, circuit, { to: 'closed', now, why });
    }
    dest.circuits.delete(victim);
  }

  /** The spec has no circuitBreaker (any more): close what is open and forget it. */
  private dropDestination(ref: ServiceRef, now: number): void {
    const key = keyOf(ref);
    const dest = this.destinations.get(key);
    if (dest === undefined) return;
    this.closeAll(dest, now, 'the spec has no circuitBreaker');
    this.destinations.delete(key);
  }

  /** Closes every circuit of a destination about to be forgotten, announcing each. */
  private closeAll(dest: Destination, now: number, why: string): void {
    for (const [id, circuit] of dest.circuits)
      if (circuit.state !== 'closed') this.move(dest, id, circuit, { to: 'closed', now, why });
  }

  private counts(): Record<string, number> {
    const c: Record<string, number> = { destinations: this.destinations.size, instances: 0 };
    const bump = (k: string): void => {
      c[k] = (c[k] ?? 0) + 1;
    };
    for (const dest of this.destinations.values()) {
      c.instances = (c.instances ?? 0) + dest.circuits.size;
      if (dest.serviceState !== 'closed') bump(`service/${dest.serviceState}`);
      for (const circuit of dest.circuits.values())
        if (circuit.state !== 'closed') bump(`instance/${circuit.state}`);
    }
    return c;
  }
}

interface RecordArgs {
  readonly outcome: AttemptOutcome;
  readonly spec: BreakerSpec;
  readonly now: number;
}

interface Move {
  readonly to: BreakerState;
  readonly now: number;
  readonly why: string;
}

function allClosed(dest: Destination): boolean {
  for (const c of dest.circuits.values()) if (c.state !== 'closed') return false;
  return true;
}
