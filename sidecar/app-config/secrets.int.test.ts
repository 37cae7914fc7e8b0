import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry as PromRegistry } from 'prom-client';
import { secretDigest } from '../../common/config-sources.js';
import type { ConfigSecrets } from '../../common/config-sources.js';
import { createLogger } from '../../common/logger.js';
import { ConfigDelivery } from './delivery.js';
import { kubeSecretReader } from './secrets.js';
import type { SecretObject } from './secrets.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const announced: ConfigSecrets = {
  'db.password': { secret: 'db', key: 'password', digest: secretDigest('uid-db', 'pw-1') },
};

describe('kubeSecretReader and ConfigDelivery over a real HTTP API server', () => {
  let current: SecretObject = { uid: 'uid-db', data: { password: b64('pw-0') } };
  const seen: { url: string; auth: string | undefined }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', auth: req.headers.authorization });
    if (req.url === '/api/v1/namespaces/shop/secrets/db') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ metadata: { name: 'db', uid: current.uid }, data: current.data }));
    } else if (req.url === '/api/v1/namespaces/shop/secrets/forbidden') {
      res.statusCode = 403;
      res.end(JSON.stringify({ kind: 'Status', message: 'secrets "forbidden" is forbidden' }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  let apiUrl = '';
  const dir = mkdtempSync(join(tmpdir(), 'maxine-secret-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'pod-token\n');
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('reads with the pod token; 404 is absent; a refusal names the missing right', async () => {
    const read = kubeSecretReader({ apiUrl, namespace: 'shop', tokenFile });
    await expect(read('db')).resolves.toEqual({ uid: 'uid-db', data: current.data });
    expect(seen.at(-1)?.auth).toBe('Bearer pod-token');
    await expect(read('nope')).resolves.toBeUndefined();
    await expect(read('forbidden')).rejects.toThrow(/HTTP 403: secrets "forbidden" is forbidden/);
  });

  it('delivers the config only once the Secret holds the announced value', async () => {
    const prom = new PromRegistry();
    const delivery = new ConfigDelivery({
      service: { namespace: 'shop', name: 'web' },
      logger: createLogger('silent'),
      prom,
      maxWaiters: 4,
      appPort: 0,
      readSecret: kubeSecretReader({ apiUrl, namespace: 'shop', tokenFile }),
      secretRetryMs: 20,
    });
    current = { uid: 'uid-db', data: { password: b64('pw-0') } }; // older than announced
    delivery.refresh({ mode: 'a' }, 3, announced);
    await new Promise((r) => setTimeout(r, 100));
    expect(delivery.state.current.version).toBe(0);
    current = { uid: 'uid-db', data: { password: b64('pw-1') } };
    const got = await delivery.state.wait(0, 2_000, new AbortController().signal);
    expect(got?.config).toEqual({ mode: 'a', 'db.password': 'pw-1' });
    expect(got?.version).toBe(3);
    const reads = await prom.getSingleMetricAsString('maxine_sidecar_config_secret_reads_total');
    expect(reads).toMatch(/outcome="not_ready"} [1-9]/);
    expect(reads).toMatch(/outcome="ok"} 1/);
    await delivery.stop();
  });
});
