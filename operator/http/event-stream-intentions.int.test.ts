/**
 * What the snapshot costs a subscriber that may read few services when many intentions have a
 * wildcard destination (`ns/*`): deciding whether it may see each one looks through the
 * registry for a service of `ns` it may read, which must stay a cheap scan per intention (not
 * a sorted copy of the whole registry each time). Real sockets.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { Authenticator } from '../auth/authenticator.js';
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

const NAMESPACES = 400;
const SERVICES_PER_NAMESPACE = 50;

async function start(): Promise<{ url: string; registry: Registry }> {
  const clock = systemClock;
  const events = new EventLog(100_000, clock, 0);
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
  registry.upsertService('app', 'web', {});
  // Registered in no particular order, as services come and go.
  const total = NAMESPACES * SERVICES_PER_NAMESPACE;
  for (let k = 0; k < total; k++) {
    const x = (k * 7919) % total;
    registry.upsertService(`ns${x % NAMESPACES}`, `svc${Math.floor(x / NAMESPACES)}`, {});
  }
  const store = new PolicyStore(emit, { policyNamespaces: ['maxine-system'] });
  store.setAcl('app', 'anonymous-reads-web', {
    subjects: [{ kind: 'User', name: 'system:anonymous' }],
    rules: [{ services: ['app/web'], verbs: ['read'], effect: 'allow' }],
  });
  for (let n = 0; n < NAMESPACES; n++)
    store.setIntention('maxine-system', `deny-ns${n}`, {
      destination: { namespace: `ns${n}`, name: '*' },
      sources: [{ name: '*', namespace: '*', action: 'deny' }],
    });
  store.setIntention('maxine-system', 'web', {
    destination: { namespace: 'app', name: '*' },
    sources: [{ name: '*', namespace: '*', action: 'allow' }],
  });
  const logger = createLogger('silent');
  const access = new AccessControl({
    authenticator: new Authenticator({ anonymous: true, hint: 'none' }),
    store,
    aclDefault: 'deny',
    intentionDefault: 'allow',
    policyNamespaces: ['maxine-system'],
    bootstrapAdmins: [],
    sidecarReadAll: false,
    sourcesOf: () => [],
    serviceLimit: () => undefined,
    logger,
  });
  stream = createEventStream({ events, registry, clock, logger, access });
  const s = createServer((_req, res) => res.end());
  server = s;
  s.on('upgrade', (req, socket, head) => stream!.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  return { url: `ws://127.0.0.1:${port}/api/v1/events?snapshot=true`, registry };
}

describe('a snapshot with many wildcard-destination intentions', () => {
  it('decides which the subscriber may see without sorting the registry for each', async () => {
    const { url, registry } = await start();
    // What the snapshot asks of the registry: sorted copies of every service, and the services
    // the lazy scans go through.
    const sorted = jest.spyOn(registry, 'serviceRefs');
    const each = registry.eachServiceRef.bind(registry);
    let scanned = 0;
    jest.spyOn(registry, 'eachServiceRef').mockImplementation(function* () {
      for (const ref of each()) {
        scanned += 1;
        yield ref;
      }
    });
    const intentions: string[] = [];
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString()) as {
          type: string;
          data: { intentions?: { name: string }[] };
        };
        for (const i of message.data.intentions ?? []) intentions.push(i.name);
        if (message.type === 'resync_end') resolve();
      });
      ws.once('error', reject);
    });
    ws.close();
    // Only the intention about the one service it may read.
    expect(intentions).toEqual(['web']);
    // One sorted copy for the snapshot's service list, none per intention (400 sorted copies of
    // 20 000 services blocked the loop for 10 s; 400 scans take well under 1 s), and at most one
    // pass over the registry per wildcard intention.
    expect(sorted).toHaveBeenCalledTimes(1);
    const services = NAMESPACES * SERVICES_PER_NAMESPACE + 1;
    expect(scanned).toBeGreaterThan(0);
    expect(scanned).toBeLessThanOrEqual((NAMESPACES + 1) * services);
  });
});
