/**
 * The two headers access control reads, taken from the parser's raw header array: the same
 * answers `req.headers` gives for what real clients send over a real socket (case, repeats,
 * absence), without Node building the headers object. And a secured discovery, token and
 * source header included, never builds it (issue 17: building it was most of what the two
 * headers cost beyond an anonymous discovery).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, IncomingMessage } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../common/logger.js';
import { discoverAnswer } from '../http/discover.js';
import { AccessControl } from '../policy/access.js';
import { PolicyStore } from '../policy/store.js';
import { systemClock } from '../registry/clock.js';
import { Registry } from '../registry/registry.js';
import { Authenticator } from './authenticator.js';
import { requestHeader } from './request-headers.js';
import { StaticTokens } from './static-tokens.js';

const TOKEN = 'alice-token-0123456789abcdef';

let server: Server;
let onRequest: (req: IncomingMessage) => unknown;

beforeAll(async () => {
  server = createServer((req, res) => {
    let answer: unknown;
    try {
      answer = onRequest(req);
    } catch (err) {
      answer = { error: (err as Error).message };
    }
    void Promise.resolve(answer).then((a) => res.end(JSON.stringify(a)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Sends `head` (request line and header lines) over a socket; the answer's JSON body. */
async function send(headerLines: string[]): Promise<unknown> {
  const { port } = server.address() as AddressInfo;
  const socket = connect(port, '127.0.0.1');
  const request = ['GET /api/v1/discover/shop/orders HTTP/1.1', 'Host: x', ...headerLines];
  socket.end(`${request.join('\r\n')}\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const chunk of socket) text += String(chunk);
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as unknown;
}

describe('requestHeader', () => {
  it.each<[string, string[]]>([
    ['absent', []],
    ['lower case', ['authorization: Bearer a', 'x-maxine-source: shop/web']],
    ['mixed case', ['AUTHORIZATION: Bearer a', 'X-Maxine-Source: shop/web']],
    [
      'repeated (first Authorization wins, sources joined)',
      [
        'Authorization: Bearer a',
        'authorization: Bearer b',
        'x-maxine-source: shop/web',
        'X-MAXINE-SOURCE: shop/cart',
      ],
    ],
    ['surrounding blanks', ['Authorization:    Bearer a   ', 'x-maxine-source:  shop/web ']],
    [
      'a longer name with the same start',
      ['authorization-x: Bearer a', 'x-maxine-sources: shop/web'],
    ],
  ])('answers what req.headers answers: %s', async (_what, lines) => {
    onRequest = (req) => {
      const raw = {
        authorization: requestHeader(req, 'authorization') ?? null,
        source: requestHeader(req, 'x-maxine-source') ?? null,
      };
      const node = {
        authorization: req.headers.authorization ?? null,
        source: (req.headers['x-maxine-source'] as string | undefined) ?? null,
      };
      return { raw, node };
    };
    const { raw, node } = (await send(lines)) as { raw: unknown; node: unknown };
    expect(raw).toEqual(node);
  });

  it('lets a secured discovery be answered without building req.headers', async () => {
    const registry = new Registry({
      clock: systemClock,
      emit: () => undefined,
      allowUndeclared: true,
      defaultTtlSeconds: 3600,
      defaultRemoveAfterSeconds: 3600,
      massExpiryThreshold: 0.5,
      massExpiryMinInstances: 10,
    });
    registry.upsertService('shop', 'orders', {});
    registry.register({
      service: 'orders',
      namespace: 'shop',
      host: '10.0.0.1',
      port: 80,
      weight: 1,
      metadata: {},
    });
    const store = new PolicyStore(() => undefined);
    store.setAcl('shop', 'alice', {
      subjects: [{ kind: 'User', name: 'alice' }],
      rules: [{ services: ['shop/*'], verbs: ['discover'], effect: 'allow' }],
    });
    store.setIntention('shop', 'orders', {
      destination: { name: 'orders' },
      sources: [{ name: 'web', action: 'allow' }],
    });
    const access = new AccessControl({
      authenticator: new Authenticator({
        anonymous: false,
        staticTokens: StaticTokens.parse(`tokens:\n  - { token: ${TOKEN}, user: alice }\n`, 't'),
        hint: 'test',
      }),
      store,
      aclDefault: 'deny',
      intentionDefault: 'deny',
      policyNamespaces: [],
      bootstrapAdmins: [],
      sidecarReadAll: false,
      sourcesOf: () => [],
      serviceLimit: () => undefined,
      audit: () => undefined,
      logger: createLogger('silent'),
    });
    const built: boolean[] = [];
    onRequest = async (req) => {
      // Whether anything asks for req.headers while the discovery is answered.
      let asked = false;
      Object.defineProperty(req, 'headers', {
        configurable: true,
        get() {
          asked = true;
          return Reflect.get(IncomingMessage.prototype, 'headers', req) as unknown;
        },
      });
      const body = await discoverAnswer({ access, registry }, req);
      built.push(asked);
      return JSON.parse(body.toString()) as unknown;
    };
    const lines = [`Authorization: Bearer ${TOKEN}`, 'x-maxine-source: shop/web'];
    // The first resolves the token; the second is the hot path (cached token and decision).
    for (let i = 0; i < 2; i++) {
      const answer = (await send(lines)) as { instance?: { host: string } };
      expect(answer.instance?.host).toBe('10.0.0.1');
    }
    expect(built).toEqual([false, false]);
  });
});
