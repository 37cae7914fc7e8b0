import { describe, expect, it } from '@jest/globals';
import { ReviewSlots } from './review-slots.js';

describe('ReviewSlots', () => {
  it('runs up to its bound at once, refuses past it with NOT_READY, and frees a slot whether the review succeeded or failed', async () => {
    const slots = new ReviewSlots(1);
    let release!: () => void;
    const held = slots.run(() => new Promise<string>((r) => (release = () => r('done'))));
    await expect(slots.run(() => Promise.resolve('x'))).rejects.toMatchObject({
      code: 'NOT_READY',
    });
    expect([slots.inFlight, slots.refused]).toEqual([1, 1]);
    release();
    await expect(held).resolves.toBe('done');
    await expect(slots.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(slots.inFlight).toBe(0);
    await expect(slots.run(() => Promise.resolve('y'))).resolves.toBe('y');
  });
});
