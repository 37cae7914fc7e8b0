/**
 * The engine's common case allocates no promise: a call without a body whose first try answers
 * is driven by callbacks from `handle` to the end of the answer (bench/PROFILE-proxy.md: per-call
 * promises were a large part of the sidecar's CPU per call). Counted with async_hooks around the
 * synchronous part of `handle`, where the old async chain created its promises.
 */
import { createHook } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { ProxyForm } from './engine.js';
import type { ProxyTarget } from './target.js';
import {
  call,
  instance,
  json,
  Routes,
  startProxy,
  startUpstream,
} from '../../test/helpers/proxy.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('proxy engine: promises per call', () => {
  it.each([
    ['no policy', undefined],
    [
      'retries, per-try and call timeouts',
      {
        retries: { attempts: 2, retryOn: ['5xx' as const], perTryTimeoutSeconds: 2 },
        requestTimeoutSeconds: 5,
      },
    ],
  ])('%s: a bodiless call whose first try answers creates no promise', async (_name, spec) => {
    const up = await startUpstream((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    cleanups.push(() => up.close());
    const routes = new Routes();
    routes.set('shop', 'orders', [instance('a', up.port)], spec);
    const rig = await startProxy(routes);
    cleanups.push(() => rig.close());

    let promises = 0;
    let counting = false;
    const hook = createHook({
      init: (_id, type) => {
        if (counting && type === 'PROMISE') promises++;
      },
    }).enable();
    const engine = rig.engine;
    const handle = engine.handle.bind(engine);
    engine.handle = (
      req: IncomingMessage,
      res: ServerResponse,
      target: ProxyTarget,
      form: ProxyForm,
    ) => {
      counting = true;
      try {
        handle(req, res, target, form);
      } finally {
        counting = false;
      }
    };
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await call(rig.port, '/v1/proxy/orders/items');
        expect(answer.status).toBe(200);
        expect(json(answer)).toEqual({ ok: true });
      }
    } finally {
      hook.disable();
    }
    expect(promises).toBe(0);
  });
});
