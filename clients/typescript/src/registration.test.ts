import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ClientError } from '../../../common/client.js';
import type { RegistryClient } from '../../../common/client.js';
import type { HeartbeatRequest, Instance } from '../../../common/wire.js';
import { Registration } from './registration.js';
import { testInstance } from '../test/instance.js';

const instance = (id: string, ttlSeconds = 3): Instance => testInstance(id, ttlSeconds);

const notFound = () => new ClientError(404, 'INSTANCE_NOT_FOUND', 'gone');
const input = { service: 'web', namespace: 'shop', host: '10.0.0.1', port: 80 };

/** A RegistryClient whose answers the test scripts; it records every call. */
function fakeClient(answers: { heartbeat?: (Instance | ClientError)[]; register?: Instance[] }) {
  const calls: string[] = [];
  const reports: HeartbeatRequest[] = [];
  const client = {
    heartbeat: (id: string, report: HeartbeatRequest) => {
      calls.push(`heartbeat ${id}`);
      reports.push(report);
      const next = answers.heartbeat?.shift() ?? instance(id);
      return next instanceof ClientError ? Promise.reject(next) : Promise.resolve(next);
    },
    register: (body: unknown) => {
      calls.push(`register ${JSON.stringify(body)}`);
      return Promise.resolve({
        instance: answers.register?.shift() ?? instance('web-2'),
        created: true,
      });
    },
    deregister: (id: string) => {
      calls.push(`deregister ${id}`);
      return Promise.reject(notFound());
    },
  };
  return { client: client as unknown as RegistryClient, calls, reports };
}

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

describe('Registration', () => {
  it('heartbeats every third of the granted TTL, and not after close(), which deregisters', async () => {
    const { client, calls } = fakeClient({});
    const r = new Registration(client, input, instance('web-1', 3));
    await jest.advanceTimersByTimeAsync(999);
    expect(calls).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    await jest.advanceTimersByTimeAsync(1000);
    expect(calls).toEqual(['heartbeat web-1', 'heartbeat web-1']);
    await r.close(); // the deregister's 404 is fine: the instance is gone either way
    await jest.advanceTimersByTimeAsync(5000);
    expect(calls).toEqual(['heartbeat web-1', 'heartbeat web-1', 'deregister web-1']);
  });

  it('registers again with the same request when a heartbeat answers 404, then heartbeats the new id', async () => {
    const { client, calls } = fakeClient({
      heartbeat: [notFound()],
      register: [instance('web-2', 6)],
    });
    const r = new Registration(client, input, instance('web-1', 3));
    const again: string[] = [];
    r.on('reregistered', (i) => again.push(i.id));
    await jest.advanceTimersByTimeAsync(1000);
    expect(again).toEqual(['web-2']);
    await jest.advanceTimersByTimeAsync(2000); // the new lease's third
    expect(calls).toEqual([
      'heartbeat web-1',
      `register ${JSON.stringify(input)}`,
      'heartbeat web-2',
    ]);
    expect(r.id).toBe('web-2');
  });

  it.each([
    // failures, Retry-After (ms), when the retry comes after the failed heartbeat
    [
      'a network error: after the back-off (half its 250 ms first step when the jitter draws 0)',
      undefined,
      125,
    ],
    ['a 503 with Retry-After: not sooner than it', 2000, 2000],
  ])('retries after %s', async (_name, retryAfterMs, retryAt) => {
    const error = new ClientError(
      retryAfterMs === undefined ? 0 : 503,
      retryAfterMs === undefined ? 'NETWORK' : 'NO_LEADER',
      'x',
    );
    error.retryAfterMs = retryAfterMs;
    const { client, calls } = fakeClient({ heartbeat: [error] });
    const r = new Registration(client, input, instance('web-1', 30), { random: () => 0 });
    const errors: string[] = [];
    r.on('error', (e) => errors.push(e.code));
    await jest.advanceTimersByTimeAsync(10_000);
    expect(errors).toEqual([error.code]);
    await jest.advanceTimersByTimeAsync(retryAt - 1);
    expect(calls).toEqual(['heartbeat web-1']);
    await jest.advanceTimersByTimeAsync(1);
    expect(calls).toEqual(['heartbeat web-1', 'heartbeat web-1']);
    await r.close();
  });

  it('sends what report() says, and a bare heartbeat (with an INTERNAL error) when it throws', async () => {
    const { client, reports } = fakeClient({});
    let fail = false;
    const r = new Registration(client, input, instance('web-1', 3), {
      report: () => {
        if (fail) throw new Error('check crashed');
        return { status: 'warning', output: 'slow' };
      },
    });
    const errors: string[] = [];
    r.on('error', (e) => errors.push(`${e.code} ${e.message}`));
    await jest.advanceTimersByTimeAsync(1000);
    fail = true;
    await jest.advanceTimersByTimeAsync(1000);
    expect(reports).toEqual([{ status: 'warning', output: 'slow' }, {}]);
    expect(errors).toEqual(['INTERNAL the report function threw: Error: check crashed']);
    await r.close();
  });
});
