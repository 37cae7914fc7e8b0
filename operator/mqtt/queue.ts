/**
 * The bridge's publish queue, bounded by count and bytes. While the broker is away events
 * wait here; past a bound the oldest event goes (a newer event says more about now than an
 * older one), and the drop is counted. Retained state messages are keyed by topic: a newer
 * state for the same service replaces the queued one (coalescing), so they never pile up.
 */
export interface Publication {
  topic: string;
  payload: string;
  retain: boolean;
}

export interface QueueBounds {
  messages: number;
  bytes: number;
}

export class PublishQueue {
  private items: (Publication | undefined)[] = [];
  private head = 0;
  private heldBytes = 0;
  /** Index of a queued retained message by topic. */
  private readonly retainedAt = new Map<string, number>();
  /** Messages dropped to stay within the bounds. */
  dropped = 0;

  constructor(private readonly bounds: QueueBounds) {}

  private holes = 0;

  get size(): number {
    return this.items.length - this.head - this.holes;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** Queues a message; returns how many older messages were dropped to make room. */
  push(p: Publication): number {
    if (p.retain) {
      const at = this.retainedAt.get(p.topic);
      if (at !== undefined) {
        const old = this.items[at];
        if (old !== undefined) this.heldBytes -= sizeOf(old);
        this.items[at] = undefined;
        this.holes += 1;
      }
      this.retainedAt.set(p.topic, this.items.length);
    }
    this.items.push(p);
    this.heldBytes += sizeOf(p);
    let dropped = 0;
    while (
      (this.size > this.bounds.messages || this.heldBytes > this.bounds.bytes) &&
      this.size > 0
    ) {
      this.shift();
      dropped += 1;
    }
    this.dropped += dropped;
    return dropped;
  }

  /** The oldest message, removed from the queue. */
  shift(): Publication | undefined {
    while (this.head < this.items.length) {
      const at = this.head;
      const p = this.items[at];
      this.items[at] = undefined;
      this.head += 1;
      if (p === undefined) {
        this.holes -= 1;
        continue;
      }
      this.heldBytes -= sizeOf(p);
      if (p.retain && this.retainedAt.get(p.topic) === at) this.retainedAt.delete(p.topic);
      this.compact();
      return p;
    }
    return undefined;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
      this.holes = 0;
      this.retainedAt.clear();
      return;
    }
    if (this.head < 1024) return;
    const kept: (Publication | undefined)[] = [];
    this.retainedAt.clear();
    for (let i = this.head; i < this.items.length; i++) {
      const p = this.items[i];
      if (p === undefined) continue;
      if (p.retain) this.retainedAt.set(p.topic, kept.length);
      kept.push(p);
    }
    this.items = kept;
    this.head = 0;
    this.holes = 0;
  }
}

function sizeOf(p: Publication): number {
  return p.topic.length + p.payload.length;
}
