/**
 * keepTickShape() in a process of its own (decision 0040): the tick it holds is one of Node's
 * `process.nextTick` records, and ticks made after full collections with none pending still
 * share its hidden class — what keeps the literal's feedback monomorphic. `%HaveSameMap` is
 * V8's own answer (--allow-natives-syntax).
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const script = `
import { createHook } from 'node:async_hooks';
import { setImmediate as later } from 'node:timers/promises';
import { keepTickShape, heldTick } from './common/tick-shape.ts';
keepTickShape();
keepTickShape();
const held = heldTick();
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)');
// Ticks as a server makes them, then full collections with none pending.
for (let i = 0; i < 10000; i += 1) process.nextTick(() => {}, i);
await later();
globalThis.gc();
globalThis.gc();
let fresh;
const hook = createHook({
  init(_id, type, _trigger, resource) {
    if (type === 'TickObject') fresh ??= resource;
  },
}).enable();
process.nextTick(() => {});
hook.disable();
process.stdout.write(JSON.stringify({
  symbols: Object.getOwnPropertySymbols(held).length,
  callback: typeof held.callback,
  distinct: fresh !== undefined && fresh !== held,
  sameMap: sameMap(held, fresh),
}));
`;

describe('keepTickShape, in its own process', () => {
  it('holds a nextTick record whose hidden class outlives full collections', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        ...['--allow-natives-syntax', '--expose-gc', '--import', 'tsx'],
        ...['--input-type=module', '-e', script],
      ],
      { cwd: process.cwd(), encoding: 'utf8' },
    );
    const r = JSON.parse(stdout) as {
      symbols: number;
      callback: string;
      distinct: boolean;
      sameMap: boolean;
    };
    // Node's tick literal: its async-id symbols first, then callback and args.
    expect(r.symbols).toBeGreaterThanOrEqual(2);
    expect(r.callback).toBe('function');
    expect(r.distinct).toBe(true);
    expect(r.sameMap).toBe(true);
  }, 30_000);
});
