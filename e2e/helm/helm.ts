/**
 * The real helm the chart tests run: built from Go modules by e2e/helm/build.sh into
 * ~/.cache/maxine/helm/<version>/bin/helm (a no-op when cached), with helm's own state (cache,
 * config, repositories) in a fresh temporary folder so a developer's helm setup cannot leak in.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const BUILD_SH = join(process.cwd(), 'e2e', 'helm', 'build.sh');
export const CHART = join(process.cwd(), 'charts', 'maxine');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
  });
}

export type Helm = (args: readonly string[]) => Promise<RunResult>;

/** Builds helm if needed and returns a runner with its state in a temporary folder. */
export async function ensureHelm(): Promise<Helm> {
  const built = await run('bash', [BUILD_SH], { ...process.env, CI: process.env.CI ?? 'true' });
  const bin = built.stdout.trim().split('\n').pop()?.trim() ?? '';
  if (built.code !== 0 || bin === '') {
    throw new Error(`${BUILD_SH} failed with exit code ${built.code}:\n${built.stderr}`);
  }
  const home = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), 'maxine-helm.'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  delete env.KUBECONFIG;
  return (args) => run(bin, args, env);
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** The objects of a multi-document YAML stream (empty documents dropped). */
export function objectsOf(yamlText: string): KubeObject[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null && typeof o === 'object');
}

export function keyOf(o: KubeObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}
