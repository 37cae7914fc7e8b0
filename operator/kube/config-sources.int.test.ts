/**
 * The configFrom watcher against a real HTTP server playing the API server: one list + watch
 * per named object (fieldSelector metadata.name), stopped when no service names it; past
 * --config-from-max-objects a reference is refused (metric, one log line) and counts as missing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { secretDigest } from '../../common/config-sources.js';
import { ConfigSourceWatcher } from './config-sources.js';
import { eventually } from '../../test/helpers/operator.js';

const requests: string[] = [];
const open = new Set<ServerResponse>();
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const url = new URL(req.url ?? '/', 'http://x');
  requests.push(
    `${url.pathname}?${url.searchParams.get('fieldSelector') ?? ''}${url.searchParams.get('watch') === 'true' ? ' watch' : ''}`,
  );
  res.setHeader('content-type', 'application/json');
  if (url.searchParams.get('watch') === 'true') {
    open.add(res);
    res.on('close', () => open.delete(res));
    res.write('');
    return;
  }
  const name = (url.searchParams.get('fieldSelector') ?? '').replace('metadata.name=', '');
  if (name.startsWith('proto')) {
    // Written by hand: an object literal cannot hold an own `__proto__` key.
    const meta = `{"name":"${name}","namespace":"shop","uid":"u","resourceVersion":"5"}`;
    res.end(
      `{"metadata":{"resourceVersion":"5"},"items":[{"metadata":${meta},"data":{"__proto__":"x","k":"v"}}]}`,
    );
    return;
  }
  const items = name.startsWith('present')
    ? [{ metadata: { name, namespace: 'shop', uid: 'u', resourceVersion: '5' }, data: { k: 'v' } }]
    : name.startsWith('applied')
      ? [appliedSecret(name)]
      : [];
  res.end(JSON.stringify({ metadata: { resourceVersion: '5' }, items }));
});
let kubeConfig: KubeConfig;

const SECRET_VALUE = 'hunter2-0f3a9c';
/**
 * A Secret as the API server answers it after `kubectl apply` of a manifest with `stringData`:
 * kubectl keeps the manifest, value included, in the last-applied annotation.
 */
function appliedSecret(name: string) {
  const manifest = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'shop' },
    stringData: { password: SECRET_VALUE },
  };
  return {
    metadata: {
      name,
      namespace: 'shop',
      uid: 'u-applied',
      resourceVersion: '7',
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(manifest),
        team: 'db',
      },
    },
    data: { password: Buffer.from(SECRET_VALUE).toString('base64') },
  };
}

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
afterAll(async () => {
  for (const res of open) res.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('ConfigSourceWatcher', () => {
  it('watches each named object alone, releases unnamed ones, refuses past the bound', async () => {
    const logs: string[] = [];
    const sink = new Writable({
      write: (c: Buffer, _e, done) => (logs.push(c.toString()), done()),
    });
    const prom = new PromRegistry();
    const changed: string[] = [];
    const room: string[] = [];
    const watcher = new ConfigSourceWatcher({
      kubeConfig,
      logger: createLogger('info', sink),
      maxObjects: 2,
      onChange: (namespace, kind, name) => changed.push(`${kind}/${namespace}/${name}`),
      onRoom: (namespace, service) => room.push(`${namespace}/${service}`),
    });
    watcher.registerMetrics(prom);
    await watcher.track('shop', 'web', [
      { kind: 'ConfigMap', name: 'present-a' },
      { kind: 'Secret', name: 'absent-b' },
    ]);
    expect(requests).toContain('/api/v1/namespaces/shop/configmaps?metadata.name=present-a');
    expect(requests).toContain('/api/v1/namespaces/shop/secrets?metadata.name=absent-b');
    expect(watcher.lookup('shop', 'ConfigMap', 'present-a')).toEqual({
      kind: 'ConfigMap',
      data: { k: 'v' },
    });
    expect(watcher.lookup('shop', 'Secret', 'absent-b')).toBeUndefined();
    expect(changed).toEqual(['ConfigMap/shop/present-a']);
    // A second service naming a third object: past the bound of 2.
    await watcher.track('shop', 'api', [{ kind: 'ConfigMap', name: 'present-c' }]);
    expect(watcher.size).toBe(2);
    expect(watcher.lookup('shop', 'ConfigMap', 'present-c')).toBeUndefined();
    expect(await prom.getSingleMetricAsString('maxine_config_from_refused_total')).toMatch(/ 1$/m);
    expect(logs.join('')).toContain('--config-from-max-objects reached');
    // web stops naming the Secret: room, and api (refused before) is told to track again.
    await watcher.track('shop', 'web', [{ kind: 'ConfigMap', name: 'present-a' }]);
    expect(room).toEqual(['shop/api']);
    await watcher.track('shop', 'api', [{ kind: 'ConfigMap', name: 'present-c' }]);
    expect(watcher.lookup('shop', 'ConfigMap', 'present-c')).toEqual({
      kind: 'ConfigMap',
      data: { k: 'v' },
    });
    const gauge = await prom.getSingleMetricAsString('maxine_config_from_watched_objects');
    expect(gauge).toMatch(/kind="ConfigMap"} 2/);
    expect(gauge).toMatch(/kind="Secret"} 0/);
    await watcher.stop();
    await eventually(async () => Promise.resolve(open.size === 0), 3000, 'watches closed');
  });

  it("keeps no value of a Secret in its cache, not even kubectl's last-applied copy", async () => {
    const watcher = new ConfigSourceWatcher({
      kubeConfig,
      logger: createLogger('info', new Writable({ write: (_c, _e, done) => done() })),
      maxObjects: 4,
      onChange: () => undefined,
    });
    await watcher.track('shop', 'db', [{ kind: 'Secret', name: 'applied-s' }]);
    expect(watcher.lookup('shop', 'Secret', 'applied-s')).toEqual({
      kind: 'Secret',
      digests: { password: secretDigest('u-applied', SECRET_VALUE) },
    });
    const cached = JSON.stringify(watcher.cached('shop', 'Secret', 'applied-s'));
    expect(cached).toContain('"team":"db"'); // the object is there, its other annotations too
    expect(cached).not.toContain(SECRET_VALUE);
    expect(cached).not.toContain(Buffer.from(SECRET_VALUE).toString('base64'));
    await watcher.stop();
  });
  it('keeps a listed key named __proto__ as data (the merge refuses it by name)', async () => {
    const watcher = new ConfigSourceWatcher({
      kubeConfig,
      logger: createLogger('info', new Writable({ write: (_c, _e, done) => done() })),
      maxObjects: 10,
      onChange: () => {},
    });
    await watcher.track('shop', 'p', [
      { kind: 'ConfigMap', name: 'proto-cm' },
      { kind: 'Secret', name: 'proto-secret' },
    ]);
    const cm = watcher.lookup('shop', 'ConfigMap', 'proto-cm');
    expect(cm?.kind === 'ConfigMap' && Object.entries(cm.data)).toEqual([
      ['__proto__', 'x'],
      ['k', 'v'],
    ]);
    const secret = watcher.lookup('shop', 'Secret', 'proto-secret');
    expect(secret?.kind === 'Secret' && Object.keys(secret.digests)).toEqual(['__proto__', 'k']);
    await watcher.stop();
  });
});
