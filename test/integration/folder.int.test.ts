/** Standalone mode's resource folder, watched for real: add, change, delete, a broken file. */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { api, EventClient, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const service = (name: string, spec = 'ports: [{ port: 8080 }]') => `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata:
  name: ${name}
  namespace: shop
spec:
  ${spec}
`;

let op: TestOperator;
beforeEach(async () => {
  op = await startOperator({
    files: { 'web.yaml': service('web') },
    config: { allowUndeclared: false },
  });
});
afterEach(async () => op.stop());

const serviceNames = async () =>
  (
    (await api(op.url, 'GET', '/api/v1/services?namespace=shop')).body.services as {
      name: string;
    }[]
  ).map((s) => s.name);

/** Resolves with the time taken until `check` holds; fails past one second. */
async function within1s(check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  await eventually(async () => check(), 1000);
  return Date.now() - started;
}

describe('resource folder', () => {
  it('applies the folder at start and is ready only after that', async () => {
    expect(await serviceNames()).toEqual(['web']);
    expect((await api(op.url, 'GET', '/readyz')).status).toBe(200);
    const resources = await api(op.url, 'GET', '/api/v1/resources?kind=MaxineService');
    expect(resources.body.items).toMatchObject([
      {
        kind: 'MaxineService',
        name: 'web',
        status: { conditions: [{ type: 'Ready', status: 'True' }] },
      },
    ]);
  });

  it('adding, changing and deleting a file updates the registry within a second', async () => {
    const events = await EventClient.connect(
      `${op.wsUrl}/api/v1/events?types=service_updated,config_changed,service_deleted`,
    );
    await op.write('orders.yaml', service('orders'));
    await within1s(async () => (await serviceNames()).includes('orders'));

    await op.write('orders.yaml', service('orders', "config: { LIMIT: '5' }"));
    await within1s(
      async () =>
        (await api(op.url, 'GET', '/api/v1/services/shop/orders')).body.spec?.config?.LIMIT === '5',
    );

    await unlink(join(op.dir, 'orders.yaml'));
    await within1s(async () => !(await serviceNames()).includes('orders'));
    await events.until((e) => e.some((x) => x.type === 'service_deleted'));
    expect(events.types()).toEqual([
      'service_updated',
      'service_updated',
      'config_changed',
      'service_deleted',
    ]);
    await events.close();
  });

  it('a broken file is reported with file, field and problem, and changes nothing that was valid', async () => {
    const registered = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'web',
      namespace: 'shop',
      host: '10.1.0.1',
      port: 8080,
    });
    expect(registered.status).toBe(201);
    await op.write('web.yaml', service('web', 'versions: [{ name: v1, weight: 70 }]'));
    const problems = await eventually(async () => {
      const body = (await api(op.url, 'GET', '/api/v1/resources')).body as {
        problems: { file: string }[];
      };
      return body.problems.length > 0 && body.problems;
    }, 1000);
    expect(problems).toMatchObject([
      {
        file: join(op.dir, 'web.yaml'),
        keptPrevious: true,
        issues: [
          { path: 'spec.versions', message: 'version weights must sum to 100 (they sum to 70)' },
        ],
      },
    ]);
    const line = op.logs.find((l) => l.level === 'warn' && l.field === 'spec.versions');
    expect(line).toMatchObject({
      file: 'web.yaml',
      problem: 'version weights must sum to 100 (they sum to 70)',
    });

    // The last valid declaration stays in force: the service, its instance, its discovery.
    expect(await serviceNames()).toEqual(['web']);
    expect((await api(op.url, 'GET', '/api/v1/discover/shop/web')).body.instance.host).toBe(
      '10.1.0.1',
    );
    const status = await api(op.url, 'GET', '/api/v1/resources?kind=MaxineService');
    expect(status.body.items[0].status.conditions).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'Invalid', status: 'True' })]),
    );

    // Fixing the file clears the problem.
    await op.write('web.yaml', service('web', 'versions: [{ name: v1, weight: 100 }]'));
    await within1s(
      async () => (await api(op.url, 'GET', '/api/v1/resources')).body.problems.length === 0,
    );
    const fixed = await api(op.url, 'GET', '/api/v1/resources?kind=MaxineService');
    expect(fixed.body.items[0].status.conditions.map((c: { type: string }) => c.type)).toEqual([
      'Ready',
    ]);
  });

  it('refuses registration to an undeclared service when undeclared registration is off', async () => {
    const res = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'ghost',
      namespace: 'shop',
      host: 'h',
      port: 1,
    });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('SERVICE_NOT_DECLARED');
    expect(await serviceNames()).toEqual(['web']);
  });
});
