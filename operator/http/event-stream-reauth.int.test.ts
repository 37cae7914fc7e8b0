/**
 * An event stream authenticated by a TokenReview is reviewed again whenever the cached
 * answer expires: it stays open while the review still accepts the token, and is closed with
 * 4401 once the token is revoked (the pod deleted). Real sockets; the reviewer is a stand-in
 * for the API server's TokenReview.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { MaxineError } from '../../common/errors.js';
import { Authenticator } from '../auth/authenticator.js';
import type { PodIdentity } from '../auth/tokenreview.js';
import { EventLog } from '../events/log.js';
import { AccessControl } from '../policy/access.js';
import { PolicyStore } from '../policy/store.js';
import { systemClock } from '../registry/clock.js';
import { Registry } from '../registry/registry.js';
import { createLogger } from '../../common/logger.js';
import { createEventStream } from './event-stream.js';
import type { EventStreamServer } from './event-stream.js';

let server: Server | undefined;
let stream: EventStreamServer | undefined;
afterEach(async () => {
  stream?.close();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A ServiceAccount token's shape (what the authenticator decodes before asking a review). */
const token = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(
  JSON.stringify({
    iss: 'https://kubernetes.default.svc',
    sub: 'system:serviceaccount:shop:web',
    aud: ['maxine.io'],
    exp: Math.floor(Date.now() / 1000) + 3600,
  }),
).toString('base64url')}.c2ln`;

async function start(reviewer: { review(token: string): Promise<PodIdentity> }, cacheMs: number) {
  const clock = systemClock;
  const events = new EventLog(100, clock, 0);
  const emit = (draft: Parameters<EventLog['append']>[0]): void => void events.append(draft);
  const registry = new Registry({
    clock,
    emit,
    allowUndeclared: true,
    defaultTtlSeconds: 30,
    defaultRemoveAfterSeconds: 90,
    massExpiryThreshold: 0.5,
    massExpiryMinInstances: 10,
  });
  const logger = createLogger('silent');
  const access = new AccessControl({
    authenticator: new Authenticator({ anonymous: false, reviewer, hint: 'a token', cacheMs }),
    store: new PolicyStore(emit),
    aclDefault: 'allow',
    intentionDefault: 'allow',
    policyNamespaces: [],
    bootstrapAdmins: [],
    sidecarReadAll: true,
    sourcesOf: () => [],
    serviceLimit: () => undefined,
    logger,
  });
  stream = createEventStream({ events, registry, clock, logger, access });
  const s = createServer((_req, res) => res.end());
  server = s;
  s.on('upgrade', (req, socket, head) => stream!.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `ws://127.0.0.1:${(s.address() as AddressInfo).port}/api/v1/events`;
}

function connect(url: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

describe('event streams authenticated by a TokenReview', () => {
  it('are reviewed again when the cached answer expires, and closed with 4401 once revoked', async () => {
    let reviews = 0;
    let revoked = false;
    const url = await start(
      {
        review() {
          reviews += 1;
          if (revoked)
            return Promise.reject(
              new MaxineError('UNAUTHENTICATED', 'The token was not accepted: pod not found'),
            );
          return Promise.resolve({
            namespace: 'shop',
            serviceAccount: 'web',
            pod: { name: 'web-1', uid: 'u-1' },
          });
        },
      },
      200,
    );
    const { ws, closed } = await connect(url);
    // Still accepted: reviewed again every ~200 ms, and the stream stays open.
    await new Promise((r) => setTimeout(r, 700));
    expect(reviews).toBeGreaterThanOrEqual(3);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    revoked = true;
    const started = Date.now();
    expect(await closed).toBe(4401);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('stay open while the review cannot be made (the API server is away)', async () => {
    let reviews = 0;
    const url = await start(
      {
        review() {
          reviews += 1;
          if (reviews === 1) return Promise.resolve({ namespace: 'shop', serviceAccount: 'web' });
          return Promise.reject(new MaxineError('NOT_READY', 'Cannot check the token now'));
        },
      },
      100,
    );
    const { ws } = await connect(url);
    await new Promise((r) => setTimeout(r, 400));
    expect(reviews).toBe(2); // asked again once; retried later (5 s), not in a loop
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });
});
