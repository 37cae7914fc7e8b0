/**
 * Canary version weights on the call path: the engine picks instances by `spec.versions` as
 * discovery answers do (common/lb/versions.ts), over real sockets.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import {
  call,
  instance,
  json,
  Routes,
  startProxy,
  startUpstream,
} from '../../test/helpers/proxy.js';
import type { Upstream } from '../../test/helpers/proxy.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function named(name: string): Promise<Upstream> {
  const up = await startUpstream((req, res) => res.end(JSON.stringify({ name })));
  cleanups.push(() => up.close());
  return up;
}

describe('spec.versions on proxied calls', () => {
  it.each([
    ['round-robin', 'v1: 90, v2: 10', 90, 10],
    ['least-connections', 'v1: 90, v2: 10', 90, 10],
    ['round-robin', 'v1: 1, v2: 1', 1, 1],
  ] as const)('%s, %s: calls split by the weights', async (strategy, _w, w1, w2) => {
    const [stable1, stable2, canary] = await Promise.all([
      named('stable-1'),
      named('stable-2'),
      named('canary'),
    ]);
    const routes = new Routes();
    routes.set(
      'shop',
      'orders',
      [
        instance('stable-1', stable1.port, { version: 'v1' }),
        instance('stable-2', stable2.port, { version: 'v1' }),
        instance('canary', canary.port, { version: 'v2' }),
      ],
      {
        loadBalancing: { strategy },
        versions: [
          { name: 'v1', weight: w1 },
          { name: 'v2', weight: w2 },
        ],
      },
    );
    const rig = await startProxy(routes);
    cleanups.push(() => rig.close());
    const calls = 400;
    const seen: Record<string, number> = {};
    for (let i = 0; i < calls; i++) {
      const answer = await call(rig.port, '/v1/proxy/orders/x');
      expect(answer.status).toBe(200);
      const name = (json(answer) as { name: string }).name;
      seen[name] = (seen[name] ?? 0) + 1;
    }
    const canaryShare = (seen.canary ?? 0) / calls;
    const expected = w2 / (w1 + w2);
    expect(Math.abs(canaryShare - expected)).toBeLessThan(0.02);
    // Both stable instances take the stable share between them.
    expect(seen['stable-1']).toBeGreaterThan(0);
    expect(seen['stable-2']).toBeGreaterThan(0);
  });
});
