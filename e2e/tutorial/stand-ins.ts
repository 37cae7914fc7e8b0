/**
 * What a real cluster has and the e2e control plane does not, for the tutorial test: a user's
 * shell (one bash, so `export` lasts from one command to the next), a kubelet that runs the
 * tutorial's pods (each injected sidecar as a process with the environment the webhook put in
 * the pod spec, and each app container as its host-side equivalent on the pod's IP), and the
 * operator of the Deployment helm created, started on this host with that Deployment's args and
 * environment. Nothing here decides an outcome the tutorial shows: the sidecar and the operator
 * are Maxine's own code, configured from the API server.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { freePorts } from '../controlplane/cluster.js';
import type { ControlPlane } from '../controlplane/cluster.js';
import { kubectl, writeTokenKubeconfig } from '../operator-identity.js';
import { startSidecar } from '../injection.js';
import type { Pod, SidecarProcess } from '../injection.js';
import { loadConfig } from '../../operator/config.js';
import { createOperator } from '../../operator/operator.js';
import type { Operator } from '../../operator/operator.js';
import { loadKubeParts } from '../../operator/kube/load-parts.js';
import { createLogger } from '../../common/logger.js';
import { eventually } from '../../test/helpers/operator.js';
import { withoutHostFlags } from './commands.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One bash, fed command after command like a terminal; each command's output and status apart. */
export class Shell {
  private readonly proc: ChildProcessWithoutNullStreams;
  private stdout = '';
  private stderr = '';
  private waiter: (() => void) | undefined;
  private readonly marker = `__maxine_done_${randomBytes(6).toString('hex')}__`;

  constructor(cwd: string, env: NodeJS.ProcessEnv) {
    // pipefail: `curl … | jq` fails when curl does, not only when the last command does.
    this.proc = spawn('bash', ['--noprofile', '--norc', '-o', 'pipefail'], {
      cwd,
      env,
      stdio: 'pipe',
    });
    const wake = () => this.waiter?.();
    this.proc.stdout.setEncoding('utf8').on('data', (c: string) => ((this.stdout += c), wake()));
    this.proc.stderr.setEncoding('utf8').on('data', (c: string) => ((this.stderr += c), wake()));
    this.proc.on('exit', wake);
  }

  /** Runs `command` (stdin closed, so it cannot read the rest of the session). */
  async run(command: string, timeoutMs: number): Promise<RunResult> {
    this.stdout = '';
    this.stderr = '';
    const end = new RegExp(`${this.marker} (\\d+)\\n`);
    this.proc.stdin.write(
      `{ ${command}\n} </dev/null; __rc=$?; printf '\\n${this.marker} %d\\n' $__rc; printf '${this.marker} %d\\n' $__rc >&2\n`,
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = end.exec(this.stdout);
      if (out !== null && end.test(this.stderr)) {
        return {
          code: Number(out[1]),
          stdout: this.stdout.slice(0, out.index).replace(/\n$/, ''),
          stderr: this.stderr.replace(end, ''),
        };
      }
      if (this.proc.exitCode !== null) throw new Error(`the shell exited during: ${command}`);
      if (Date.now() > deadline)
        throw new Error(`${command}: not done within ${timeoutMs} ms\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiter = () => (clearTimeout(timer), resolve());
      });
    }
  }

  close(): void {
    this.proc.kill('SIGKILL');
  }
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
}
type FullPod = Pod & {
  metadata: Pod['metadata'] & { deletionTimestamp?: string; labels?: Record<string, string> };
  spec: Pod['spec'] & { containers: Container[] };
};

/** What this host runs for one pod. */
export interface RunningPod {
  pod: FullPod;
  sidecar?: SidecarProcess;
  /** The sidecar's forward-proxy port (7712 in the pod). */
  proxyPort?: number;
  servers: Server[];
}

/**
 * An app container's host-side equivalent. `hashicorp/http-echo` answers its `-text` on its
 * `-listen` port at the pod's IP, as the image does; a container that only sleeps (a shell to
 * exec into) needs nothing. Any other image is refused: the test would not know what it does.
 */
async function runContainer(pod: FullPod, c: Container): Promise<Server | undefined> {
  const args = [...(c.command ?? []), ...(c.args ?? [])];
  if (c.image.startsWith('hashicorp/http-echo:')) {
    const flag = (name: string) =>
      args.find((a) => a.startsWith(`-${name}=`))?.slice(name.length + 2);
    const text = flag('text') ?? 'hello-world';
    const port = Number((flag('listen') ?? ':5678').split(':').pop());
    const server = createServer((req, res) => {
      req.resume();
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(`${text}\n`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, pod.status.podIP, resolve);
    });
    return server;
  }
  if (c.command?.[0] === 'sleep') return undefined;
  throw new Error(
    `pod ${pod.metadata.namespace}/${pod.metadata.name}: no host-side equivalent of container ${c.name} (${c.image})`,
  );
}

/**
 * The kubelet's part: every 300 ms, the pods of `namespaces` that have an IP get their sidecar
 * and app containers started; pods being deleted get them stopped (the sidecar with SIGTERM, so
 * it deregisters as in a pod).
 */
export class Kubelet {
  readonly pods = new Map<string, RunningPod>();
  readonly errors: string[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly cp: ControlPlane,
    private readonly namespaces: readonly string[],
    private readonly work: string,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.sync().catch((e: Error) => this.errors.push(e.message));
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
  }

  private async sync(): Promise<void> {
    const seen = new Set<string>();
    for (const ns of this.namespaces) {
      const r = await this.cp.kubectl(['get', 'pods', '-n', ns, '-o', 'json']);
      if (r.code !== 0) continue; // the namespace does not exist (yet, or any more)
      for (const pod of (JSON.parse(r.stdout) as { items: FullPod[] }).items) {
        const key = `${ns}/${pod.metadata.name}`;
        if (pod.metadata.deletionTimestamp !== undefined) continue;
        seen.add(key);
        if (this.pods.has(key) || pod.status.podIP === undefined) continue;
        const running: RunningPod = { pod, servers: [] };
        this.pods.set(key, running);
        for (const c of pod.spec.containers) {
          const server = await runContainer(pod, c);
          if (server !== undefined) running.servers.push(server);
        }
        if (pod.spec.initContainers?.some((c) => c.name === 'maxine-sidecar')) {
          const [proxyPort] = (await freePorts(1)) as [number];
          running.proxyPort = proxyPort;
          running.sidecar = await startSidecar(this.cp, pod, this.work, {
            MAXINE_PROXY_LISTEN: `127.0.0.1:${proxyPort}`,
          });
        }
      }
    }
    for (const [key, running] of this.pods) if (!seen.has(key)) this.stopPod(key, running);
  }

  private stopPod(key: string, running: RunningPod): void {
    this.pods.delete(key);
    running.sidecar?.proc.kill('SIGTERM');
    for (const s of running.servers) s.close();
  }

  /** The running pod of `namespace` whose labels include `labels`. */
  podWith(namespace: string, labels: Record<string, string>): RunningPod | undefined {
    return [...this.pods.values()].find(
      (r) =>
        r.pod.metadata.namespace === namespace &&
        Object.entries(labels).every(([k, v]) => r.pod.metadata.labels?.[k] === v),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    for (const [key, running] of this.pods) {
      running.sidecar?.proc.kill('SIGKILL');
      for (const s of running.servers) s.close();
      this.pods.delete(key);
    }
  }
}

interface Deployment {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { spec: { serviceAccountName?: string; containers: Container[] } };
  };
}

/**
 * The operator of Deployment `namespace/name` (as helm created it), started in this process:
 * its container's args and environment (the downward API resolved from one of its pods, the
 * audit folder in `work`), its ServiceAccount's token as kubeconfig, and this host's addresses
 * for the API, the webhook and the URL the sidecars call. The webhook configuration is then
 * pointed at this operator (the chart's points at the in-cluster Service) and this resolves
 * once the API server calls it.
 */
export async function startOperatorOf(
  cp: ControlPlane,
  namespace: string,
  name: string,
  work: string,
): Promise<{ operator: Operator; base: string }> {
  const deployment = JSON.parse(
    await kubectl(cp, ['get', 'deployment', name, '-n', namespace, '-o', 'json']),
  ) as Deployment;
  const container = deployment.spec.template.spec.containers[0]!;
  const selector = Object.entries(deployment.spec.selector.matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const pods = JSON.parse(
    await kubectl(cp, ['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json']),
  ) as { items: FullPod[] };
  const pod = pods.items[0];
  if (pod === undefined) throw new Error(`no pod of deployment ${namespace}/${name}`);

  const serviceAccount = deployment.spec.template.spec.serviceAccountName ?? 'default';
  const token = (
    await kubectl(cp, ['create', 'token', serviceAccount, '-n', namespace, '--duration=2h'])
  ).trim();
  const kubeconfig = join(work, 'operator.kubeconfig');
  await writeTokenKubeconfig(cp, kubeconfig, { user: serviceAccount, token, context: 'operator' });

  const [port, webhookPort] = (await freePorts(2)) as [number, number];
  const base = `http://127.0.0.1:${port}`;
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'status.podIP': pod.status.podIP,
  };
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    const value = v.valueFrom?.fieldRef ? fields[v.valueFrom.fieldRef.fieldPath] : v.value;
    if (value === undefined) throw new Error(`cannot resolve ${v.name} of ${pod.metadata.name}`);
    env[v.name] = value.replace(/\$\((\w+)\)/g, (_m, n: string) => env[n] ?? '');
  }
  delete env.NODE_OPTIONS; // heap bounds of the container's node; this operator runs in-process
  if (env.MAXINE_AUDIT_DIR !== undefined) {
    env.MAXINE_AUDIT_DIR = join(work, 'audit');
    await mkdir(env.MAXINE_AUDIT_DIR, { recursive: true });
  }
  const config = loadConfig(
    [
      ...withoutHostFlags(container.args ?? []),
      ...['--host', '127.0.0.1', '--port', String(port), '--kubeconfig', kubeconfig],
      ...['--webhook-host', '127.0.0.1', '--webhook-port', String(webhookPort)],
      ...['--webhook-ips', '127.0.0.1', '--webhook-dns-names', 'localhost'],
      ...['--sidecar-operator-url', base, '--advertise-url', base],
    ],
    env,
  );
  if (config === 'help') throw new Error('the Deployment asks for --help');
  await loadKubeParts();
  // MAXINE_E2E_LOGS=debug (or info, ...) shows the operator's log on stderr when debugging.
  const level = process.env.MAXINE_E2E_LOGS ?? 'warn';
  const sink =
    process.env.MAXINE_E2E_LOGS === undefined
      ? new Writable({ write: (_c, _e, done) => done() })
      : process.stderr;
  const operator = createOperator(config, createLogger(level, sink));
  await operator.start();

  const hook = JSON.parse(
    await kubectl(cp, [
      'get',
      'mutatingwebhookconfiguration',
      config.webhookConfigName,
      '-o',
      'json',
    ]),
  ) as { webhooks: { clientConfig: { service?: { path?: string } } }[] };
  await kubectl(cp, [
    'patch',
    'mutatingwebhookconfiguration',
    config.webhookConfigName,
    '--type=json',
    `-p=${JSON.stringify(
      hook.webhooks.flatMap((w, i) => [
        { op: 'remove', path: `/webhooks/${i}/clientConfig/service` },
        {
          op: 'add',
          path: `/webhooks/${i}/clientConfig/url`,
          value: `https://127.0.0.1:${webhookPort}${w.clientConfig.service?.path ?? '/'}`,
        },
      ]),
    )}`,
  ]);
  await operator.whenWebhookReady();
  // The API server takes the patched configuration a moment later. A pod annotated for
  // injection in `default` (a dry run) shows when it calls this operator: no MaxineService
  // selects it, so the answer carries the webhook's warning saying so.
  await eventually(
    async () => {
      const probe = await cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: 'probe',
            namespace: 'default',
            annotations: { 'maxine.io/inject': 'true' },
          },
          spec: { containers: [{ name: 'app', image: 'probe' }] },
        }),
      });
      return probe.code === 0 && probe.stderr.includes('no MaxineService selects this pod');
    },
    30_000,
    'the webhook configuration calling the operator on this host',
  );
  return { operator, base };
}
