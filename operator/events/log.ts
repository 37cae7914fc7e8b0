/**
 * The event log: assigns sequence numbers, keeps the last `capacity` events for `since=SEQ`
 * resumption, and fans out to subscribers. Pure (the clock is injected).
 *
 * Heartbeat events are frequent and worthless to replay, so they are not stored and do not
 * advance the sequence: they carry the sequence of the last stored event, which keeps
 * "resume from the last seq you saw" exact for everything else.
 */
import { RESYNC_TYPES } from '../../common/wire.js';
import type { MaxineEvent } from '../../common/wire.js';
import type { Clock } from '../registry/clock.js';
import type { RegistryEventDraft } from '../registry/registry.js';

export type EventListener = (event: MaxineEvent) => void;

export class EventLog {
  private readonly ring: (MaxineEvent | undefined)[];
  private seq = 0;
  private stored = 0;
  private readonly listeners = new Set<EventListener>();

  /**
   * `startSeq` is where numbering starts. The operator starts it at its start time in
   * microseconds, so a restarted operator numbers above anything its predecessor handed
   * out, and a client resuming with an old `since` gets a resync rather than a wrong replay.
   */
  constructor(
    private readonly capacity: number,
    private readonly clock: Clock,
    startSeq = 0,
  ) {
    this.ring = new Array<MaxineEvent | undefined>(capacity);
    this.seq = startSeq;
    this.base = startSeq;
  }

  private readonly base: number;

  get lastSeq(): number {
    return this.seq;
  }

  /** The oldest sequence number still held (lastSeq + 1 when empty). */
  get firstSeq(): number {
    return this.seq - Math.min(this.stored, this.capacity) + 1;
  }

  /** Whether `since` is a sequence this log can continue from (not too old, not ahead). */
  canResumeFrom(since: number): boolean {
    return since <= this.seq && since + 1 >= this.firstSeq && since >= this.base;
  }

  append(draft: RegistryEventDraft): MaxineEvent {
    const ephemeral = draft.type === 'service_heartbeat';
    if (!ephemeral) this.seq += 1;
    const event: MaxineEvent = {
      seq: this.seq,
      time: new Date(this.clock.now()).toISOString(),
      ...draft,
    };
    if (!ephemeral) {
      this.ring[this.seq % this.capacity] = event;
      this.stored += 1;
    }
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Events after `seq`, or `undefined` when some of them are no longer held. */
  since(seq: number): MaxineEvent[] | undefined {
    if (!this.canResumeFrom(seq)) return undefined;
    if (seq === this.seq) return [];
    const out: MaxineEvent[] = [];
    for (let s = seq + 1; s <= this.seq; s++) {
      const event = this.ring[s % this.capacity];
      if (event !== undefined) out.push(event);
    }
    return out;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}

/** Which events a subscriber asked for. */
export class EventFilter {
  private readonly exact = new Set<string>();
  private readonly exactNamespaces = new Set<string>();
  private readonly namespaces = new Set<string>();
  private readonly names = new Set<string>();
  private readonly anyService: boolean;
  private readonly types: ReadonlySet<string> | undefined;

  constructor(services?: readonly string[], types?: readonly string[]) {
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

  matches(event: MaxineEvent): boolean {
    if (RESYNC_TYPES.has(event.type)) return true;
    if (this.types === undefined ? event.type === 'service_heartbeat' : !this.types.has(event.type))
      return false;
    if (event.service === undefined) return true;
    const { namespace, name } = event.service;
    if (name === '*' || namespace === '*') return this.touchesNamespace(namespace);
    return this.matchesService(namespace, name);
  }
}
