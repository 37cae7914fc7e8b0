/**
 * The registration agent against an operator replica that has no leader to forward to for a
 * while (a real HTTP server on port 0 answering as a follower does: 503 NO_LEADER with
 * Retry-After): it retries when the replica says a leader is due, not after a back-off grown
 * through the failover, so its lease is renewed soon after the new leader takes over.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../common/logger.js';
import { Writable } from 'node:stream';
import { RegistrationAgent } from './agent.js';

/** The agent's log lines, parsed (this tier's sidecar tests import nothing of the operator's). */
function logSink(): { sink: Writable; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { sink, logs };
}

let server: Server | undefined;
let agent: RegistrationAgent | undefined;

afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

const instance = {
  id: 'web-1',
  service: { namespace: 'shop', name: 'web' },
  host: '10.0.0.1',
  port: 80,
  weight: 1,
  metadata: {},
  health: { status: 'passing' },
  lease: { ttlSeconds: 3 },
};

describe('the agent while no leader takes writes', () => {
  it.each<[string, Record<string, unknown>, number]>([
    // Retry-After 1 s: eight refusals take 4–8 s (the back-off alone: at least 0.25 + 0.5 + 1
    // + 2 + 4 + 8 + 15 + 15 s). Bounds loose for a loaded machine.
    ['retries when the replica says a leader is due', { retryAfterSeconds: 1 }, 14_000],
  ])(
    '%s',
    async (_what, details, withinMs) => {
      const heartbeats: number[] = [];
      let refusals = 8;
      server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          if (req.method === 'POST') {
            res.writeHead(201, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ instance }));
            return;
          }
          heartbeats.push(Date.now());
          if (refusals > 0) {
            refusals -= 1;
            res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
            res.end(
              JSON.stringify({
                error: { code: 'NO_LEADER', message: 'No replica leads now', details },
              }),
            );
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ instance }));
        });
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const { sink, logs } = logSink();
      agent = new RegistrationAgent({
        operatorUrl: `http://127.0.0.1:${port}`,
        registration: {
          service: 'web',
          namespace: 'shop',
          host: '10.0.0.1',
          port: 80,
          ttlSeconds: 3,
        },
        logger: createLogger('info', sink, 'sidecar'),
      });
      agent.start();
      const started = Date.now();
      for (; heartbeats.length < 9; await new Promise((r) => setTimeout(r, 20)))
        if (Date.now() - started > withinMs + 3_000) break;
      expect(heartbeats.length).toBeGreaterThanOrEqual(9);
      // The first heartbeat comes a third of the TTL after registering; the eight refused ones
      // and the accepted one follow within the replica's Retry-After each.
      expect(heartbeats[8]! - heartbeats[0]!).toBeLessThanOrEqual(withinMs - 1_000);
      for (let i = 1; i < 9; i++) expect(heartbeats[i]! - heartbeats[i - 1]!).toBeLessThan(2_000);
      await new Promise((r) => setTimeout(r, 50));
      expect(agent.state).toBe('registered');
      expect(logs).toContainEqual(
        expect.objectContaining({ level: 'warn', code: 'NO_LEADER', status: 503, failures: 1 }),
      );
    },
    20_000,
  );
});
