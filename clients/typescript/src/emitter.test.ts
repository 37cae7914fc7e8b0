import { describe, expect, it } from '@jest/globals';
import { TypedEmitter } from './emitter.js';

class Probe extends TypedEmitter<{ tick: [number]; error: [unknown] }> {
  fire(n: number): void {
    this.emit('tick', n);
  }
}

describe('TypedEmitter', () => {
  it('delivers to listeners, once() once, off() never, and a throwing listener to error', () => {
    const probe = new Probe();
    const seen: string[] = [];
    probe.on('tick', (n) => seen.push(`on ${n}`));
    probe.once('tick', (n) => seen.push(`once ${n}`));
    const removed = (n: number): void => void seen.push(`off ${n}`);
    probe.on('tick', removed).off('tick', removed);
    probe.on('tick', () => {
      throw new Error('boom');
    });
    probe.on('error', (err) => seen.push(`error ${(err as Error).message}`));
    probe.fire(1);
    probe.fire(2);
    expect(seen).toEqual(['on 1', 'once 1', 'error boom', 'on 2', 'error boom']);
    expect(probe.listenerCount('tick')).toBe(2);
  });
});
