import { describe, expect, it } from '@jest/globals';
import { breakerStates, breakerText } from './commands.js';

type To = 'closed' | 'open' | 'half-open';
/** A circuit_state_changed event: seq, destination, new state, reporter pod, instance. */
const event = (seq: number, destination: string, to: To, pod = 'web-0', instanceId?: string) => {
  const [namespace = '', name = ''] = destination.split('/');
  return {
    seq,
    service: { namespace, name },
    data: {
      to,
      ...(instanceId !== undefined && { instanceId }),
      reporter: { service: { namespace: 'shop', name: 'web' }, pod },
    },
  };
};

describe('the BREAKERS column of status -o wide', () => {
  it.each<[string, ReturnType<typeof event>[], Record<string, string>]>([
    ['no report: <none>', [], { 'shop/orders': '<none>' }],
    ['one open circuit', [event(1, 'shop/orders', 'open')], { 'shop/orders': '1 open' }],
    [
      'the latest state of a circuit wins, by seq not by arrival',
      [
        event(3, 'shop/orders', 'closed'),
        event(2, 'shop/orders', 'half-open'),
        event(1, 'shop/orders', 'open'),
      ],
      { 'shop/orders': 'closed' },
    ],
    [
      'each caller pod and each instance is its own circuit',
      [
        event(1, 'shop/orders', 'open', 'web-0', 'orders-1'),
        event(2, 'shop/orders', 'open', 'web-1', 'orders-1'),
        event(3, 'shop/orders', 'half-open', 'web-0', 'orders-2'),
        event(4, 'shop/orders', 'open', 'web-0'),
        event(5, 'shop/orders', 'closed', 'web-0'),
      ],
      { 'shop/orders': '2 open,1 half-open' },
    ],
    [
      'destinations apart',
      [event(1, 'shop/orders', 'open'), event(2, 'shop/payments', 'closed')],
      { 'shop/orders': '1 open', 'shop/payments': 'closed', 'shop/web': '<none>' },
    ],
  ])('%s', (_case, events, expected) => {
    const states = breakerStates(events);
    for (const [service, text] of Object.entries(expected))
      expect(breakerText(states.get(service))).toBe(text);
  });
});
