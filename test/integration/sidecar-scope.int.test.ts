/**
 * The sidecar's default discovery scope (`pod`) against a real operator over real sockets: its
 * copy holds its own service, its dependencies and the services intentions allow it to call,
 * and nothing else (the operator filters the stream: the rest is never sent); discovery of, or
 * a proxied call to, anything else answers 404 OUTSIDE_DISCOVERY_SCOPE saying how to widen it;
 * and the scope follows changes of the dependencies and of the intentions.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../common/logger.js';
import { loadSidecarConfig } from '../../sidecar/config.js';
import { createSidecar } from '../../sidecar/sidecar.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { api, eventually, logSink, startOperator } from '../helpers/operator.js';
import type { LogLine, TestOperator } from '../helpers/operator.js';

const resource = (kind: string, namespace: string, name: string, spec: unknown): string =>
  JSON.stringify({ apiVersion: 'maxine.io/v1alpha1', kind, metadata: { namespace, name }, spec });

const web = (dependencies: { name: string; namespace?: string }[]) =>
  resource('MaxineService', 'shop', 'web', { selector: { app: 'web' }, dependencies });

const allowWeb = (namespace: string, destination: string) =>
  resource('MaxineIntention', namespace, `${destination}-from-web`, {
    destination: { name: destination },
    sources: [{ namespace: 'shop', name: 'web', action: 'allow' }],
  });

const OTHERS = ['shop/orders', 'pay/ledger', 'pay/vault', 'hr/payroll', 'hr/people'];

let op: TestOperator;
let upstream: Server;
let sidecar: Sidecar;
let url: string;
let sidecarLogs: LogLine[];

async function get(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path);
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

const discoverable = async (ref: string) => (await get(`/v1/discover/${ref}`)).status === 200;
const outside = async (ref: string) =>
  (await get(`/v1/discover/${ref}`)).body?.error?.code === 'OUTSIDE_DISCOVERY_SCOPE';
const held = () =>
  [...OTHERS, 'shop/web'].filter((ref) => {
    const [ns, name] = ref.split('/') as [string, string];
    return sidecar.mirror.state.has(ns, name);
  });

beforeAll(async () => {
  upstream = createServer((req, res) => res.end(`upstream saw ${req.url}`));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamPort = (upstream.address() as AddressInfo).port;
  op = await startOperator({
    files: {
      'web.yaml': web([{ name: 'orders' }]),
      'others.yaml': OTHERS.map((ref) => {
        const [ns, name] = ref.split('/') as [string, string];
        return resource('MaxineService', ns, name, { selector: { app: name } });
      }).join('\n---\n'),
      'i-ledger.yaml': allowWeb('pay', 'ledger'),
      // Names another caller: says nothing about what shop/web may call.
      'i-people.yaml': resource('MaxineIntention', 'hr', 'people-from-admin', {
        destination: { name: 'people' },
        sources: [{ namespace: 'shop', name: 'admin', action: 'allow' }],
      }),
    },
    config: { intentionDefault: 'deny' },
  });
  for (const ref of OTHERS) {
    const [namespace, service] = ref.split('/') as [string, string];
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service,
      namespace,
      host: '127.0.0.1',
      port: upstreamPort,
    });
    expect(r.status).toBe(201);
  }
  const { sink, logs } = logSink();
  sidecarLogs = logs;
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
    }),
    createLogger('info', sink, 'sidecar'),
  );
  url = `http://127.0.0.1:${(await sidecar.start()).port}`;
});

afterAll(async () => {
  await sidecar.stop();
  await op.stop();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

describe('the pod discovery scope (the default)', () => {
  it('holds its own service, its dependencies and what intentions allow it to call, nothing else', async () => {
    await eventually(
      async () => (await discoverable('pay/ledger')) && (await discoverable('shop/orders')),
      5000,
      'the scope',
    );
    expect(held()).toEqual(['shop/orders', 'pay/ledger', 'shop/web']);
    expect(sidecar.mirror.state.size).toBe(3);
    // /healthz says what it holds.
    expect((await get('/healthz')).body.scope).toEqual({
      kind: 'pod',
      services: ['pay/ledger', 'shop/orders', 'shop/web'],
    });
    // The operator was asked for exactly that, and for the intentions naming shop/web.
    const connected = op.logs.filter((l) => l.msg === 'event subscriber connected').at(-1);
    expect(connected?.services).toEqual(['pay/ledger', 'shop/orders', 'shop/web']);
  });

  it('answers a discovery outside the scope with OUTSIDE_DISCOVERY_SCOPE and how to widen it', async () => {
    for (const ref of ['pay/vault', 'hr/people']) {
      const r = await get(`/v1/discover/${ref}`);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('OUTSIDE_DISCOVERY_SCOPE');
      expect(r.body.error.message).toContain(`${ref} is outside this pod's discovery scope`);
      expect(r.body.error.message).toContain('maxine.io/discovery-scope');
      expect(r.body.error.details).toMatchObject({ service: ref, scope: 'pod' });
    }
  });

  it('answers a proxied call outside the scope alike, and proxies the ones inside', async () => {
    const refused = await fetch(`${url}/v1/proxy/vault.pay/hello`);
    expect(refused.status).toBe(404);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('OUTSIDE_DISCOVERY_SCOPE');
    expect(body.error.message).toContain('spec.dependencies');
    const allowed = await fetch(`${url}/v1/proxy/ledger.pay/hello`);
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toBe('upstream saw /hello');
  });

  it('follows the intentions: a new allow brings the service in, a removed one takes it out', async () => {
    await op.write('i-payroll.yaml', allowWeb('hr', 'payroll'));
    await eventually(() => discoverable('hr/payroll'), 5000, 'payroll in scope');
    expect(held()).toEqual(['shop/orders', 'pay/ledger', 'hr/payroll', 'shop/web']);
    await rm(join(op.dir, 'i-ledger.yaml'));
    await eventually(() => outside('pay/ledger'), 5000, 'ledger out of scope');
    expect(held()).toEqual(['shop/orders', 'hr/payroll', 'shop/web']);
    expect(sidecarLogs.some((l) => l.msg === 'mirror scope changed; resyncing')).toBe(true);
  });

  it('follows the dependencies of its own MaxineService', async () => {
    await op.write('web.yaml', web([{ name: 'orders' }, { name: 'vault', namespace: 'pay' }]));
    await eventually(() => discoverable('pay/vault'), 5000, 'vault in scope');
    await op.write('web.yaml', web([]));
    await eventually(() => outside('shop/orders'), 5000, 'orders out of scope');
    expect(held()).toEqual(['hr/payroll', 'shop/web']);
  });
});
