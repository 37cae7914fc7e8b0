/**
 * A small typed event emitter (no `node:events`, so the types say which listener gets what).
 * A listener that throws is reported to the `error` listeners of the same emitter when the
 * event is not `error` itself, and never breaks the emitting loop.
 */
export type Listener<A extends unknown[]> = (...args: A) => void;

/** How listeners are kept: their argument types are the event map's, checked at on() and emit(). */
type Stored = (...args: never[]) => void;

export class TypedEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly listeners = new Map<keyof Events, Set<Stored>>();

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(listener as unknown as Stored);
    return this;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    this.listeners.get(event)?.delete(listener as unknown as Stored);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapped: Listener<Events[K]> = (...args) => {
      this.off(event, wrapped);
      listener(...args);
    };
    return this.on(event, wrapped);
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  protected emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        (listener as unknown as Listener<Events[K]>)(...args);
      } catch (err) {
        if (event !== 'error') this.emitListenerError(err);
      }
    }
  }

  private emitListenerError(err: unknown): void {
    for (const listener of [...(this.listeners.get('error' as keyof Events) ?? [])]) {
      try {
        (listener as unknown as Listener<[unknown]>)(err);
      } catch {
        // An error listener that throws has nobody left to tell.
      }
    }
  }
}
