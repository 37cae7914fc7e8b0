/**
 * request-shape.ts in a process of its own (decision 0041): on a secured operator, the requests
 * answered by the fast path (discovery, heartbeats, registrations) and those express answers
 * (probes, metrics, listings, mesh configuration, a 404, refusals) end with one hidden class,
 * and their responses with another — so Node's HTTP functions keep monomorphic caches whatever
 * mix of requests arrives. A control shows the check can fail: without the shaped
 * constructors, express's requests end with other hidden classes than the fast path's.
 * `%HaveSameMap` is V8's own answer (--allow-natives-syntax).
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const script = `
import { createRequire } from 'node:module';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, ORDERS_TOKENS, startSecuredOrders } from './test/helpers/auth.ts';
const http = createRequire(import.meta.url)('node:http');
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)');
const seen = [];
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request') seen.push({ what: req.method + ' ' + req.url, req, res });
  return emit.apply(this, arguments);
};
const op = await startSecuredOrders(mkdtempSync(join(tmpdir(), 'maxine-shape-')), {
  allow: ['web'],
  config: { auditDir: mkdtempSync(join(tmpdir(), 'maxine-shape-audit-')) },
});
const { root, alice } = ORDERS_TOKENS;
const web = { 'x-maxine-source': 'shop/web' };
const statuses = [];
const ask = async (method, path, opts) => {
  const r = await call(op.url, method, path, opts);
  statuses.push(method + ' ' + path.replace(/orders-[0-9a-f]+/, '{id}') + ' ' + r.status);
  return r;
};
const reg = await call(op.url, 'POST', '/api/v1/instances', {
  token: root,
  body: { service: 'orders', namespace: 'shop', host: '10.0.0.7', port: 8080 },
});
const id = reg.body.instance.id;
const round = async () => {
  await ask('GET', '/api/v1/discover/shop/orders', { token: alice, headers: web });
  await ask('POST', '/api/v1/instances', {
    token: root,
    body: { service: 'orders', namespace: 'shop', host: '10.0.0.7', port: 8080 },
  });
  await ask('GET', '/readyz', {});
  await ask('GET', '/healthz', {});
  await ask('GET', '/metrics', { token: root });
  await ask('GET', '/no/such/path', { token: root });
  await ask('GET', '/api/v1/services', { token: root });
  await ask('GET', '/api/v1/services/shop/orders', { token: root });
  await ask('GET', '/api/v1/services/shop/orders/mesh/istio', { token: root });
  await ask('GET', '/api/v1/discover/shop/orders', { token: 'not-a-token', headers: web });
  await ask('POST', '/api/v1/instances', { token: root, body: { service: 'orders' } });
  await ask('PUT', '/api/v1/instances/' + id + '/heartbeat', { token: root, body: { status: 'passing' } });
  await ask('GET', '/api/v1/discover/shop/orders', { token: alice, headers: web });
};
// The first round settles what V8 learns of each field (a map it replaces is then deprecated).
await round();
seen.length = 0;
statuses.length = 0;
await round();
// Let every response finish and Node's clean-up after it run.
await new Promise((resolve) => setTimeout(resolve, 200));
const first = seen[0];
const differ = (key) => seen.filter((s) => !sameMap(first[key], s[key])).map((s) => s.what);
const shaped = { requests: differ('req'), responses: differ('res'), count: seen.length, statuses };
await op.stop();

// The control: an express app on Node's own constructors, one route answered before express.
const { default: express } = await import('express');
const app = express();
app.get('/routed/:name', (_req, res) => { res.json({ ok: true }); });
const plain = [];
const server = http.createServer((req, res) => {
  plain.push(req);
  if (req.url === '/raw') res.end('raw');
  else app(req, res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = 'http://127.0.0.1:' + server.address().port;
for (const path of ['/raw', '/routed/a', '/nowhere']) await (await fetch(base + path)).text();
await new Promise((resolve) => setTimeout(resolve, 200));
server.close();
const control = plain.slice(1).map((req) => sameMap(plain[0], req));
process.stdout.write(JSON.stringify({ shaped, control }));
process.exit(0);
`;

describe('requests and responses of one hidden class, in their own process', () => {
  it('ends fast-path and express requests alike, where plain express would not', async () => {
    const { stdout } = await run(
      process.execPath,
      [...['--allow-natives-syntax', '--import', 'tsx'], ...['--input-type=module', '-e', script]],
      { cwd: process.cwd(), encoding: 'utf8', env: { ...process.env, MAXINE_LOG_LEVEL: 'warn' } },
    );
    const r = JSON.parse(stdout.slice(stdout.lastIndexOf('{"shaped"'))) as {
      shaped: { requests: string[]; responses: string[]; count: number; statuses: string[] };
      control: boolean[];
    };
    // The requests were answered as each path answers (not all refused the same way).
    expect(r.shaped.statuses).toEqual([
      'GET /api/v1/discover/shop/orders 200',
      'POST /api/v1/instances 200', // the same host:port again
      'GET /readyz 200',
      'GET /healthz 200',
      'GET /metrics 200',
      'GET /no/such/path 404',
      'GET /api/v1/services 200',
      'GET /api/v1/services/shop/orders 200',
      'GET /api/v1/services/shop/orders/mesh/istio 200',
      'GET /api/v1/discover/shop/orders 401',
      'POST /api/v1/instances 400',
      'PUT /api/v1/instances/{id}/heartbeat 200',
      'GET /api/v1/discover/shop/orders 200',
    ]);
    expect(r.shaped.count).toBe(r.shaped.statuses.length);
    expect(r.shaped.requests).toEqual([]);
    expect(r.shaped.responses).toEqual([]);
    // Plain express: the raw request's hidden class is not the routed ones' nor the 404's.
    expect(r.control).toEqual([false, false]);
  }, 60_000);
});
