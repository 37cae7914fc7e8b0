/**
 * The event log: assigns sequence numbers, keeps the last events for `since=SEQ` resumption,
 * and fans out to subscribers. Pure (the clock is injected).
 *
 * The log is bounded by count and by bytes: each stored event is sized once, by its JSON
 * (what a stream sends), and the oldest events go when either bound is passed. A client
 * resuming from an evicted sequence gets a resync snapshot, as with any too-old `since`.
 *
 * Heartbeat events are frequent and worthless to replay, so they are not stored and do not
 * advance the sequence: they carry the sequence of the last stored event, which keeps
 * "resume from the last seq you saw" exact for everything else.
 *
 * Sequences are numbers of one log: each operator replica keeps its own, so the log has an
 * `epoch`, a name drawn when it is created. A stream sends it to its client (handshake header,
 * `resync_begin`), the client sends it back with `since=`, and a `since` of another epoch
 * (another replica, or a process before a restart) gets a snapshot, never a replay of this
 * log's events that happen to carry higher numbers. A store that kept the log (`persistTo`)
 * gives it back at the next start (`restore`): the same epoch continues, and a `since` from
 * before the restart replays.
 */
import { isoTime } from '../../common/iso-time.js';
import { randomBytes } from 'node:crypto';
import { sourcesNaming } from '../../common/policy/intentions.js';
import type { IntentionEntry, ServiceRef } from '../../common/policy/intentions.js';
import { RESYNC_TYPES } from '../../common/wire.js';
import type {
  Instance,
  MaxineEvent,
  RegistryEvent,
  RegistryEventDraft,
} from '../../common/wire.js';
import type { Clock } from '../registry/clock.js';

export type EventListener = (event: MaxineEvent) => void;

/**
 * Where the log keeps each stored event before any listener sees it (a store, so `since=`
 * survives a restart). Called with the event's JSON; it must not throw.
 */
export type EventSink = (event: RegistryEvent, json: string) => void;

export interface EventLogBounds {
  /** Events held at most. */
  events: number;
  /** Serialized bytes held at most (JSON length of the events). */
  bytes: number;
}

interface Held {
  event: MaxineEvent;
  bytes: number;
}

export class EventLog {
  private readonly ring: (Held | undefined)[];
  private readonly capacity: number;
  private readonly maxBytes: number;
  private seq = 0;
  /** The oldest sequence still held; seq + 1 when the log holds nothing. */
  private first: number;
  private heldBytes = 0;
  private readonly listeners = new Set<EventListener>();
  /** The listeners that take `service_heartbeat` events (subscribe's `heartbeats`). */
  private readonly heartbeatTakers = new Set<EventListener>();
  /** Events dropped to stay within the bounds, by which bound. */
  readonly evictions = { events: 0, bytes: 0 };
  /**
   * The JSON of the event being fanned out: every subscriber sends the same string, so it is
   * built once per event (and kept for that event only, not for the ring's lifetime); its
   * UTF-8 bytes likewise, once the first socket asks for them (`encoded`).
   */
  private lastJson:
    { event: MaxineEvent; json: string | undefined; bytes?: Buffer | undefined } | undefined;
  private sink: EventSink | undefined;

  /**
   * `startSeq` is where numbering starts. The operator starts it at its start time in
   * microseconds, so a restarted operator numbers above anything its predecessor handed
   * out, and a client resuming with an old `since` gets a resync rather than a wrong replay.
   * A number as `bounds` bounds the count only.
   */
  constructor(
    bounds: number | EventLogBounds,
    private readonly clock: Clock,
    startSeq = 0,
    epoch = newEpoch(),
  ) {
    this.epochNow = epoch;
    const b = typeof bounds === 'number' ? { events: bounds, bytes: Infinity } : bounds;
    this.capacity = b.events;
    this.maxBytes = b.bytes;
    this.ring = new Array<Held | undefined>(this.capacity);
    this.seq = startSeq;
    this.base = startSeq;
    this.first = startSeq + 1;
  }

  private base: number;
  private epochNow: string;

  /** What the log holds at most. */
  get bounds(): EventLogBounds {
    return { events: this.capacity, bytes: this.maxBytes };
  }

  /** The name of this log's numbering: a `since` is only valid with it. */
  get epoch(): string {
    return this.epochNow;
  }

  /**
   * Numbers the next events above `seq`, the sequence a store kept from the previous process
   * (operator/store/). Only before the first event: numbers already handed out stay. With
   * `epoch`, a store that also kept the events themselves continues that log's epoch.
   */
  continueAfter(seq: number, epoch?: string): void {
    if (this.seq !== this.base) throw new Error('continueAfter: events were already appended');
    if (epoch !== undefined) this.epochNow = epoch;
    if (seq <= this.seq) return;
    this.seq = seq;
    this.base = seq;
    this.first = seq + 1;
  }

  /**
   * Continues a log a store kept (operator/store/): its epoch and its events, numbered
   * consecutively after `after`. Only before the first event. The bounds apply, so a store
   * kept with larger bounds is cut to this log's.
   */
  restore(epoch: string, after: number, events: readonly RegistryEvent[]): void {
    if (this.seq !== this.base) throw new Error('restore: events were already appended');
    this.epochNow = epoch;
    this.ring.fill(undefined);
    this.heldBytes = 0;
    this.seq = after;
    this.base = after;
    this.first = after + 1;
    for (const event of events) {
      if (event.seq !== this.seq + 1) throw new Error(`restore: event ${event.seq} is not next`);
      this.seq = event.seq;
      this.store(event, JSON.stringify(event).length);
    }
  }

  /**
   * From now on, each stored event goes to `sink` before any listener sees it: what a client
   * was sent is what a store kept (a process killed after sending cannot lose it).
   */
  persistTo(sink: EventSink | undefined): void {
    this.sink = sink;
  }

  /** The events held now, oldest first (what a store writes when it compacts). */
  held(): RegistryEvent[] {
    const out: RegistryEvent[] = [];
    for (let s = this.first; s <= this.seq; s++) {
      const held = this.ring[s % this.capacity];
      if (held !== undefined) out.push(held.event as RegistryEvent);
    }
    return out;
  }

  /** The sequence numbered before the oldest event held (what `held()` continues). */
  get heldAfter(): number {
    return this.first - 1;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** The oldest sequence number still held (lastSeq + 1 when empty). */
  get firstSeq(): number {
    return this.first;
  }

  /** Events held now. */
  get size(): number {
    return this.seq - this.first + 1;
  }

  /** Serialized bytes of the events held now. */
  get bytes(): number {
    return this.heldBytes;
  }

  /**
   * Whether `since` is a sequence this log can continue from (not too old, not ahead, and of
   * this log when the client names the epoch it has it from).
   */
  canResumeFrom(since: number, epoch?: string): boolean {
    if (epoch !== undefined && epoch !== this.epochNow) return false;
    return since <= this.seq && since + 1 >= this.first && since >= this.base;
  }

  append(draft: RegistryEventDraft): RegistryEvent {
    const ephemeral = draft.type === 'service_heartbeat';
    if (!ephemeral) this.seq += 1;
    const event: RegistryEvent = {
      seq: this.seq,
      time: isoTime(this.clock.now()),
      ...draft,
    };
    // A heartbeat nobody subscribed to is never serialized (heartbeats are the hot write path).
    this.lastJson = { event, json: ephemeral ? undefined : JSON.stringify(event) };
    if (!ephemeral) this.keep(event, this.lastJson.json ?? '');
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /**
   * Appends an event numbered elsewhere (several operators sharing one store number their
   * events there, operator/store/redis-shared.ts). One not above lastSeq was seen already and
   * is ignored. A gap (events this log never held) starts the log afresh at this one, so a
   * `since` inside the gap gets a resync, never a replay with holes.
   */
  accept(event: RegistryEvent): void {
    if (event.seq <= this.seq) return;
    if (event.seq !== this.seq + 1) {
      this.ring.fill(undefined);
      this.heldBytes = 0;
      this.base = event.seq - 1;
      this.first = event.seq;
    }
    this.seq = event.seq;
    this.lastJson = { event, json: JSON.stringify(event) };
    this.keep(event, this.lastJson.json ?? '');
    for (const listener of this.listeners) listener(event);
  }

  /** The event as JSON text; built once for the event being fanned out. */
  serialized(event: MaxineEvent): string {
    const last = this.lastJson;
    if (last?.event !== event) return JSON.stringify(event);
    last.json ??= JSON.stringify(event);
    return last.json;
  }

  /**
   * The event as UTF-8 bytes, built once for the event being fanned out: every socket is
   * handed the same Buffer, where a string would be encoded again for each one.
   */
  encoded(event: MaxineEvent): Buffer {
    const last = this.lastJson;
    if (last?.event !== event) return Buffer.from(JSON.stringify(event));
    last.bytes ??= Buffer.from(this.serialized(event));
    return last.bytes;
  }

  private keep(event: RegistryEvent, json: string): void {
    this.store(event, json.length);
    // After the ring holds it (a sink that compacts reads a whole log), before any listener.
    this.sink?.(event, json);
  }

  private store(event: MaxineEvent, bytes: number): void {
    // `seq` already counts this event: past the capacity, the oldest shares its slot.
    if (this.size > this.capacity) this.evictOldest('events');
    this.ring[event.seq % this.capacity] = { event, bytes };
    this.heldBytes += bytes;
    // An event larger than the whole budget evicts everything, itself included.
    while (this.heldBytes > this.maxBytes && this.size > 0) this.evictOldest('bytes');
  }

  private evictOldest(reason: keyof EventLog['evictions']): void {
    const slot = this.first % this.capacity;
    const held = this.ring[slot];
    this.ring[slot] = undefined;
    if (held !== undefined) this.heldBytes -= held.bytes;
    this.first += 1;
    this.evictions[reason] += 1;
  }

  /**
   * Events after `seq`, or `undefined` when some of them are no longer held or `seq` is of
   * another log (`epoch`).
   */
  since(seq: number, epoch?: string): MaxineEvent[] | undefined {
    if (!this.canResumeFrom(seq, epoch)) return undefined;
    if (seq === this.seq) return [];
    const out: MaxineEvent[] = [];
    for (let s = seq + 1; s <= this.seq; s++) {
      const held = this.ring[s % this.capacity];
      if (held !== undefined) out.push(held.event);
    }
    return out;
  }

  /**
   * `heartbeats: false` says the listener ignores `service_heartbeat` events: when no listener
   * takes them, the registry builds none (wantsHeartbeats). It may still be handed one.
   */
  subscribe(listener: EventListener, opts: { heartbeats?: boolean } = {}): () => void {
    this.listeners.add(listener);
    if (opts.heartbeats ?? true) this.heartbeatTakers.add(listener);
    return () => {
      this.listeners.delete(listener);
      this.heartbeatTakers.delete(listener);
    };
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Whether any listener takes heartbeat events (else appending one is work for nobody). */
  get wantsHeartbeats(): boolean {
    return this.heartbeatTakers.size > 0;
  }
}

/** A fresh epoch: 72 random bits, URL-safe (what `epoch=` accepts). */
export function newEpoch(): string {
  return randomBytes(9).toString('base64url');
}

/** The instance fields a subscriber filters on (`version=`, `zone=`, `datacenter=`, `metadata=`). */
export interface InstanceCriteria {
  version?: string | undefined;
  zone?: string | undefined;
  datacenter?: string | undefined;
  /** Every pair must hold. */
  metadata?: Readonly<Record<string, string>> | undefined;
}

type FilteredFields = Pick<Instance, 'version' | 'zone' | 'datacenter' | 'metadata'>;

/** Whether `instance` has every field `criteria` names (an absent field never matches). */
export function instanceMatches(criteria: InstanceCriteria, instance: FilteredFields): boolean {
  if (criteria.version !== undefined && instance.version !== criteria.version) return false;
  if (criteria.zone !== undefined && instance.zone !== criteria.zone) return false;
  if (criteria.datacenter !== undefined && instance.datacenter !== criteria.datacenter)
    return false;
  for (const [key, value] of Object.entries(criteria.metadata ?? {}))
    if (!Object.hasOwn(instance.metadata, key) || instance.metadata[key] !== value) return false;
  return true;
}

/** The criteria that filter something, or undefined when none does. */
function effective(criteria: InstanceCriteria | undefined): InstanceCriteria | undefined {
  if (criteria === undefined) return undefined;
  const some =
    criteria.version !== undefined ||
    criteria.zone !== undefined ||
    criteria.datacenter !== undefined ||
    Object.keys(criteria.metadata ?? {}).length > 0;
  return some ? criteria : undefined;
}

/**
 * The instance filters of a subscriber, and how to find an instance an event names only by
 * id (a heartbeat, a circuit change the registry no longer knows the instance of).
 */
export interface InstanceSelection {
  criteria: InstanceCriteria;
  /** The instance with this id now (the registry); undefined when it is unknown. */
  lookup?: (id: string) => FilteredFields | undefined;
}

/** Which events a subscriber asked for. */
export class EventFilter {
  private readonly exact = new Set<string>();
  private readonly exactNamespaces = new Set<string>();
  private readonly namespaces = new Set<string>();
  private readonly names = new Set<string>();
  private readonly anyService: boolean;
  private readonly types: ReadonlySet<string> | undefined;

  /**
   * `caller`: intentions with a source matching this service are wanted whatever their
   * destination (the event stream's `caller=`).
   */
  private readonly criteria: InstanceCriteria | undefined;
  private readonly lookup: ((id: string) => FilteredFields | undefined) | undefined;

  constructor(
    services?: readonly string[],
    types?: readonly string[],
    private readonly caller?: ServiceRef,
    instances?: InstanceSelection,
  ) {
    this.criteria = effective(instances?.criteria);
    this.lookup = instances?.lookup;
    this.anyService = services === undefined || services.length === 0 || services.includes('*/*');
    for (const pattern of services ?? []) {
      const [ns, name] = pattern.split('/') as [string, string];
      if (ns === '*') this.names.add(name);
      else if (name === '*') this.namespaces.add(ns);
      else {
        this.exact.add(pattern);
        this.exactNamespaces.add(ns);
      }
    }
    this.types = types === undefined || types.length === 0 ? undefined : new Set(types);
  }

  matchesService(namespace: string, name: string): boolean {
    return (
      this.anyService ||
      this.exact.has(`${namespace}/${name}`) ||
      this.namespaces.has(namespace) ||
      this.names.has(name)
    );
  }

  /**
   * Policy events name a wildcard (`ns/*` for an ACL, `*` as an intention's destination):
   * they reach every subscriber that watches any service they may concern.
   */
  private touchesNamespace(namespace: string): boolean {
    return (
      this.anyService ||
      namespace === '*' ||
      this.namespaces.has(namespace) ||
      this.names.size > 0 ||
      this.exactNamespaces.has(namespace)
    );
  }

  /** Whether a service, or a pattern (`ns/*`, an intention's wildcard destination), concerns this subscriber. */
  matchesRef(namespace: string, name: string): boolean {
    if (name === '*' || namespace === '*') return this.touchesNamespace(namespace);
    return this.matchesService(namespace, name);
  }

  /** Whether an intention is wanted for naming the subscriber's `caller` among its sources. */
  namesCaller(entry: IntentionEntry): boolean {
    return this.caller !== undefined && sourcesNaming(entry, this.caller).length > 0;
  }

  /** Whether `service_heartbeat` events were asked for (`types=`; not sent by default). */
  get takesHeartbeats(): boolean {
    return this.types?.has('service_heartbeat') === true;
  }

  /** Whether instance filters were given (a snapshot then lists only matching instances). */
  get filtersInstances(): boolean {
    return this.criteria !== undefined;
  }

  /** Whether an instance passes the instance filters (all do without them). */
  matchesInstance(instance: FilteredFields): boolean {
    return this.criteria === undefined || instanceMatches(this.criteria, instance);
  }

  /**
   * The instance filters on one event: an event about one instance passes only when that
   * instance matches; one naming an instance only by id is judged by the instance the lookup
   * finds (none found: it does not pass). Events about a service as a whole pass.
   */
  private passesInstanceFilters(event: MaxineEvent): boolean {
    if (this.criteria === undefined) return true;
    if (event.instance !== undefined) return instanceMatches(this.criteria, event.instance);
    const id =
      event.type === 'service_heartbeat'
        ? event.data.id
        : event.type === 'circuit_state_changed'
          ? event.data.instanceId
          : undefined;
    if (id === undefined) return true;
    const found = this.lookup?.(id);
    return found !== undefined && instanceMatches(this.criteria, found);
  }

  matches(event: MaxineEvent): boolean {
    if (RESYNC_TYPES.has(event.type) || event.type === 'resync') return true;
    if (this.types === undefined ? event.type === 'service_heartbeat' : !this.types.has(event.type))
      return false;
    if (event.service === undefined) return true;
    if (!this.passesInstanceFilters(event)) return false;
    if (this.matchesRef(event.service.namespace, event.service.name)) return true;
    // An intention elsewhere that names the caller: the caller's scope may take its destination in.
    return (
      event.type === 'intention_changed' &&
      event.data.spec !== undefined &&
      this.namesCaller({ ...event.data.intention, spec: event.data.spec })
    );
  }
}
