/**
 * How often the TokenReviewer asks the API server, over a real socket: a pod-bound identity is
 * kept while the pod informer vouches for the pod (same uid), asked again at once when the pod
 * is replaced, and kept only `cacheMs` when the informer does not hold the pod. The API server
 * here answers TokenReviews only (the e2e tier uses the real one); it counts the requests.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { TokenReviewer } from './tokenreview.js';

let server: Server;
let reviews = 0;
let kubeConfig: KubeConfig;
let clock = 1_800_000_000_000;

const jwt = (pod: string) =>
  `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(
    JSON.stringify({
      aud: ['maxine.io'],
      sub: 'system:serviceaccount:shop:default',
      exp: clock / 1000 + 3600,
      pod,
    }),
  ).toString('base64url')}.c2ln`;

beforeAll(async () => {
  server = createServer((req, res) => {
    reviews += 1;
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const token = (JSON.parse(body) as { spec: { token: string } }).spec.token;
      const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
        pod: string;
      };
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          status: {
            authenticated: true,
            audiences: ['maxine.io'],
            user: {
              username: 'system:serviceaccount:shop:default',
              extra: {
                'authentication.kubernetes.io/pod-name': [claims.pod],
                'authentication.kubernetes.io/pod-uid': [`uid-${claims.pod}`],
              },
            },
          },
        }),
      );
    });
  });
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
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe('TokenReviewer: reviews asked of the API server', () => {
  it('keeps a pod-bound identity while the informer holds its pod, and asks again once the pod is replaced', async () => {
    const pods = new Map([['shop/web-1', 'uid-web-1']]);
    const reviewer = new TokenReviewer({
      kubeConfig,
      audience: 'maxine.io',
      podUid: (ns, name) => pods.get(`${ns}/${name}`),
      now: () => clock,
    });
    const token = jwt('web-1');
    reviews = 0;
    expect((await reviewer.review(token)).pod).toEqual({ name: 'web-1', uid: 'uid-web-1' });
    // Ten minutes of heartbeats: far past the one-minute cache of identities without a pod check.
    for (let i = 0; i < 60; i++) {
      clock += 10_000;
      await reviewer.review(token);
    }
    expect(reviews).toBe(1);
    // The pod is replaced (same name, new uid): the next use asks again.
    pods.set('shop/web-1', 'uid-web-1-new');
    await reviewer.review(token);
    expect(reviews).toBe(2);
  });

  it('without the pod in the informer, keeps the identity one minute only', async () => {
    const reviewer = new TokenReviewer({
      kubeConfig,
      audience: 'maxine.io',
      podUid: () => undefined,
      now: () => clock,
    });
    const token = jwt('web-2');
    reviews = 0;
    for (let i = 0; i < 13; i++) {
      await reviewer.review(token);
      clock += 10_000;
    }
    // Reviewed at 0 s, 60 s and 120 s.
    expect(reviews).toBe(3);
  });
});
