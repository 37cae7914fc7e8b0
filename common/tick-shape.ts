/**
 * Keeps one of Node's `process.nextTick` records alive for the life of the process, so that a
 * full garbage collection on an idle server does not leave every later tick built the slow way
 * (decision 0040).
 *
 * Node builds each tick as an object literal whose first two keys are computed (its async-id
 * symbols: `{ [async_id_symbol]: …, [trigger_async_id_symbol]: …, callback, args }`). V8 keeps
 * how to build it — the hidden classes the literal passes through — in the literal's feedback,
 * which holds them weakly. When a full collection runs while no tick is pending (V8's idle-time
 * memory reducer on a quiet operator, the sidecar's memory trim after a snapshot), those hidden
 * classes die with the last tick; the next tick makes new ones, and the feedback, seeing a
 * second class, goes megamorphic for good: from then on every `nextTick` — several per HTTP
 * request — defines its keys in the runtime. Measured with `perf` on the operator after forced
 * collections: ~0.6–0.9 µs of CPU per discovery spent there, none with one tick held.
 *
 * One tick object held keeps its hidden classes alive, so the feedback stays monomorphic. It is
 * caught with an async hook (Node hands `init` the tick itself as the resource), enabled for
 * one synchronous `nextTick` and disabled again.
 */
import { createHook } from 'node:async_hooks';

let held: object | undefined;

/** The tick object held (undefined before keepTickShape ran, or if Node made none). */
export function heldTick(): object | undefined {
  return held;
}

/** Holds one `process.nextTick` record for the life of the process (idempotent). */
export function keepTickShape(): void {
  if (held !== undefined) return;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && held === undefined) held = resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
}

function noop(): void {}
