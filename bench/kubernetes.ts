/**
 * Kubernetes-mode figures on a real control plane (etcd + kube-apiserver on 127.0.0.1):
 * cold start with N MaxineServices (operator process spawn → /readyz with all N in the
 * registry), and the latency from `kubectl apply` of a change to the registry answer.
 * Writes bench/RESULTS-kubernetes.md. Run: npm run bench:k8s (BENCH_K8S_SERVICES, BENCH_K8S_CHANGES).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensureBinaries, startControlPlane } from '../e2e/controlplane/cluster.js';
import type { ControlPlane } from '../e2e/controlplane/cluster.js';
import { operatorKubeconfig } from '../e2e/operator-identity.js';

const SERVICES = Number(process.env.BENCH_K8S_SERVICES ?? 2000);
const CHANGES = Number(process.env.BENCH_K8S_CHANGES ?? 50);
const ROOT = process.cwd();

const service = (i: number, value = 'x') =>
  `apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: svc-${i}, namespace: bench }\nspec: { config: { V: '${value}' } }\n`;

async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<void> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  await ensureBinaries();
  const cp = await startControlPlane();
  const children: ReturnType<typeof spawn>[] = [];
  process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
  try {
    await kubectl(cp, ['apply', '-f', join(ROOT, 'crds')]);
    await kubectl(cp, ['wait', '--for', 'condition=established', 'crd', '--all', '--timeout=60s']);
    await kubectl(cp, ['create', 'namespace', 'bench']);
    const kubeconfig = await operatorKubeconfig(cp);
    const createStarted = performance.now();
    for (let from = 0; from < SERVICES; from += 500) {
      const docs = [];
      for (let i = from; i < Math.min(SERVICES, from + 500); i++) docs.push(service(i));
      await kubectl(cp, ['apply', '--server-side', '-f', '-'], docs.join('---\n'));
    }
    const createMs = performance.now() - createStarted;
    process.stderr.write(`created ${SERVICES} services in ${Math.round(createMs)} ms\n`);

    // Cold start: spawn → ready with every service in the registry.
    const spawned = performance.now();
    const child = spawn(
      process.execPath,
      [
        'dist/operator/main.js',
        '--mode',
        'kubernetes',
        '--kubeconfig',
        kubeconfig,
        '--port',
        '0',
        '--log-level',
        'info',
        '--leader-election',
        'false',
        '--webhook',
        'false',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"port":(\d+)[^\n]*listening/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`operator exited ${code}`)));
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 120_000);
    const readyMs = performance.now() - spawned;
    process.stderr.write(`operator ready in ${Math.round(readyMs)} ms\n`);
    const listed = (
      (await (await fetch(`${base}/api/v1/services?namespace=bench`)).json()) as {
        services: unknown[];
      }
    ).services.length;

    // kubectl apply of a change → visible in the registry.
    const total: number[] = [];
    const afterApi: number[] = [];
    for (let n = 0; n < CHANGES; n++) {
      const i = n % SERVICES;
      const value = `v${n}`;
      const t0 = performance.now();
      await kubectl(cp, ['apply', '-f', '-'], service(i, value));
      const t1 = performance.now();
      await waitFor(async () => {
        const body = (await (await fetch(`${base}/api/v1/services/bench/svc-${i}`)).json()) as {
          spec?: { config?: { V?: string } };
        };
        return body.spec?.config?.V === value;
      }, 10_000);
      const t2 = performance.now();
      total.push(t2 - t0);
      afterApi.push(t2 - t1);
    }
    total.sort((a, b) => a - b);
    afterApi.sort((a, b) => a - b);
    const row = (name: string, xs: number[]) =>
      `| ${name} | ${quantile(xs, 0.5).toFixed(1)} | ${quantile(xs, 0.99).toFixed(1)} | ${xs[xs.length - 1]!.toFixed(1)} |`;
    const text = `# Kubernetes-mode benchmark

_Generated by \`npm run bench:k8s\` (bench/kubernetes.ts); rewritten on every run._

- date: ${new Date().toISOString()}; machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? ''}; node ${process.version}
- control plane: etcd + kube-apiserver 1.34 on 127.0.0.1 (e2e/controlplane), the operator with its ServiceAccount's RBAC, leader election off

## Cold start with ${SERVICES} MaxineServices

| figure | value |
|---|---:|
| creating ${SERVICES} MaxineServices (kubectl apply --server-side, 500 per call) | ${(createMs / 1000).toFixed(1)} s |
| operator process spawn → /readyz 200 with all of them listed | ${(readyMs / 1000).toFixed(2)} s |
| services in the registry at ready | ${listed} |

## kubectl apply of a change → registry answer (${CHANGES} changes)

| latency (ms) | median | p99 | max |
|---|---:|---:|---:|
${row('from kubectl start (includes kubectl process start-up)', total)}
${row('from kubectl exit (the API server has stored the change)', afterApi)}
`;
    writeFileSync(join(ROOT, 'bench', 'RESULTS-kubernetes.md'), text);
    process.stdout.write(text);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await cp.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
