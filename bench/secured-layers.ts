/**
 * What each layer of a secured discovery costs, in CPU µs per request, measured in-process on
 * the real classes (no sockets): the bearer token to a principal, the ACL decision, the
 * intention check with its source header, the per-service rate-limit lookup, the audit
 * wrapper, the pre-serialized answer, the latency histogram, and the whole `discoverAnswer`.
 * Each layer runs in a loop on its own with the inputs of bench/run.js's `discover-auth`
 * (a static token, ACL default deny, an intention allowing `bench/client`, audit on); CPU time
 * (process.cpuUsage) is sturdier than wall time on a shared machine. Node's own HTTP work
 * (parsing, the socket write) is not here: bench/run.js measures the whole request.
 *
 * Run: npx tsx bench/secured-layers.ts (BENCH_LAYER_ITERATIONS, default 300000).
 */
import { Buffer } from 'node:buffer';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { NO_QUERY } from '../common/discover-request.js';
import { createLogger } from '../common/logger.js';
import { Authenticator } from '../operator/auth/authenticator.js';
import { StaticTokens } from '../operator/auth/static-tokens.js';
import { discoverAnswer } from '../operator/http/discover.js';
import { callerOf, originOf } from '../operator/http/caller.js';
import { AccessControl } from '../operator/policy/access.js';
import { PolicyStore } from '../operator/policy/store.js';
import { systemClock } from '../operator/registry/clock.js';
import { Registry } from '../operator/registry/registry.js';
import { LatencyHistogram } from '../operator/telemetry/latency.js';

const N = Number(process.env.BENCH_LAYER_ITERATIONS ?? 300_000);
const TOKEN = `bench-${'x'.repeat(48)}`;
const SERVICE = { namespace: 'bench', name: 'api' };

function setUp(): {
  access: AccessControl;
  aggregated: AccessControl;
  anonymous: AccessControl;
  registry: Registry;
  audited: { n: number };
} {
  const registry = new Registry({
    clock: systemClock,
    emit: () => undefined,
    allowUndeclared: true,
    defaultTtlSeconds: 3600,
    defaultRemoveAfterSeconds: 3600,
    massExpiryThreshold: 0.5,
    massExpiryMinInstances: 10,
  });
  registry.upsertService('bench', 'api', {});
  for (let i = 0; i < 10; i++)
    registry.register({
      service: 'api',
      namespace: 'bench',
      host: `10.0.0.${i + 1}`,
      port: 8080,
      version: 'v1',
      zone: i % 2 === 0 ? 'a' : 'b',
      weight: 1 + (i % 3),
      metadata: {},
    });
  const store = new PolicyStore(() => undefined);
  store.setAcl('bench', 'bench', {
    subjects: [{ kind: 'User', name: 'bench' }],
    rules: [{ services: ['bench/*'], verbs: ['discover', 'read'], effect: 'allow' }],
  });
  store.setIntention('bench', 'api', {
    destination: { name: 'api' },
    sources: [
      { name: 'client', action: 'allow' },
      { name: '*', action: 'deny' },
    ],
  });
  const audited = { n: 0 };
  const specs = new Map([['bench/api', {}]]);
  const secured = (auditAllowedReads?: 'aggregate'): AccessControl =>
    new AccessControl({
      ...(auditAllowedReads !== undefined && { auditAllowedReads }),
      authenticator: new Authenticator({
        anonymous: true,
        staticTokens: StaticTokens.parse(`tokens:\n  - { token: ${TOKEN}, user: bench }\n`, 't'),
        hint: 'bench',
      }),
      store,
      aclDefault: 'deny',
      intentionDefault: 'allow',
      policyNamespaces: ['maxine-system'],
      bootstrapAdmins: [],
      sidecarReadAll: true,
      sourcesOf: () => [],
      serviceLimit: (s) =>
        (specs.get(`${s.namespace}/${s.name}`) as { rateLimit?: never }).rateLimit,
      audit: () => void (audited.n += 1),
      logger: createLogger('silent'),
    });
  const access = secured();
  // --audit-allowed-reads aggregate: every allowed discovery counted (flushed only at the end).
  const aggregated = secured('aggregate');
  const anonymous = new AccessControl({
    authenticator: new Authenticator({ anonymous: true, hint: 'bench' }),
    store: new PolicyStore(() => undefined),
    aclDefault: 'allow',
    intentionDefault: 'allow',
    policyNamespaces: ['maxine-system'],
    bootstrapAdmins: [],
    sidecarReadAll: true,
    sourcesOf: () => [],
    serviceLimit: () => undefined,
    logger: createLogger('silent'),
  });
  return { access, aggregated, anonymous, registry, audited };
}

/**
 * A request as Node's server hands it over: a real IncomingMessage whose `rawHeaders` are new
 * strings each time (as parsed from the socket) and whose `headers` object is already built
 * (the server reads `host` and `expect` from it before any handler runs). `secured` adds the
 * token and the `x-maxine-source` header.
 */
const HEAD = Buffer.from(
  `host\n127.0.0.1:7710\nauthorization\nBearer ${TOKEN}\nx-maxine-source\nbench/client`,
  'latin1',
);
const ANON_HEAD = Buffer.from('host\n127.0.0.1:7710', 'latin1');
const SOCKET = new Socket();
/** How many raw header entries the `headers` getter reads (Node's parser sets it). */
const HEADERS_COUNT = Object.getOwnPropertySymbols(new IncomingMessage(SOCKET)).find(
  (s) => s.description === 'kHeadersCount',
);
function request(secured = true): IncomingMessage {
  const req = new IncomingMessage(SOCKET);
  req.method = 'GET';
  req.url = '/api/v1/discover/bench/api';
  req.rawHeaders = (secured ? HEAD : ANON_HEAD).toString('latin1').split('\n');
  if (HEADERS_COUNT !== undefined)
    (req as unknown as Record<symbol, number>)[HEADERS_COUNT] = req.rawHeaders.length;
  // Node's server reads req.headers (host, expect) before any handler: the object is built.
  if (req.headers.host === undefined) throw new Error('the request has no host header');
  return req;
}

/** CPU ns per call of `fn`, after a warm-up of a tenth as many calls. */
function cpuNsPerCall(fn: () => unknown): number {
  let sink = 0;
  for (let i = 0; i < N / 10; i++) if (fn() !== undefined) sink++;
  const start = process.cpuUsage();
  for (let i = 0; i < N; i++) if (fn() !== undefined) sink++;
  const used = process.cpuUsage(start);
  if (sink < 0) throw new Error('unreachable');
  return ((used.user + used.system) * 1000) / N;
}

async function main(): Promise<void> {
  const { access, aggregated, anonymous, registry, audited } = setUp();
  const warm = request();
  await aggregated.principal(warm, 'discover', originOf(warm));
  const req = request();
  // The first request resolves the token (a promise); every later one is a cache hit.
  await access.principal(req, 'discover', originOf(req));
  const principal = access.principal(req, 'discover', originOf(req));
  if (principal instanceof Promise) throw new Error('the token should be cached');
  const caller = callerOf(req, principal);
  const histogram = new LatencyHistogram(
    'x',
    'x',
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01],
  );
  const series = histogram.series$({ route: 'r', method: 'GET', status: '200' });
  const fresh = (): IncomingMessage => request();
  const layers: [string, () => unknown][] = [
    [
      'a fresh request object, its raw headers split anew (the loop overhead of the rows below that build one)',
      fresh,
    ],
    [
      'authentication: bearer token → principal (hash + cache)',
      () => access.principal(fresh(), 'discover', originOf(req)),
    ],
    ['ACL: discover on bench/api', () => access.decide(principal, 'discover', SERVICE)],
    [
      'ACL + intention (x-maxine-source) + rate-limit lookup: access.discover',
      () => access.discover(callerOf(fresh(), principal), SERVICE),
    ],
    [
      'intention alone: bench/client → bench/api',
      () => access.intention({ namespace: 'bench', name: 'client' }, SERVICE),
    ],
    [
      'audit wrapper of an allowed read (access.audited)',
      () => access.audited(caller, { action: 'discover', service: SERVICE }, () => 1),
    ],
    [
      'answer: pre-serialized bytes (registry.discoverParsed)',
      () => registry.discoverParsed('bench/api', NO_QUERY),
    ],
    [
      'metrics: two clock reads and one histogram observation',
      () => {
        const t = performance.now();
        series.observe((performance.now() - t) / 1000);
        return 1;
      },
    ],
    [
      'whole discoverAnswer (all of the above but metrics)',
      () => discoverAnswer({ access, registry }, fresh()),
    ],
    [
      'the same with --audit-allowed-reads aggregate (each allowed discovery counted)',
      () => discoverAnswer({ access: aggregated, registry }, fresh()),
    ],
    [
      'for comparison: whole discoverAnswer of an anonymous request (no token, no source header, ACL default allow)',
      () => discoverAnswer({ access: anonymous, registry }, request(false)),
    ],
  ];
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  process.stdout.write(
    `node ${process.version}, ${N} iterations per row, load average ${load}\n\n`,
  );
  process.stdout.write('| layer | CPU µs per request |\n|---|---:|\n');
  for (const [label, fn] of layers)
    process.stdout.write(`| ${label} | ${(cpuNsPerCall(fn) / 1000).toFixed(3)} |\n`);
  process.stdout.write(
    `\naudit records written during the loops: ${audited.n}; load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
}

await main();
