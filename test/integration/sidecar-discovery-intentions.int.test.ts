/**
 * Local discovery that checks intentions (`MAXINE_DISCOVERY_CHECK_INTENTIONS=true`, issue 17):
 * a real sidecar fed by a real operator (intention default deny) answers the discovery of a
 * service its pod's service may call, refuses one no intention allows with 403
 * INTENTION_DENIED as the operator's discovery does, and follows intention changes without a
 * restart. Real sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { api, eventually, logSink, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const resource = (kind: string, namespace: string, name: string, spec: unknown): string =>
  JSON.stringify({ apiVersion: 'maxine.io/v1alpha1', kind, metadata: { namespace, name }, spec });

const intention = (destination: string, action: 'allow' | 'deny'): string =>
  resource('MaxineIntention', 'shop', destination, {
    destination: { name: destination },
    sources: [{ name: 'web', action }],
  });

let op: TestOperator;
let sidecar: Sidecar;
let url: string;

const discover = async (name: string): Promise<{ status: number; body: any }> => {
  const res = await fetch(`${url}/v1/discover/${name}`);
  return { status: res.status, body: JSON.parse(await res.text()) };
};

beforeAll(async () => {
  op = await startOperator({
    files: {
      'services.yaml': [
        resource('MaxineService', 'shop', 'web', {
          selector: { app: 'web' },
          dependencies: [{ name: 'orders' }, { name: 'pay' }],
        }),
        resource('MaxineService', 'shop', 'orders', { selector: { app: 'orders' } }),
        resource('MaxineService', 'shop', 'pay', { selector: { app: 'pay' } }),
      ].join('\n---\n'),
      'i-orders.yaml': intention('orders', 'allow'),
    },
    config: { intentionDefault: 'deny' },
  });
  for (const service of ['orders', 'pay']) {
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service,
      namespace: 'shop',
      host: '10.0.0.9',
      port: 8080,
    });
    expect(r.status).toBe(201);
  }
  sidecar = createSidecar(
    loadSidecarConfig({
      MAXINE_SERVICE: 'web',
      MAXINE_POD_NAMESPACE: 'shop',
      MAXINE_POD_NAME: 'web-0',
      MAXINE_POD_IP: '127.0.0.1',
      MAXINE_OPERATOR_URL: op.url,
      MAXINE_LISTEN_PORT: '0',
      MAXINE_PROXY_LISTEN: 'off',
      MAXINE_REPORT_INTERVAL_SECONDS: '0',
      MAXINE_DISCOVERY_CHECK_INTENTIONS: 'true',
    }),
    createLogger('info', logSink().sink, 'sidecar'),
  );
  url = `http://127.0.0.1:${(await sidecar.start()).port}`;
  await eventually(async () => (await discover('orders')).status === 200, 5000, 'the copy');
});

afterAll(async () => {
  await sidecar.stop();
  await op.stop();
});

describe('local discovery with intentions checked', () => {
  it('answers an allowed destination and refuses one no intention allows, as the operator does', async () => {
    expect((await discover('orders')).body.instance.service).toEqual({
      namespace: 'shop',
      name: 'orders',
    });
    const refused = await discover('pay');
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('INTENTION_DENIED');
    expect(refused.body.error.message).toMatch(/shop\/web may not call shop\/pay.*default deny/);
    // The operator, asked as shop/web, refuses it too.
    const operator = await fetch(`${op.url}/api/v1/discover/shop/pay`, {
      headers: { 'x-maxine-source': 'shop/web' },
    });
    expect(operator.status).toBe(403);
  });

  it('follows intention changes without a restart', async () => {
    await op.write('i-pay.yaml', intention('pay', 'allow'));
    await eventually(async () => (await discover('pay')).status === 200, 5000, 'pay allowed');
    await op.write('i-orders.yaml', intention('orders', 'deny'));
    const refused = await eventually(
      async () => {
        const r = await discover('orders');
        return r.status === 403 ? r : false;
      },
      5000,
      'orders denied',
    );
    expect(refused.body.error.details).toEqual({
      intention: { namespace: 'shop', name: 'orders' },
    });
  });
});
