/** Instances as the registry answers them, for the client's tests. */
import type { Instance } from '../../../common/wire.js';

/** A registered instance `id` of shop/web at 10.0.0.1:80, healthy, with a lease of `ttlSeconds`. */
export function testInstance(id: string, ttlSeconds: number): Instance {
  return {
    id,
    service: { namespace: 'shop', name: 'web' },
    host: '10.0.0.1',
    port: 80,
    weight: 1,
    metadata: {},
    health: { status: 'passing' },
    source: 'registration',
    registeredAt: 't',
    lease: { ttlSeconds, expiresAt: 't' },
  };
}
