/**
 * docs/tutorial.md, run: every command of its ```sh blocks, in order, in one bash (so an
 * `export` lasts), against the e2e control plane with controller-manager, scheduler and KWOK,
 * with the real helm, kubectl and `kubectl maxine` on the PATH. Each output the page shows is
 * compared with what the command printed (a read is run again for up to 15 s until it matches,
 * as a reader would after a change; a write is compared once), and every command must exit 0.
 *
 * A block runs as written unless the HTML comment above it names a runner; a name this test
 * does not know, a ```bash/```console block or an annotation on nothing fails the test, so no
 * command is skipped in silence. What stands in for a real cluster (KWOK runs no containers):
 *   - helm-install: the block as written, then the operator of the Deployment helm created,
 *     started on this host from that Deployment's args and environment (stand-ins.ts);
 *   - a kubelet stand-in, all along: each tutorial pod's injected sidecar as a process with the
 *     pod's environment from the API server, each app container's equivalent on the pod's IP
 *     (KWOK gives pods addresses in 127.79.0.0/16);
 *   - exec-in-pod: `kubectl exec deploy/D -n NS -c C -- CMD` runs CMD on this host, with the
 *     pod's localhost:7711 (and 7712) replaced by its sidecar's ports;
 *   - port-forward: no forward is started; 127.0.0.1:PORT in later commands becomes the
 *     operator's address.
 * The ```yaml blocks must be objects of the files under examples/tutorial/ (which the commands
 * apply), so the page shows what is applied.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { ensureBinaries, startControlPlane } from '../controlplane/cluster.js';
import type { ControlPlane } from '../controlplane/cluster.js';
import { run as runProcess } from '../helm/helm.js';
import type { Operator } from '../../operator/operator.js';
import { yamlFiles } from '../../test/helpers/files.js';
import { isWrite, outputMatches, parseTutorial } from './markdown.js';
import { parseExec, parsePortForward } from './commands.js';
import { kubectl as kubectlIn } from '../operator-identity.js';
import type { ShellBlock } from './markdown.js';
import { Kubelet, Shell, startOperatorOf } from './stand-ins.js';
import type { RunResult } from './stand-ins.js';

const ROOT = process.cwd();
const PAGE = 'docs/tutorial.md';
const EXAMPLES = join(ROOT, 'examples', 'tutorial');
/** The namespaces whose pods the kubelet stand-in runs (the operator's are run by helm-install). */
const APP_NAMESPACES = ['tutorial'];
const RUNNERS = ['shell', 'helm-install', 'exec-in-pod', 'port-forward'];

const tutorial = parseTutorial(readFileSync(join(ROOT, PAGE), 'utf8'));

let cp: ControlPlane;
let work: string;
let shell: Shell;
let kubelet: Kubelet;
let operator: Operator | undefined;
let base = '';
/** Text replaced in every later command: the port-forward's local address by the operator's. */
const substitutions = new Map<string, string>();
/** Discovery answers checked against the pods this host runs. */
let discoveryAnswers = 0;
/** Every command run, as written in the page. */
const ran: string[] = [];

/** helm, built from Go modules like the control plane (a no-op when cached): its path. */
async function helmBinary(): Promise<string> {
  const built = await runProcess('bash', [join(ROOT, 'e2e', 'helm', 'build.sh')], {
    ...process.env,
    CI: process.env.CI ?? 'true',
  });
  const bin = built.stdout.trim().split('\n').pop()?.trim() ?? '';
  if (built.code !== 0 || bin === '') throw new Error(`e2e/helm/build.sh failed:\n${built.stderr}`);
  return bin;
}

/** Runs `command` in the shell; with `expected`, until the output matches (reads only). */
async function runChecked(written: string, command: string, expected?: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  let r: RunResult;
  for (;;) {
    r = await shell.run(command, 150_000);
    const ok = r.code === 0 && (expected === undefined || outputMatches(expected, r.stdout));
    if (ok || isWrite(written) || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  process.stderr.write(`[tutorial] $ ${command}\n${r.stdout}\n`);
  if (r.code !== 0 || (expected !== undefined && !outputMatches(expected, r.stdout))) {
    process.stderr.write(`[tutorial] kubelet stand-in errors: ${kubelet.errors.join('; ')}\n`);
    for (const [key, p] of kubelet.pods)
      process.stderr.write(
        `[tutorial] sidecar of ${key}:\n${p.sidecar?.log.join('').slice(-3000)}\n`,
      );
  }
  expect({ command: written, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({
    command: written,
    code: 0,
    stderr: '',
  });
  if (expected !== undefined) {
    if (!outputMatches(expected, r.stdout))
      throw new Error(`${written}\nprinted:\n${r.stdout}\nthe page shows:\n${expected}`);
  }
  return r.stdout;
}

/**
 * A discovery answer printed by a command names a pod this host runs, at that pod's IP (what
 * the page says of it; the shown output leaves id and host to `…`).
 */
function checkDiscoveryAnswer(stdout: string): void {
  let answer: { instance?: { host?: string; metadata?: { pod?: string } } };
  try {
    answer = JSON.parse(stdout) as typeof answer;
  } catch {
    return; // not JSON: not a discovery answer
  }
  const { host, metadata } = answer.instance ?? {};
  if (host === undefined) return;
  const pods = [...kubelet.pods.values()].map((p) => [p.pod.metadata.name, p.pod.status.podIP]);
  expect(pods).toContainEqual([metadata?.pod, host]);
  discoveryAnswers += 1;
}

const substituted = (command: string) =>
  [...substitutions].reduce((c, [from, to]) => c.split(from).join(to), command);

/** `kubectl exec deploy/D -n NS -c C -- CMD`: CMD on this host, against the pod's sidecar. */
async function execInPod(line: string, expected?: string): Promise<void> {
  const exec = parseExec(line);
  if (exec === undefined)
    throw new Error(`exec-in-pod runs kubectl exec deploy/D -n NS -c C -- CMD, not: ${line}`);
  const spec = JSON.parse(
    await kubectlIn(cp, ['get', 'deployment', exec.deployment, '-n', exec.namespace, '-o', 'json']),
  ) as { spec: { selector: { matchLabels: Record<string, string> } } };
  const running = kubelet.podWith(exec.namespace, spec.spec.selector.matchLabels);
  if (running?.sidecar === undefined) throw new Error(`no running pod with a sidecar for ${line}`);
  const pod = running.pod.spec as {
    containers: { name: string }[];
    initContainers?: { name: string }[];
    readinessGates?: { conditionType: string }[];
  };
  expect(pod.initContainers?.map((c) => c.name)).toContain('maxine-sidecar');
  // The pod was Ready only once Maxine found it healthy: the gate the webhook added.
  expect(pod.readinessGates).toContainEqual({ conditionType: 'maxine.io/healthy' });
  expect(pod.containers.map((c) => c.name)).toContain(exec.container);
  const local = exec.command
    .split('localhost:7711')
    .join(new URL(running.sidecar.url).host)
    .split('localhost:7712')
    .join(`127.0.0.1:${running.proxyPort}`);
  ran.push(line);
  checkDiscoveryAnswer(await runChecked(line, local, expected));
}

/** `kubectl port-forward -n NS svc/S PORT ... &`: later commands reach the operator instead. */
async function portForward(line: string): Promise<void> {
  const forward = parsePortForward(line);
  if (forward === undefined)
    throw new Error(`port-forward runs kubectl port-forward -n NS svc/S PORT ... &, not: ${line}`);
  // The Service exists and has the port: the forward would reach the operator's pods.
  const service = JSON.parse(
    await kubectlIn(cp, ['get', 'service', forward.service, '-n', forward.namespace, '-o', 'json']),
  ) as { spec: { ports: { port: number }[] } };
  expect(service.spec.ports.map((p) => p.port)).toContain(forward.servicePort);
  substitutions.set(`127.0.0.1:${forward.localPort}`, new URL(base).host);
  ran.push(line);
}

async function runBlock(block: ShellBlock): Promise<void> {
  const last = block.commands.length - 1;
  for (const [i, command] of block.commands.entries()) {
    const expected = i === last ? block.expected : undefined;
    switch (block.runner) {
      case 'shell':
      case 'helm-install':
        ran.push(command);
        await runChecked(command, substituted(command), expected);
        break;
      case 'exec-in-pod':
        await execInPod(command, expected);
        break;
      case 'port-forward':
        await portForward(command);
        break;
      default:
        throw new Error(`${PAGE}:${block.line}: no runner "${block.runner}"`);
    }
  }
  if (block.runner === 'helm-install') {
    ({ operator, base } = await startOperatorOf(cp, 'maxine-system', 'maxine-operator', work));
  }
}

beforeAll(async () => {
  const [bin, helm] = await Promise.all([ensureBinaries(), helmBinary()]);
  cp = await startControlPlane({ workloads: true, binDir: bin, podCidr: '127.79.0.1/16' });
  work = await mkdtemp(join(tmpdir(), 'maxine-tutorial-'));
  // kubectl maxine: the plugin from this checkout, found on the PATH as kubectl finds plugins.
  const plugins = join(work, 'bin');
  await mkdir(plugins);
  await writeFile(
    join(plugins, 'kubectl-maxine'),
    `#!/bin/sh\nexec "${process.execPath}" --import tsx "${join(ROOT, 'plugin', 'kubectl-maxine.ts')}" "$@"\n`,
  );
  await chmod(join(plugins, 'kubectl-maxine'), 0o755);
  shell = new Shell(ROOT, {
    PATH: [bin, dirname(helm), plugins, dirname(process.execPath), '/usr/bin', '/bin'].join(':'),
    HOME: work,
    KUBECONFIG: cp.kubeconfig,
    HELM_CACHE_HOME: join(work, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(work, 'helm', 'config'),
    HELM_DATA_HOME: join(work, 'helm', 'data'),
  });
  kubelet = new Kubelet(cp, APP_NAMESPACES, work);
  kubelet.start();
}, 30 * 60_000);

afterAll(async () => {
  shell?.close();
  await kubelet?.stop();
  await operator?.stop();
  await cp?.stop();
  if (work) await rm(work, { recursive: true, force: true });
}, 60_000);

describe(PAGE, () => {
  it('has a runner for every sh block, and no command outside one', () => {
    expect(tutorial.problems).toEqual([]);
    expect(tutorial.blocks.filter((b) => !RUNNERS.includes(b.runner))).toEqual([]);
    expect(tutorial.blocks.length).toBeGreaterThanOrEqual(8);
  });

  it('shows the YAML of examples/tutorial/, and names only files that exist', () => {
    const objects = yamlFiles(EXAMPLES).flatMap((f) =>
      parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as unknown),
    );
    for (const block of tutorial.yaml) {
      for (const shown of parseAllDocuments(block).map((d) => d.toJS() as unknown)) {
        expect([shown, objects.some((o) => isDeepStrictEqual(o, shown))]).toEqual([shown, true]);
      }
    }
    const text = readFileSync(join(ROOT, PAGE), 'utf8');
    for (const [path] of text.matchAll(/examples\/tutorial\/[\w.-]+\.yaml/g))
      expect([path, existsSync(join(ROOT, path))]).toEqual([path, true]);
  });

  it('runs every command in order, with the outputs it shows', async () => {
    const started = Date.now();
    for (const block of tutorial.blocks) await runBlock(block);
    expect(ran).toEqual(tutorial.blocks.flatMap((b) => b.commands));
    expect(kubelet.errors).toEqual([]);
    expect(discoveryAnswers).toBeGreaterThanOrEqual(1);
    process.stderr.write(`[tutorial] ${ran.length} commands in ${Date.now() - started} ms\n`);
  }, 240_000);
});
