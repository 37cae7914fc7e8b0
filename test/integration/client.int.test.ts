/** The typed client against a real operator over real sockets. */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ClientError, RegistryClient } from '../../common/client.js';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let client: RegistryClient;
beforeAll(async () => {
  op = await startOperator();
  client = new RegistryClient({ baseUrl: `${op.url}/` });
});
afterAll(async () => op.stop());

async function errorOf(p: Promise<unknown>): Promise<ClientError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ClientError)) throw new Error(`expected a ClientError, got ${String(err)}`);
  return err;
}

describe('RegistryClient', () => {
  it('registers, renews, heartbeats, discovers and deregisters', async () => {
    const first = await client.register({
      service: 'cli',
      namespace: 'c',
      host: '10.2.0.1',
      port: 80,
      zone: 'a',
    });
    expect(first.created).toBe(true);
    expect(
      (
        await client.register({
          service: 'cli',
          namespace: 'c',
          host: '10.2.0.1',
          port: 80,
          zone: 'a',
        })
      ).created,
    ).toBe(false);
    const beat = await client.heartbeat(first.instance.id, {
      status: 'warning',
      output: 'slow disk',
    });
    expect(beat.health).toMatchObject({ status: 'warning', output: 'slow disk' });
    expect((await client.discover('c', 'cli', { zone: 'a' })).id).toBe(first.instance.id);
    expect(await client.discoverAll('c', 'cli')).toHaveLength(1);
    expect(await client.services('c')).toMatchObject([
      { name: 'cli', instances: { total: 1, warning: 1 } },
    ]);
    await client.deregister(first.instance.id);
    const gone = await errorOf(client.heartbeat(first.instance.id));
    expect([gone.status, gone.code]).toEqual([404, 'INSTANCE_NOT_FOUND']);
  });

  it('turns catalog errors into ClientError with the stable code and the issues', async () => {
    const bad = await errorOf(client.register({ service: 'BAD', host: 'h', port: 0 }));
    expect(bad.status).toBe(400);
    expect(bad.code).toBe('VALIDATION_FAILED');
    expect(bad.details).toMatchObject({
      issues: expect.arrayContaining([expect.objectContaining({ path: 'port' })]),
    });
    const none = await errorOf(client.discover('c', 'nothing'));
    expect(none.code).toBe('SERVICE_NOT_FOUND');
  });

  it('reports an unreachable operator as a NETWORK error', async () => {
    const offline = new RegistryClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 1000 });
    expect((await errorOf(offline.services())).code).toBe('NETWORK');
  });
});
