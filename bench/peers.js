// @ts-check
/**
 * The peers of `npm run bench`: what users would pick instead of Maxine, measured in the same
 * run, on the same machine, with the same load generator and the same bare `node:http`
 * reference (decision 0028).
 *
 * - etcd (the e2e control plane's build, e2e/controlplane/build.sh): a prefix range read of 10
 *   instance-like keys over its HTTP/JSON gateway (`POST /v3/kv/range`, base64 keys), once on
 *   an etcd without auth and once on an etcd with auth on (a user with a read-only role on the
 *   prefix, its token from `/v3/auth/authenticate` in `Authorization`).
 * - Consul v1.14 (MPL-2.0, bench/peers/consul/build.sh): `consul agent -dev`, 10 instances of
 *   `api` registered, `GET /v1/health/service/api?passing`, once with ACLs off and once with
 *   ACLs on (default deny) and a read-only token in `X-Consul-Token`.
 * - Maxine's counterparts: `GET /api/v1/discover/bench/api?all=true` (every instance, like the
 *   peers' answers), on the anonymous operator and on the secured one (token, ACL default
 *   deny, an intention, audit), beside bench/run.js's one-pick `discover-auth`.
 *
 * A peer whose binary is not built is skipped with the reason printed; so is one that fails to
 * start (the bench goes on). BENCH_PEERS=etcd,consul (the default) chooses them, `none` skips
 * them all; BENCH_ETCD / BENCH_CONSUL name a binary instead of the cache's.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { measure } from './load.js';
import { freePort, httpRequest, rssOf } from './processes.js';
import {
  consulInstances,
  etcdKvs,
  etcdPutBody,
  etcdRangeBody,
  etcdToken,
  peerInstance,
  requiredVersion,
  versus,
} from './peers-wire.js';

/** @typedef {import('./load.js').LoadResult} LoadResult */
/** @typedef {import('./report.js').Summary} Summary */
/** @typedef {import('./report.js').Aim} Aim */
/** @typedef {import('node:child_process').ChildProcess} ChildProcess */

const ROOT = join(import.meta.dirname, '..');
const SERVICE = 'api';
const INSTANCES = 10;
const ETCD_PREFIX = `/maxine/bench/${SERVICE}/`;
const CONSUL_PATH = `/v1/health/service/${SERVICE}?passing`;
const START_TIMEOUT_MS = 60_000;
/** Maxine secured ÷ Consul secured throughput (issue 17). */
const CONSUL_AIM = 4;
/** The keys of the scenarios peerScenarios adds (Maxine's counterparts, then the peers'). */
export const PEER_KEYS = [
  'maxine-all',
  'maxine-all-auth',
  'peer-etcd',
  'peer-etcd-auth',
  'peer-consul',
  'peer-consul-auth',
];
/** Load runs each round adds at most: each scenario next to a bare reference run. */
export const PEER_RUNS_PER_ROUND = 2 * PEER_KEYS.length;

/**
 * @typedef {object} Target one measured request of a peer (or of Maxine's counterpart)
 * @property {string} key scenario key
 * @property {string} label
 * @property {number} port
 * @property {number} pid
 * @property {string} method
 * @property {string} path
 * @property {string} [body]
 * @property {Record<string, string>} [headers]
 */

/**
 * @typedef {object} Peer a started peer: its processes and what is measured on them
 * @property {'etcd' | 'consul'} name
 * @property {string} version
 * @property {string} binary
 * @property {Proc[]} procs
 * @property {Target[]} targets
 */

/**
 * @typedef {object} Peers
 * @property {Peer[]} started
 * @property {{ name: string, reason: string }[]} skipped
 */

/**
 * @typedef {object} Proc
 * @property {string} name
 * @property {number} port
 * @property {number} pid
 * @property {ChildProcess} proc
 * @property {() => string} output
 * @property {{ rssMb: number, hwmMb: number }} [memory] VmRSS and VmHWM just before it was stopped
 */

/** @type {Set<ChildProcess>} */
const live = new Set();
let hooked = false;

/** @param {ChildProcess} proc */
function track(proc) {
  if (!hooked) {
    hooked = true;
    // bench/processes.js ends the bench with process.exit on a signal too: this still runs.
    process.on('exit', () => {
      for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    });
  }
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
}

/** @returns {string} the cache root of every built tool (as the build scripts use it) */
function cacheRoot() {
  return process.env.MAXINE_CACHE_DIR ?? join(homedir(), '.cache', 'maxine');
}

/** @param {string} file @param {string} module @returns {string | undefined} */
function versionIn(file, module) {
  return existsSync(file) ? requiredVersion(readFileSync(file, 'utf8'), module) : undefined;
}

/**
 * Where each peer's binary is (built or not), and its version.
 * @returns {{ name: 'etcd' | 'consul', version: string, binary: string, build: string }[]}
 */
export function peerBinaries() {
  const cp = join(ROOT, 'e2e', 'controlplane');
  const k8s = versionIn(join(cp, 'go.mod'), 'k8s.io/kubernetes') ?? '?';
  const etcd = versionIn(join(cp, 'go.mod'), 'go.etcd.io/etcd/server/v3') ?? '?';
  const kwok = versionIn(join(cp, 'kwok', 'go.mod'), 'sigs.k8s.io/kwok') ?? '?';
  const consulMod = join(import.meta.dirname, 'peers', 'consul', 'go.mod');
  const consul = versionIn(consulMod, 'github.com/hashicorp/consul') ?? '?';
  return [
    {
      name: 'etcd',
      version: etcd,
      binary:
        process.env.BENCH_ETCD ??
        join(cacheRoot(), 'controlplane', `${k8s}-${etcd}-${kwok}`, 'bin', 'etcd'),
      build: 'e2e/controlplane/build.sh',
    },
    {
      name: 'consul',
      version: consul,
      binary: process.env.BENCH_CONSUL ?? join(cacheRoot(), 'consul', consul, 'bin', 'consul'),
      build: 'bench/peers/consul/build.sh',
    },
  ];
}

/** @returns {Set<string>} the peers BENCH_PEERS asks for (etcd and consul by default) */
function wanted() {
  const raw = (process.env.BENCH_PEERS ?? 'etcd,consul').trim();
  if (raw === 'none' || raw === '') return new Set();
  return new Set(raw.split(',').map((s) => s.trim()));
}

/**
 * Starts `binary args` and waits until `ready()` resolves true.
 * @param {{ name: string, binary: string, args: string[], port: number, ready: () => Promise<boolean> }} spec
 * @returns {Promise<Proc>}
 */
async function startBinary({ name, binary, args, port, ready }) {
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(proc);
  /** @type {string[]} */
  const tail = [];
  const keep = (/** @type {import("node:buffer").Buffer} */ chunk) => {
    tail.push(chunk.toString('utf8'));
    while (tail.length > 50) tail.shift();
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  /** @type {Error | undefined} */
  let failed;
  proc.on('error', (err) => {
    failed = err; // not executable, say: no 'exit' follows
  });
  const output = () => tail.join('').trim();
  const child = { name, port, pid: proc.pid ?? -1, proc, output };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt += 1) {
    if (failed !== undefined) throw new Error(`${name} did not start: ${failed.message}`);
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}):\n${output()}`);
    if (await ready().catch(() => false)) return child;
    await sleep(100);
  }
  await stopProc(child);
  throw new Error(`${name} not ready after ${START_TIMEOUT_MS} ms:\n${output()}`);
}

/** @param {Proc} child */
async function stopProc(child) {
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  const timer = sleep(5000).then(() => 'timeout');
  if ((await Promise.race([exited, timer])) === 'timeout') {
    proc.kill('SIGKILL');
    await exited;
  }
}

/**
 * One request that must succeed; its body.
 * @param {{ port: number, method?: string, path: string, body?: string, headers?: Record<string, string> }} req
 * @returns {Promise<string>}
 */
async function ok(req) {
  const res = await httpRequest(req);
  if (res.status < 200 || res.status >= 300)
    throw new Error(`${req.method ?? 'GET'} ${req.path}: ${res.status} ${res.body.slice(0, 300)}`);
  return res.body;
}

/**
 * Retries `fn` until it returns without throwing (Consul refuses ACL writes for a moment after
 * it has elected itself leader), bounded in time.
 * @template T
 * @param {string} what
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function retrying(what, fn) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt += 1) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await sleep(200);
    }
  }
  throw new Error(`${what}: ${last instanceof Error ? last.message : String(last)}`);
}

/**
 * @param {{ binary: string, version: string }} bin
 * @param {string} tmp
 * @param {boolean} auth
 * @param {Proc[]} launched where the started process goes at once (stopped if setup fails)
 * @returns {Promise<Target>}
 */
async function startEtcd({ binary, version }, tmp, auth, launched) {
  const port = await freePort();
  const peerPort = await freePort();
  const dir = join(tmp, auth ? 'etcd-auth' : 'etcd');
  mkdirSync(dir, { recursive: true });
  const client = `http://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const name = auth ? 'etcd (auth on)' : 'etcd';
  const proc = await startBinary({
    name,
    binary,
    port,
    ready: async () =>
      (await httpRequest({ port, path: '/health', timeoutMs: 1000 })).status === 200,
    args: [
      ...['--name', 'bench', '--data-dir', join(dir, 'data'), '--log-level', 'error'],
      ...['--listen-client-urls', client, '--advertise-client-urls', client],
      ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer],
      ...['--initial-cluster', `bench=${peer}`],
      // Simple tokens (etcd's default); the TTL is refreshed on use, raised so an idle gap
      // between rounds cannot expire the bench's token.
      ...['--auth-token', 'simple', '--auth-token-ttl', '3600'],
    ],
  });
  launched.push(proc);
  const post = (/** @type {string} */ path, /** @type {unknown} */ body, headers = {}) =>
    ok({ port, method: 'POST', path, body: JSON.stringify(body), headers });
  for (let i = 0; i < INSTANCES; i += 1) {
    const instance = peerInstance(SERVICE, i);
    const body = etcdPutBody(`${ETCD_PREFIX}${instance.id}`, JSON.stringify(instance));
    await ok({ port, method: 'POST', path: '/v3/kv/put', body });
  }
  const range = etcdRangeBody(ETCD_PREFIX);
  /** @type {Record<string, string>} */
  let headers = {};
  if (auth) {
    const secret = randomBytes(16).toString('hex');
    const { key, range_end } = JSON.parse(range);
    await post('/v3/auth/user/add', { name: 'root', password: randomBytes(16).toString('hex') });
    await post('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await post('/v3/auth/role/add', { name: 'discover' });
    await post('/v3/auth/role/grant', {
      name: 'discover',
      perm: { permType: 'READ', key, range_end },
    });
    await post('/v3/auth/user/add', { name: 'bench', password: secret });
    await post('/v3/auth/user/grant', { user: 'bench', role: 'discover' });
    await post('/v3/auth/enable', {});
    // Auth is on: the same read without a token must be refused.
    const anonymous = await httpRequest({
      port,
      method: 'POST',
      path: '/v3/kv/range',
      body: range,
    });
    if (anonymous.status === 200 && etcdKvs(anonymous.body).length > 0)
      throw new Error('etcd answered a range read without a token with auth on');
    const token = etcdToken(
      await post('/v3/auth/authenticate', { name: 'bench', password: secret }),
    );
    headers = { authorization: token };
  }
  const kvs = etcdKvs(
    await ok({ port, method: 'POST', path: '/v3/kv/range', body: range, headers }),
  );
  if (kvs.length !== INSTANCES)
    throw new Error(`etcd range read ${kvs.length} keys, not ${INSTANCES}`);
  const label = auth
    ? `etcd ${version} POST /v3/kv/range, ${INSTANCES} keys, auth on (user token, read-only role)`
    : `etcd ${version} POST /v3/kv/range, ${INSTANCES} keys under a prefix, no auth`;
  return {
    key: auth ? 'peer-etcd-auth' : 'peer-etcd',
    label,
    port,
    pid: proc.pid,
    method: 'POST',
    path: '/v3/kv/range',
    body: range,
    headers,
  };
}

/**
 * @param {{ binary: string, version: string }} bin
 * @param {boolean} acl
 * @param {Proc[]} launched where the started process goes at once (stopped if setup fails)
 * @returns {Promise<Target>}
 */
async function startConsul({ binary, version }, acl, launched) {
  const port = await freePort();
  const [serfLan, serfWan, server] = [await freePort(), await freePort(), await freePort()];
  const management = randomUUID();
  const hcl = [
    // No calls home (the bench must only talk to 127.0.0.1).
    'disable_update_check = true',
    'disable_anonymous_signature = true',
    'ports { grpc = -1, grpc_tls = -1, dns = -1 }',
    ...(acl
      ? [
          `acl { enabled = true, default_policy = "deny", down_policy = "deny", tokens { initial_management = "${management}", agent = "${management}" } }`,
        ]
      : []),
  ];
  const name = acl ? 'consul (ACLs on)' : 'consul';
  const proc = await startBinary({
    name,
    binary,
    port,
    ready: async () => {
      const res = await httpRequest({ port, path: '/v1/status/leader', timeoutMs: 1000 });
      return res.status === 200 && res.body.length > 2;
    },
    args: [
      ...['agent', '-dev', '-node', acl ? 'bench-acl' : 'bench', '-log-level', 'error'],
      ...['-bind', '127.0.0.1', '-client', '127.0.0.1', '-http-port', String(port)],
      ...['-serf-lan-port', String(serfLan), '-serf-wan-port', String(serfWan)],
      ...['-server-port', String(server)],
      ...hcl.flatMap((h) => ['-hcl', h]),
    ],
  });
  launched.push(proc);
  /** @type {Record<string, string>} */
  const admin = acl ? { 'x-consul-token': management } : {};
  /** @type {Record<string, string>} */
  let headers = {};
  if (acl) {
    // A least-privilege token, as Maxine's bench user has: read services and the nodes
    // they run on (the health endpoint needs both), nothing else.
    await retrying('consul ACL policy', () =>
      ok({
        port,
        method: 'PUT',
        path: '/v1/acl/policy',
        headers: admin,
        body: JSON.stringify({
          Name: 'bench-discover',
          Rules: 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }',
        }),
      }),
    );
    const token = JSON.parse(
      await ok({
        port,
        method: 'PUT',
        path: '/v1/acl/token',
        headers: admin,
        body: JSON.stringify({ Description: 'bench', Policies: [{ Name: 'bench-discover' }] }),
      }),
    );
    if (typeof token.SecretID !== 'string') throw new Error('consul: no SecretID in the token');
    headers = { 'x-consul-token': token.SecretID };
  }
  for (let i = 0; i < INSTANCES; i += 1) {
    const instance = peerInstance(SERVICE, i);
    await retrying('consul service registration', () =>
      ok({
        port,
        method: 'PUT',
        path: '/v1/agent/service/register',
        headers: admin,
        body: JSON.stringify({
          ID: instance.id,
          Name: SERVICE,
          Address: instance.host,
          Port: instance.port,
          Tags: [instance.zone],
          Meta: { version: instance.version, zone: instance.zone },
          Weights: { Passing: instance.weight, Warning: 1 },
        }),
      }),
    );
  }
  // The agent syncs its services into the catalog in the background: wait for all of them.
  await retrying('consul catalog sync', async () => {
    const body = await ok({ port, path: CONSUL_PATH, headers });
    const passing = consulInstances(body).filter((i) => i.status === 'passing');
    if (passing.length !== INSTANCES)
      throw new Error(`${passing.length} of ${INSTANCES} instances passing`);
  });
  if (acl) {
    // ACLs are on: without a token the same read must come back empty (filtered) or refused.
    const anonymous = await httpRequest({ port, path: CONSUL_PATH });
    if (anonymous.status === 200 && consulInstances(anonymous.body).length > 0)
      throw new Error('consul answered instances without a token with ACLs on');
  }
  const label = acl
    ? `consul ${version} GET ${CONSUL_PATH}, ${INSTANCES} instances, ACLs on (default deny, read-only token)`
    : `consul ${version} GET ${CONSUL_PATH}, ${INSTANCES} instances, ACLs off`;
  return {
    key: acl ? 'peer-consul-auth' : 'peer-consul',
    label,
    port,
    pid: proc.pid,
    method: 'GET',
    path: CONSUL_PATH,
    headers,
  };
}

/**
 * Starts every peer that is built (each with and without its auth), ready to measure.
 * @param {string} tmp a private temporary directory (etcd's data goes there)
 * @returns {Promise<Peers>}
 */
export async function startPeers(tmp) {
  /** @type {Peers} */
  const peers = { started: [], skipped: [] };
  const want = wanted();
  for (const bin of peerBinaries()) {
    if (!want.has(bin.name)) {
      peers.skipped.push({ name: bin.name, reason: 'not in BENCH_PEERS' });
      continue;
    }
    if (!existsSync(bin.binary)) {
      const reason = `${bin.binary} is not built (run ${bin.build}, or npm run bench:peers)`;
      peers.skipped.push({ name: `${bin.name} ${bin.version}`, reason });
      process.stderr.write(`bench: skipping peer ${bin.name}: ${reason}\n`);
      continue;
    }
    /** @type {Proc[]} */
    const procs = [];
    try {
      /** @type {Target[]} */
      const targets = [];
      for (const secured of [false, true]) {
        targets.push(
          bin.name === 'etcd'
            ? await startEtcd(bin, tmp, secured, procs)
            : await startConsul(bin, secured, procs),
        );
      }
      peers.started.push({
        name: bin.name,
        version: bin.version,
        binary: bin.binary,
        procs,
        targets,
      });
      process.stderr.write(`bench: peer ${bin.name} ${bin.version} ready (${bin.binary})\n`);
    } catch (err) {
      for (const p of procs) await stopProc(p);
      const reason = `failed to start: ${err instanceof Error ? err.message : String(err)}`;
      peers.skipped.push({ name: `${bin.name} ${bin.version}`, reason });
      process.stderr.write(`bench: skipping peer ${bin.name}: ${reason}\n`);
    }
  }
  return peers;
}

/**
 * Stops every peer, noting each process's memory first (for the results).
 * @param {Peers | undefined} peers
 */
export async function stopPeers(peers) {
  for (const peer of peers?.started ?? []) {
    for (const p of peer.procs) {
      if (p.proc.exitCode !== null || p.proc.signalCode !== null) continue;
      try {
        const { rssMb, hwmMb } = rssOf(p.pid);
        p.memory = { rssMb, hwmMb };
      } catch {
        // already gone: nothing to note
      }
      await stopProc(p);
    }
  }
}

/**
 * @param {Peers} peers
 * @returns {string} each peer process's VmRSS and peak VmHWM at the end of the run
 */
function peerMemory(peers) {
  const each = peers.started.flatMap((peer) =>
    peer.procs.map((p) =>
      p.memory === undefined
        ? `${p.name} —`
        : `${p.name} ${p.memory.rssMb.toFixed(0)} MB (peak ${p.memory.hwmMb.toFixed(0)} MB)`,
    ),
  );
  return each.join(', ');
}

/**
 * @typedef {object} MaxineSide Maxine's counterparts of the peers' reads
 * @property {{ port: number, pid: number }} operator the anonymous operator
 * @property {{ port: number, pid: number }} secured the operator of `discover-auth`
 * @property {Record<string, string>} securedHeaders what `discover-auth` sends
 * @property {string} discoverPath
 */

/**
 * The scenarios the peers add to a bench round: Maxine's every-instance reads, then each
 * peer's, all compared with the bare `node:http` reference (`baseline-get`).
 * @param {{ connections: number, pipelining: number, durationSec: number, warmupSec: number }} base
 * @param {Peers} peers
 * @param {MaxineSide} maxine
 * @returns {{ key: string, label: string, reference: string, run: () => Promise<LoadResult> }[]}
 */
export function peerScenarios(base, peers, maxine) {
  if (peers.started.length === 0) return [];
  const all = `${maxine.discoverPath}?all=true`;
  /** @type {Target[]} */
  const targets = [
    {
      key: 'maxine-all',
      label: `maxine GET ${all} (every instance, as the peers answer)`,
      ...maxine.operator,
      method: 'GET',
      path: all,
    },
    {
      key: 'maxine-all-auth',
      label: `maxine GET ${all} with a token, ACL default deny, an intention, audit on`,
      ...maxine.secured,
      method: 'GET',
      path: all,
      headers: maxine.securedHeaders,
    },
    ...peers.started.flatMap((p) => p.targets),
  ];
  return targets.map((t) => ({
    key: t.key,
    label: t.label,
    reference: 'baseline-get',
    run: () =>
      measure({
        ...base,
        port: t.port,
        pid: t.pid,
        method: t.method,
        path: t.path,
        ...(t.body !== undefined && { body: t.body }),
        ...(t.headers !== undefined && { headers: t.headers }),
      }),
  }));
}

const fix = (/** @type {number} */ n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '—');
const int = (/** @type {number | undefined} */ n) =>
  n !== undefined && Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';

/**
 * The aims about peers (issue 17: Maxine secured ≥ 4× Consul secured), for the aims table.
 * @param {Map<string, Summary>} summaries
 * @param {Peers | undefined} peers
 * @returns {Aim[]}
 */
export function peerAims(summaries, peers) {
  if (peers === undefined) return [];
  const consul = peers.started.find((p) => p.name === 'consul');
  if (consul === undefined) {
    const why = peers.skipped.find((s) => s.name.startsWith('consul'))?.reason ?? 'not run';
    return [
      {
        what: 'maxine secured ÷ consul secured throughput (every instance)',
        target: `≥ ${CONSUL_AIM}×`,
        measured: `not measured: ${why}`,
        met: false,
      },
    ];
  }
  const v = versus(summaries.get('maxine-all-auth'), summaries.get('peer-consul-auth'));
  return [
    {
      what: `maxine secured ÷ consul ${consul.version} with ACLs on, throughput (every instance; CPU µs/req consul ÷ maxine: ${fix(v.cpu)}×)`,
      target: `≥ ${CONSUL_AIM}×`,
      measured: `${fix(v.throughput)}×`,
      met: v.throughput >= CONSUL_AIM,
    },
  ];
}

/**
 * The comparison table: each peer read beside Maxine's like-for-like one.
 * @param {Map<string, Summary>} summaries
 * @param {Peers} peers
 * @returns {string}
 */
export function peersTable(summaries, peers) {
  const lines = [
    '| comparison | maxine req/s · p99 ms · CPU µs/req | peer req/s · p99 ms · CPU µs/req | maxine ÷ peer, throughput | peer ÷ maxine, CPU per request |',
    '|---|---:|---:|---:|---:|',
  ];
  const cell = (/** @type {Summary | undefined} */ s) =>
    s === undefined ? '—' : `${int(s.rps)} · ${fix(s.p99Ms)} · ${int(s.cpuUsPerRequest)}`;
  for (const peer of peers.started) {
    for (const t of peer.targets) {
      const secured = t.key.endsWith('-auth');
      const pairs = secured
        ? [
            ['maxine-all-auth', 'every instance, secured'],
            ['discover-auth', 'maxine picks one instance, secured'],
          ]
        : [['maxine-all', 'every instance, anonymous']];
      for (const [maxineKey, what] of pairs) {
        const m = summaries.get(/** @type {string} */ (maxineKey));
        const p = summaries.get(t.key);
        const v = versus(m, p);
        lines.push(
          `| ${peer.name} ${peer.version} ${secured ? 'auth on' : 'no auth'} vs maxine ${maxineKey} (${what}) | ${cell(m)} | ${cell(p)} | ${fix(v.throughput)}× | ${fix(v.cpu)}× |`,
        );
      }
    }
  }
  for (const s of peers.skipped) lines.push(`| ${s.name}: skipped, ${s.reason} | — | — | — | — |`);
  return lines.join('\n');
}

/**
 * @param {Map<string, Summary>} summaries
 * @returns {string} the size of each measured answer, `key N` joined by commas
 */
function answerSizes(summaries) {
  return ['discover-auth', ...PEER_KEYS]
    .flatMap((key) => {
      const s = summaries.get(key);
      return s === undefined ? [] : [`${key} ${int(s.bytesPerResponse)}`];
    })
    .join(', ');
}

/**
 * The peers' section of a results file.
 * @param {Map<string, Summary>} summaries
 * @param {Peers | undefined} peers
 * @returns {string[]} Markdown lines (none when peers were not asked for)
 */
export function peersSection(summaries, peers) {
  if (peers === undefined) return [];
  return [
    '## Peers (same run, decision 0028)',
    '',
    `- etcd: \`etcd\` from the e2e control plane's cache, one member on 127.0.0.1; ${INSTANCES} keys \`${ETCD_PREFIX}<id>\` whose values are instance JSON (host, port, version, zone, weight); \`POST /v3/kv/range\` on the gateway with the prefix as \`key\`/\`range_end\` (base64), a linearizable read (etcd's default). Secured: a second etcd with auth enabled (root user, a user \`bench\` whose role may only READ the prefix), simple tokens, the token from \`POST /v3/auth/authenticate\` sent in \`Authorization\`. A read without the token is checked to be refused first.`,
    `- consul: \`consul agent -dev\` (server, in memory, update check off, DNS and gRPC off), ${INSTANCES} services \`${SERVICE}\` registered on the agent, \`GET ${CONSUL_PATH}\` (default consistency). Secured: a second agent with \`acl { enabled = true, default_policy = "deny" }\`, the request carrying a token whose policy reads services and nodes only (\`X-Consul-Token\`); a read without a token is checked to come back empty first. Consul has no audit log in its open-source edition and its intentions apply to mesh connections, not to catalog reads: its secured read is token + policy + result filtering.`,
    `- Maxine's like-for-like reads return every instance (\`?all=true\`); \`discover-auth\` (one picked instance) is shown beside them too. "maxine ÷ peer, throughput" divides their req/s ratios to the bare reference, each measured next to its own reference run; CPU per request is server user + system time per answer (the sturdier figure on a shared machine).`,
    '',
    peersTable(summaries, peers),
    '',
    `Bytes per answer on the wire, headers included: ${answerSizes(summaries)}.`,
    '',
    `Peer memory after the last round (VmRSS, written when the peers are stopped): ${peerMemory(peers)}.`,
    '',
  ];
}
