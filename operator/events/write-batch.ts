/**
 * The writes of one turn of the event loop, batched per socket.
 *
 * Fanning an event out costs one write syscall per subscriber socket (`writev`, most of the
 * operator's time in bench/events-fanout.js: loopback TCP does the receiver's work in it
 * too). Events come in bursts: the requests read in one turn of the event loop append
 * theirs back to back, and with a syscall per event per socket a burst of k events to n
 * subscribers costs k × n syscalls. `hold` corks a socket for the rest of the turn (once, on
 * its first write in it) and `flush` uncorks every held socket in the check phase
 * (setImmediate) of the same turn, so each socket gets the turn's frames in one `writev`:
 * n syscalls per burst, and no write waits past the end of the turn it was made in.
 *
 * What a held socket keeps in memory is what the turn wrote to it, at most `flushBytes`
 * (64 KiB) and one more message: a turn that gives a socket more (a mass deregistration, a
 * replay) has it written out each time that much is buffered, so a huge turn costs what it
 * did unbatched, and the slow-consumer check (`bufferedAmount`, which counts held bytes)
 * sees no more than it did: before it judges a subscriber behind, it has the socket's held
 * bytes written out (`writeOut`), so a burst held for one write is never taken for lag. A socket closed or destroyed while held is uncorked harmlessly
 * (`end` uncorks on its own; `destroy` drops what was buffered).
 */
import type { Writable } from 'node:stream';
import { Counter } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';

/** What a held socket may buffer before it is written out within the turn. */
export const FLUSH_BYTES = 64 * 1024;

export class WriteBatch {
  /** At most one entry per open stream (bounded by the stream limits), emptied every turn. */
  private held = new Set<Writable>();
  private scheduled = false;
  /** Turns that flushed held sockets, and sockets uncorked in all. */
  readonly stats = { flushes: 0, sockets: 0 };
  private readonly turns: Counter;
  private readonly writes: Counter;

  /** `prom`: where its counters are registered (none when absent). */
  constructor(
    prom?: PromRegistry,
    private readonly flushBytes = FLUSH_BYTES,
  ) {
    const registers = prom === undefined ? [] : [prom];
    this.turns = new Counter({
      name: 'maxine_event_fanout_turns_total',
      help: 'Event-loop turns whose event-stream writes were flushed together (one write per subscriber socket per turn)',
      registers,
    });
    this.writes = new Counter({
      name: 'maxine_event_fanout_socket_writes_total',
      help: 'Subscriber socket writes made by those flushes, each carrying every frame the turn gave the socket',
      registers,
    });
  }

  /**
   * Corks `socket` until the end of this turn of the event loop; call it before each write.
   * A socket already held is written out first when it holds `flushBytes` or more.
   */
  hold(socket: Writable): void {
    if (this.held.has(socket)) {
      if (socket.writableLength >= this.flushBytes) this.writeOut(socket);
      return;
    }
    if (socket.destroyed) return;
    socket.cork();
    this.held.add(socket);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Writes out what a held socket holds now (it stays held for the rest of the turn): what the
   * turn holds back is no lag of the client's, so a bound on queued bytes asks for this first.
   */
  writeOut(socket: Writable): void {
    if (!this.held.has(socket) || socket.writableCorked === 0) return;
    socket.uncork();
    socket.cork();
    this.writes.inc();
  }

  /** Sockets held now. */
  get size(): number {
    return this.held.size;
  }

  /** Uncorks every held socket (each writes what the turn gave it, in one syscall). */
  readonly flush = (): void => {
    this.scheduled = false;
    const held = this.held;
    if (held.size === 0) return;
    this.held = new Set();
    this.stats.flushes += 1;
    this.stats.sockets += held.size;
    this.turns.inc();
    this.writes.inc(held.size);
    for (const socket of held) {
      // Only our own cork: ws corks and uncorks around each frame, never across a turn.
      if (socket.writableCorked > 0) socket.uncork();
    }
  };
}
