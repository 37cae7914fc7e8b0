/**
 * Shared by the e2e tests that need injected pods and their sidecars: an operator whose webhook
 * the API server calls over TLS, pods as the webhook made them, and sidecar processes started
 * with exactly the environment the webhook gave a pod (downward API resolved from the pod, the
 * projected token minted the way kubelet mints it: bound to the pod, audience maxine.io).
 *
 * What differs from a real pod, because there is no kubelet here: the token is written to a
 * file of the test's work directory, and each sidecar listens on its own 127.0.0.1 ports (in a
 * pod each has its own network namespace and ports 7711/7712).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { freePorts } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { startKubeOperator, kubectl } from './operator-identity.js';
import { eventually } from '../test/helpers/operator.js';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface Pod {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    initContainers?: {
      name: string;
      restartPolicy?: string;
      env?: EnvVar[];
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: { name: string; projected?: unknown }[];
  };
  status: { podIP?: string; phase?: string };
}

/** The pods of `namespace` labelled `app=<app>`, those being deleted left out. */
export async function podsOf(cp: ControlPlane, namespace: string, app: string): Promise<Pod[]> {
  const list = JSON.parse(
    await kubectl(cp, ['get', 'pods', '-n', namespace, '-l', `app=${app}`, '-o', 'json']),
  ) as { items: Pod[] };
  return list.items.filter(
    (p) => (p.metadata as { deletionTimestamp?: string }).deletionTimestamp === undefined,
  );
}

/** A token as kubelet mints the projected one: bound to the pod, for our audience. */
export async function podToken(
  cp: ControlPlane,
  pod: Pod,
  audience = 'maxine.io',
): Promise<string> {
  return (
    await kubectl(cp, [
      'create',
      'token',
      pod.spec.serviceAccountName ?? 'default',
      '-n',
      pod.metadata.namespace,
      `--audience=${audience}`,
      '--bound-object-kind=Pod',
      `--bound-object-name=${pod.metadata.name}`,
      `--bound-object-uid=${pod.metadata.uid}`,
      '--duration=1h',
    ])
  ).trim();
}

/** The sidecar's environment as the webhook wrote it, with the downward API resolved. */
export function envOf(pod: Pod): Record<string, string> {
  const sidecar = pod.spec.initContainers?.find((c) => c.name === 'maxine-sidecar');
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'status.podIP': pod.status.podIP,
    'spec.nodeName': pod.spec.nodeName,
    'spec.serviceAccountName': pod.spec.serviceAccountName,
  };
  const env: Record<string, string> = {};
  for (const v of sidecar?.env ?? []) {
    const value = v.valueFrom?.fieldRef ? fields[v.valueFrom.fieldRef.fieldPath] : v.value;
    if (value === undefined)
      throw new Error(`cannot resolve ${v.name} of pod ${pod.metadata.name}`);
    env[v.name] = value;
  }
  return env;
}

export interface SidecarProcess {
  proc: ChildProcess;
  /** The localhost API (discovery, `/v1/proxy/`). */
  url: string;
  log: string[];
}

/** Starts the pod's sidecar as a process, with the webhook's environment and `extraEnv`. */
export async function startSidecar(
  cp: ControlPlane,
  pod: Pod,
  work: string,
  extraEnv: Record<string, string> = {},
): Promise<SidecarProcess> {
  const tokenFile = join(work, `${pod.metadata.name}.token`);
  await writeFile(tokenFile, await podToken(cp, pod), { mode: 0o600 });
  const [port] = await freePorts(1);
  const proc = spawn(process.execPath, ['--import', 'tsx', 'sidecar/main.ts'], {
    env: {
      PATH: process.env.PATH,
      ...envOf(pod),
      MAXINE_TOKEN_FILE: tokenFile,
      MAXINE_LISTEN_HOST: '127.0.0.1',
      MAXINE_LISTEN_PORT: String(port),
      MAXINE_LOG_LEVEL: 'info',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  proc.stdout?.on('data', (c: Buffer) => log.push(c.toString()));
  proc.stderr?.on('data', (c: Buffer) => log.push(c.toString()));
  return { proc, url: `http://127.0.0.1:${port}`, log };
}

/** A pod created with a server-side dry run: what admission (our webhook) makes of it. */
export function dryRunPod(cp: ControlPlane, namespace: string, labels: Record<string, string>) {
  return cp.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace, labels },
      spec: { containers: [{ name: 'app', image: 'probe' }] },
    }),
  });
}

/**
 * An in-process operator with its injection webhook, which the API server calls over TLS at
 * 127.0.0.1 (the manifests point it at the in-cluster Service; this operator runs on the host).
 * Resolves once the API server calls it: a dry run in `namespace` (labelled for injection by
 * the caller) comes back with our webhook's warning. When it is not ready within `readyMs`
 * (default 60 s: its CA bundle never written, the API server never calling it), the operator is
 * stopped and the error carries the operator's last log lines.
 */
export async function startInjectingOperator(
  cp: ControlPlane,
  namespace: string,
  overrides: Record<string, unknown> = {},
  /** Where the operator's log goes (default: discarded), and how long it may take to be ready. */
  opts: { level?: string; sink?: Writable; readyMs?: number } = {},
): Promise<{ operator: Operator; base: string; admin: { authorization: string } }> {
  const [apiPort, webhookPort] = (await freePorts(2)) as [number, number];
  const readyMs = opts.readyMs ?? 60_000;
  const logged = tailOf(
    opts.sink ?? (process.env.MAXINE_E2E_LOGS === undefined ? undefined : process.stderr),
  );
  const started = await startKubeOperator(
    cp,
    {
      port: apiPort,
      webhook: true,
      webhookHost: '127.0.0.1',
      webhookPort,
      webhookIps: '127.0.0.1',
      webhookDnsNames: 'localhost',
      sidecarImage: 'maxine-sidecar:e2e',
      sidecarOperatorUrl: `http://127.0.0.1:${apiPort}`,
      ...overrides,
    },
    { level: opts.level ?? process.env.MAXINE_E2E_LOGS ?? 'warn', sink: logged.sink },
  );
  const deadline = Date.now() + readyMs;
  try {
    for (const [i, path] of [
      [0, '/inject/namespace'],
      [1, '/inject'],
    ] as const) {
      await kubectl(cp, [
        'patch',
        'mutatingwebhookconfiguration',
        'maxine-sidecar-injector',
        '--type=json',
        `-p=${JSON.stringify([
          { op: 'remove', path: `/webhooks/${i}/clientConfig/service` },
          {
            op: 'add',
            path: `/webhooks/${i}/clientConfig/url`,
            value: `https://127.0.0.1:${webhookPort}${path}`,
          },
          { op: 'replace', path: `/webhooks/${i}/failurePolicy`, value: 'Fail' },
        ])}`,
      ]);
    }
    await within(
      started.operator.whenWebhookReady(),
      deadline - Date.now(),
      "the webhook's CA bundle written",
    );
    // The API server picks up the patched webhook configuration a moment later; until then it
    // still calls the in-cluster Service (unreachable here) and, failing open, admits pods
    // without the sidecar. A server-side dry run shows when our webhook answers: no
    // MaxineService selects the probe yet, so the answer is its warning saying so.
    await eventually(
      async () => {
        const probe = await dryRunPod(cp, namespace, {});
        return probe.code === 0 && probe.stderr.includes('no MaxineService selects this pod');
      },
      Math.max(1, deadline - Date.now()),
      'webhook configuration in force',
    );
  } catch (err) {
    await started.operator.stop();
    throw new Error(
      `the injecting operator was not ready within ${readyMs} ms: ${(err as Error).message}\n` +
        `its last log lines:\n${logged.lines.join('\n')}`,
      { cause: err },
    );
  }
  return started;
}

/** `promise`, or a rejection saying `what` was not done within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A log sink keeping the last `keep` lines (and passing everything on to `next`, if any). */
function tailOf(next: Writable | undefined, keep = 40): { sink: Writable; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        lines.push(line);
        if (lines.length > keep) lines.shift();
      }
      if (next === undefined) done();
      else next.write(chunk, () => done());
    },
  });
  return { sink, lines };
}

/**
 * Waits until the operator's informer knows a MaxineService selecting `labels`: a dry run of
 * such a pod comes back with the sidecar. Apply a workload only after this, or its first pods
 * could be admitted before the operator has seen the MaxineService.
 */
export async function untilInjects(
  cp: ControlPlane,
  namespace: string,
  labels: Record<string, string>,
): Promise<void> {
  await eventually(
    async () => {
      const probe = await dryRunPod(cp, namespace, labels);
      return probe.code === 0 && probe.stdout.includes('maxine-sidecar');
    },
    30_000,
    `the operator injects pods labelled ${JSON.stringify(labels)}`,
  );
}

/**
 * The health script of the e2e services: it prints the pod it checked and exits with the code
 * in `work/<pod>.code` (0 while there is none), so a test fails one pod by writing that file.
 * Returns its path.
 */
export async function writeHealthScript(work: string): Promise<string> {
  const script = join(work, 'check.sh');
  await writeFile(
    script,
    `#!/bin/sh\necho "checked $MAXINE_POD_NAME"\nexit $(cat ${work}/$MAXINE_POD_NAME.code 2>/dev/null || echo 0)\n`,
  );
  await chmod(script, 0o755);
  return script;
}

/**
 * Applies the Deployment `app` of `namespace`: `replicas` pods labelled `app=<app>`, one
 * container of image `<app>:e2e` on port 8080, with `annotations` on the pods if given.
 */
export async function applyDeployment(
  cp: ControlPlane,
  namespace: string,
  app: string,
  { replicas, annotations }: { replicas: number; annotations?: Record<string, string> },
): Promise<void> {
  const podMetadata =
    annotations === undefined
      ? `{ labels: { app: ${app} } }`
      : `{ labels: { app: ${app} }, annotations: ${JSON.stringify(annotations)} }`;
  await kubectl(
    cp,
    ['apply', '-f', '-'],
    `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${app}, namespace: ${namespace} }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: ${app} } }
  template:
    metadata: ${podMetadata}
    spec:
      containers:
        - name: app
          image: ${app}:e2e
          ports: [{ containerPort: 8080 }]
`,
  );
}

/** Waits (up to a minute) until `app` has exactly `count` pods, all with an IP, and returns them. */
export function podsWithIps(
  cp: ControlPlane,
  namespace: string,
  app: string,
  count: number,
): Promise<Pod[]> {
  return eventually(
    async () => {
      const list = await podsOf(cp, namespace, app);
      return list.length === count && list.every((p) => p.status.podIP) && list;
    },
    60_000,
    `${count} ${app} pod(s) with IPs`,
  );
}
