// A real Kubernetes control plane on 127.0.0.1 for the end-to-end tests: etcd and
// kube-apiserver, plus (with `workloads`) kube-controller-manager, kube-scheduler and kwok
// with one fake Node. It generates the certificates and starts and stops the processes; see
// README.md next to this file for why every flag and certificate is what it is.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
/** kwok's pod stages (kwok/stages.yaml): its built-in ones, with Ready honouring readiness gates. */
const KWOK_STAGES = path.join(HERE, 'kwok', 'stages.yaml');
const BUILD_SH = path.join(HERE, 'build.sh');

/** Seconds from the start of the PKI generation to each milestone. */
export interface Timings {
  pki: number;
  etcd: number;
  apiserver: number;
  workloads?: number;
}

export interface ProcessInfo {
  name: string;
  pid: number;
  /** The executable, to recognise the process again (pid reuse) when stopping by pid. */
  cmd: string;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  dir: string;
  server: string;
  /** Admin kubeconfig path (client cert in system:masters). */
  kubeconfig: string;
  binDir: string;
  processes: readonly ProcessInfo[];
  timings: Timings;
  kubectl(args: string[], opts?: { input?: string; kubeconfig?: string }): Promise<KubectlResult>;
  /**
   * Stops kube-apiserver (SIGTERM, as a rolling upgrade does) and, after `downMs`, starts it
   * again on the same port and etcd; resolves once it is ready again.
   */
  restartApiServer(opts?: { downMs?: number }): Promise<void>;
  /** Stops every process it started (SIGTERM, then SIGKILL after a grace) and removes dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Also start the controller-manager, the scheduler and kwok with one fake Node. */
  workloads?: boolean;
  /** State directory (created, must not exist or be empty). Default: a new mktemp dir. */
  dir?: string;
  /** Start the components in their own session and let them outlive this process (cli.ts). */
  detached?: boolean;
  /** Bin dir with the six binaries. Default: ensureBinaries(). */
  binDir?: string;
  /**
   * The range kwok takes pod IPs from (`--cidr`). Default 10.244.0.1/16. A range in 127.0.0.0/8
   * gives pods addresses this host can listen on, so a test can serve each pod's app itself.
   */
  podCidr?: string;
  /** More kube-apiserver flags (a benchmark's audit log, for example). */
  apiserverArgs?: readonly string[];
}

const BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'kwok',
];
const STOP_GRACE_MS = 10_000;
const LOG_TAIL_LINES = 25;

/** Runs build.sh (a no-op when the cache is complete) and returns the bin dir. */
export async function ensureBinaries(): Promise<string> {
  const child = spawn('bash', [BUILD_SH], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CI: process.env.CI ?? 'true' },
  });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  const binDir = stdout.trim().split('\n').pop()?.trim() ?? '';
  if (code !== 0 || binDir === '') throw new Error(`${BUILD_SH} failed with exit code ${code}`);
  for (const b of BINARIES) {
    if (!fs.existsSync(path.join(binDir, b)))
      throw new Error(`${BUILD_SH} printed ${binDir}, but it has no ${b}`);
  }
  return binDir;
}

// ------------------------------------------------------------------ processes

interface Proc extends ProcessInfo {
  log: string;
  child?: ChildProcess;
}

/** Children of this process that must not outlive it (non-detached starts). */
const live = new Set<Proc>();
const liveDirs = new Set<string>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  // Only synchronous work is possible here: SIGKILL whatever is left and drop the dirs.
  process.on('exit', () => {
    for (const p of live) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of liveDirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

/** True while the process exists and is not a zombie. */
function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ..." - comm may contain spaces and parentheses, the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && fs.existsSync('/proc/self/stat'))
      return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function exited(p: Proc): boolean {
  if (p.child) return p.child.exitCode !== null || p.child.signalCode !== null;
  return !pidAlive(p.pid);
}

/** Whether pid still runs the executable it was started as (guards against pid reuse). */
function sameProcess(p: ProcessInfo): boolean {
  try {
    const argv0 = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0')[0];
    return argv0 === p.cmd;
  } catch {
    return pidAlive(p.pid);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitExit(p: Proc, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!exited(p)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

function signal(p: Proc, sig: NodeJS.Signals): void {
  try {
    process.kill(p.pid, sig);
  } catch {
    // already gone
  }
}

/** Stops processes in reverse start order: SIGTERM, then SIGKILL after the grace period. */
async function stopProcs(procs: readonly Proc[], graceMs = STOP_GRACE_MS): Promise<void> {
  for (const p of [...procs].reverse()) {
    if (!exited(p)) {
      signal(p, 'SIGTERM');
      if (!(await waitExit(p, graceMs))) {
        process.stderr.write(
          `[controlplane] ${p.name} (pid ${p.pid}) ignored SIGTERM, sending SIGKILL\n`,
        );
        signal(p, 'SIGKILL');
        await waitExit(p, 5_000);
      }
    }
    live.delete(p);
  }
}

/**
 * Stops processes recorded by an earlier run (cli.ts `down`) and removes their dir. A pid
 * that now belongs to another program is left alone.
 */
export async function stopProcesses(
  processes: readonly ProcessInfo[],
  dir?: string,
): Promise<void> {
  const procs = processes.filter(sameProcess).map((p) => ({ ...p, log: '' }));
  await stopProcs(procs);
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
}

interface SpawnOptions {
  dir: string;
  detached: boolean;
  env?: NodeJS.ProcessEnv;
}

function startProc(name: string, cmd: string, args: string[], o: SpawnOptions): Proc {
  const log = path.join(o.dir, 'logs', `${name}.log`);
  const fd = fs.openSync(log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      stdio: ['ignore', fd, fd],
      detached: o.detached,
      env: o.env ?? process.env,
    });
  } finally {
    fs.closeSync(fd);
  }
  child.on('error', (e) => fs.appendFileSync(log, `\n[controlplane] spawn ${cmd}: ${e.message}\n`));
  if (child.pid === undefined) throw new ComponentError(name, log, `could not start ${cmd}`);
  const p: Proc = { name, pid: child.pid, cmd, log };
  if (o.detached) {
    child.unref();
  } else {
    p.child = child;
    live.add(p);
  }
  return p;
}

class ComponentError extends Error {
  constructor(
    readonly component: string,
    readonly log: string,
    message: string,
  ) {
    super(message);
  }
}

function tail(file: string, lines = LOG_TAIL_LINES): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls check every 200 ms until it is true; fails early when proc exits. */
async function waitUntil(
  what: string,
  proc: Proc,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (exited(proc))
      throw new ComponentError(
        proc.name,
        proc.log,
        `${proc.name} exited while waiting for ${what}`,
      );
    if (Date.now() >= deadline) {
      throw new ComponentError(
        proc.name,
        proc.log,
        `timed out after ${timeoutMs / 1000}s waiting for ${what}`,
      );
    }
    await sleep(200);
  }
}

// ------------------------------------------------------------------ helpers

/** Distinct free ports on 127.0.0.1: all are held open together, then released. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function get(url: string, tls?: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const onRes = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    };
    const req = tls
      ? https.get(url, { ...tls, timeout: 2000 }, onRes)
      : http.get(url, { timeout: 2000 }, onRes);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function run(cmd: string, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => undefined); // EPIPE if the command exits without reading
    child.stdin.end(input ?? '');
  });
}

async function openssl(args: string[]): Promise<void> {
  await execFileP('openssl', args);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

/** CA, apiserver serving cert, admin client cert, SA signing key and a static token. */
async function makePki(pki: string): Promise<{ token: string }> {
  const f = (name: string) => path.join(pki, name);
  await openssl([
    ...['req', '-x509', '-new', '-nodes', ...EC, '-keyout', f('ca.key'), '-out', f('ca.crt')],
    ...['-days', '1', '-subj', '/CN=maxine-e2e-ca'],
    ...[
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
  ]);
  const sign = async (name: string, subj: string, ext: string[]) => {
    await openssl([
      'req',
      '-new',
      '-nodes',
      ...EC,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
      '-subj',
      subj,
    ]);
    await fsp.writeFile(f(`${name}.ext`), ext.join('\n') + '\n');
    await openssl([
      ...[
        'x509',
        '-req',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f('ca.crt'),
        '-CAkey',
        f('ca.key'),
        '-CAcreateserial',
      ],
      ...['-days', '1', '-sha256', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`)],
    ]);
  };
  const sans = [
    'IP:127.0.0.1',
    'DNS:localhost',
    'IP:10.96.0.1',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ];
  // The two certs and the RSA key are independent; -CAcreateserial writes ca.srl, so sign one after the other.
  const rsa = (async () => {
    await openssl(['genrsa', '-out', f('sa.key'), '2048']);
    await openssl(['rsa', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')]);
  })();
  await sign('apiserver', '/CN=kube-apiserver', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${sans.join(',')}`,
  ]);
  await sign('admin', '/O=system:masters/CN=maxine-e2e-admin', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth',
  ]);
  await rsa;
  const token = (await execFileP('openssl', ['rand', '-hex', '24'])).stdout.trim();
  await fsp.writeFile(
    f('tokens.csv'),
    `${token},maxine-e2e-token-admin,maxine-e2e-token-admin,"system:masters"\n`,
  );
  return { token };
}

function kubeconfigYaml(server: string, caPem: Buffer, user: string[]): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: maxine-e2e',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${caPem.toString('base64')}`,
    'users:',
    '- name: maxine-e2e-admin',
    '  user:',
    ...user.map((l) => `    ${l}`),
    'contexts:',
    '- name: maxine-e2e',
    '  context:',
    '    cluster: maxine-e2e',
    '    user: maxine-e2e-admin',
    'current-context: maxine-e2e',
    '',
  ].join('\n');
}

const NODE_YAML = `apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
`;

// ------------------------------------------------------------------ start

interface Ctx {
  bin: string;
  dir: string;
  pki: string;
  kubeconfig: string;
  spawn: SpawnOptions;
  procs: Proc[];
  kubectl: ControlPlane['kubectl'];
  podCidr: string;
  apiserverArgs: readonly string[];
}

async function startEtcd(ctx: Ctx, clientPort: number, peerPort: number): Promise<string> {
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const etcd = startProc(
    'etcd',
    path.join(ctx.bin, 'etcd'),
    [
      '--name=maxine-e2e',
      `--data-dir=${path.join(ctx.dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=maxine-e2e=${peer}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    ctx.spawn,
  );
  ctx.procs.push(etcd);
  await waitUntil('etcd /health', etcd, 30_000, async () => {
    const r = await get(`${url}/health`);
    return r.status === 200 && r.body.includes('"health":"true"');
  });
  return url;
}

async function startApiserver(ctx: Ctx, etcdUrl: string, port: number): Promise<void> {
  const pki = (name: string) => path.join(ctx.pki, name);
  const api = startProc(
    'kube-apiserver',
    path.join(ctx.bin, 'kube-apiserver'),
    [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${pki('apiserver.crt')}`,
      `--tls-private-key-file=${pki('apiserver.key')}`,
      `--client-ca-file=${pki('ca.crt')}`,
      `--token-auth-file=${pki('tokens.csv')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-signing-key-file=${pki('sa.key')}`,
      `--service-account-key-file=${pki('sa.pub')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=Node,RBAC',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      `--cert-dir=${path.join(ctx.dir, 'apiserver-certs')}`,
      '--profiling=false',
      ...ctx.apiserverArgs,
    ],
    ctx.spawn,
  );
  ctx.procs.push(api);
  const tls: https.RequestOptions = {
    ca: fs.readFileSync(pki('ca.crt')),
    cert: fs.readFileSync(pki('admin.crt')),
    key: fs.readFileSync(pki('admin.key')),
  };
  // 401/403/500 (authn/RBAC bootstrap still running) count as "not yet".
  await waitUntil('kube-apiserver /readyz', api, 90_000, async () => {
    const r = await get(`https://127.0.0.1:${port}/readyz`, tls);
    return r.status === 200;
  });
}

async function startWorkloads(ctx: Ctx): Promise<void> {
  const kc = `--kubeconfig=${ctx.kubeconfig}`;
  const kcm = startProc(
    'kube-controller-manager',
    path.join(ctx.bin, 'kube-controller-manager'),
    [
      kc,
      '--leader-elect=false',
      '--secure-port=0',
      '--controllers=*',
      `--service-account-private-key-file=${path.join(ctx.pki, 'sa.key')}`,
      `--root-ca-file=${path.join(ctx.pki, 'ca.crt')}`,
    ],
    ctx.spawn,
  );
  ctx.procs.push(kcm);
  const scheduler = startProc(
    'kube-scheduler',
    path.join(ctx.bin, 'kube-scheduler'),
    [kc, '--leader-elect=false', '--secure-port=0'],
    ctx.spawn,
  );
  ctx.procs.push(scheduler);
  // kwok always loads ~/.kwok/kwok.yaml: give it an empty HOME so a developer's config can't leak in.
  const home = path.join(ctx.dir, 'kwok-home');
  await fsp.mkdir(home, { recursive: true });
  const kwok = startProc(
    'kwok',
    path.join(ctx.bin, 'kwok'),
    [
      kc,
      '--manage-all-nodes=true',
      `--cidr=${ctx.podCidr}`,
      '--node-ip=127.0.0.1',
      // A node Lease renewed as kubelet does: without it the node's only heartbeat is its status,
      // which kwok posts less often than the node-lifecycle controller's grace period, so after
      // a minute every pod was marked NotReady ("NodeNotReady").
      '--node-lease-duration-seconds=40',
      // Pod stages that compute Ready from the containers and the readiness gates, as kubelet.
      `--config=${KWOK_STAGES}`,
    ],
    { ...ctx.spawn, env: { ...process.env, HOME: home } },
  );
  ctx.procs.push(kwok);

  const applied = await ctx.kubectl(['apply', '-f', '-'], { input: NODE_YAML });
  if (applied.code !== 0)
    throw new ComponentError('kube-apiserver', '', `creating the fake node: ${applied.stderr}`);
  await waitUntil('node kwok-node-0 Ready', kwok, 60_000, async () => {
    const jp = '-o=jsonpath={.status.conditions[?(@.type=="Ready")].status}';
    const r = await ctx.kubectl(['get', 'node', 'kwok-node-0', jp]);
    return r.code === 0 && r.stdout.trim() === 'True';
  });
  // The ServiceAccount admission plugin rejects pods until the controller has created "default".
  await waitUntil('serviceaccount default/default', kcm, 60_000, async () => {
    const r = await ctx.kubectl([
      '-n',
      'default',
      'get',
      'serviceaccount',
      'default',
      '-o',
      'name',
    ]);
    return r.code === 0;
  });
  for (const p of [scheduler, kwok, kcm]) {
    if (exited(p)) throw new ComponentError(p.name, p.log, `${p.name} exited during start`);
  }
}

const elapsed = (t0: number) => Math.round((performance.now() - t0) / 10) / 100;

/**
 * Starts etcd and kube-apiserver (and with `workloads` the controller-manager, scheduler and
 * kwok with a fake node) on free ports of 127.0.0.1, all state in a fresh directory. On failure
 * everything already started is stopped and the error carries the failing component's log tail.
 */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const bin = opts.binDir ?? (await ensureBinaries());
  const detached = opts.detached ?? false;
  let dir: string;
  if (opts.dir) {
    dir = path.resolve(opts.dir);
    await fsp.mkdir(dir, { recursive: true });
    if ((await fsp.readdir(dir)).length > 0) throw new Error(`${dir} is not empty`);
  } else {
    dir = await fsp.mkdtemp(path.join(process.env.TMPDIR ?? os.tmpdir(), 'maxine-cp.'));
  }
  const pki = path.join(dir, 'pki');
  await fsp.mkdir(pki);
  await fsp.mkdir(path.join(dir, 'logs'));
  if (!detached) {
    installExitHandler();
    liveDirs.add(dir);
  }
  const kubeconfig = path.join(dir, 'admin.kubeconfig');
  const kubectlBin = path.join(bin, 'kubectl');
  const kubectl: ControlPlane['kubectl'] = (args, o = {}) =>
    run(kubectlBin, [`--kubeconfig=${o.kubeconfig ?? kubeconfig}`, ...args], o.input);
  const ctx: Ctx = {
    bin,
    dir,
    pki,
    kubeconfig,
    spawn: { dir, detached },
    procs: [],
    kubectl,
    podCidr: opts.podCidr ?? '10.244.0.1/16',
    apiserverArgs: opts.apiserverArgs ?? [],
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await stopProcs(ctx.procs);
      liveDirs.delete(dir);
      if (process.env.MAXINE_E2E_KEEP_WORKDIR === '1')
        process.stderr.write(`[controlplane] kept ${dir}\n`);
      else await fsp.rm(dir, { recursive: true, force: true });
    })());

  const t0 = performance.now();
  try {
    await makePki(pki);
    const timings: Timings = { pki: elapsed(t0), etcd: 0, apiserver: 0 };
    const [etcdPort, peerPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;
    const ca = await fsp.readFile(path.join(pki, 'ca.crt'));
    const certData = (await fsp.readFile(path.join(pki, 'admin.crt'))).toString('base64');
    const keyData = (await fsp.readFile(path.join(pki, 'admin.key'))).toString('base64');
    await fsp.writeFile(
      kubeconfig,
      kubeconfigYaml(server, ca, [
        `client-certificate-data: ${certData}`,
        `client-key-data: ${keyData}`,
      ]),
      { mode: 0o600 },
    );
    const etcdUrl = await startEtcd(ctx, etcdPort, peerPort);
    timings.etcd = elapsed(t0);
    await startApiserver(ctx, etcdUrl, apiPort);
    timings.apiserver = elapsed(t0);
    if (opts.workloads) {
      await startWorkloads(ctx);
      timings.workloads = elapsed(t0);
    }
    const processes = ctx.procs.map(({ name, pid, cmd }) => ({ name, pid, cmd }));
    const restartApiServer = async ({ downMs = 0 } = {}): Promise<void> => {
      const api = ctx.procs.find((p) => p.name === 'kube-apiserver');
      if (api === undefined) throw new Error('kube-apiserver is not running');
      await stopProcs([api]);
      ctx.procs.splice(ctx.procs.indexOf(api), 1);
      await sleep(downMs);
      await startApiserver(ctx, etcdUrl, apiPort);
    };
    return {
      dir,
      server,
      kubeconfig,
      binDir: bin,
      processes,
      timings,
      kubectl,
      restartApiServer,
      stop,
    };
  } catch (e) {
    let message = `control plane failed to start: ${e instanceof Error ? e.message : String(e)}`;
    if (e instanceof ComponentError && e.log) {
      message += `\n----- last ${LOG_TAIL_LINES} lines of ${e.component}'s log (${e.log})\n${tail(e.log)}`;
    }
    await stop();
    throw new Error(message, { cause: e });
  }
}
