/**
 * The README's "Try it on Kubernetes" section, run literally: the commands are read from the
 * README's shell blocks and each one is run (an unknown command fails the test, so the README
 * cannot say more than what is tested). No namespace is created by hand. It ends with every
 * example object Ready=True at its current generation, the operator leading, and its log
 * free of client-node dumps. Then every file under examples/ (recursively) is applied with
 * kubectl and every Maxine object in them must be Ready as well.
 *
 * Deviations, all mechanical: the operator runs from source with tsx instead of
 * `npm run build && node dist/...` (the other e2e tests do the same), on port 0 instead of
 * 7710 (other tests may hold it); `npm run cluster:up` is the function it calls.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ensureBinaries } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { startLocalCluster } from './controlplane/up.js';
import { yamlFiles } from '../test/helpers/files.js';
import { spawnListening } from '../test/helpers/spawn.js';

const ROOT = process.cwd();
const SECTION = '## Try it on Kubernetes, without Docker';
const OPERATOR = 'npm run build && node dist/operator/main.js ';

/** The commands of the shell blocks of `file`'s `heading` section, comments stripped, in order. */
function sectionCommands(file: string, heading: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const start = text.indexOf(`${heading}\n`);
  if (start === -1) throw new Error(`${file} has no "${heading}"`);
  const end = text.indexOf('\n## ', start + heading.length);
  const section = text.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!
      .split('\n')
      .map((line) => line.replace(/\s+#.*$/, '').trim())
      .filter((line) => line !== ''),
  );
}

interface MaxineObject {
  kind: string;
  metadata: { name: string; namespace: string; generation?: number };
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; observedGeneration?: number; message?: string }[];
  };
}

/** `Kind/namespace/name` of the Maxine objects in `files`. */
function maxineObjectsIn(files: string[]): string[] {
  return files
    .flatMap((f) => parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as unknown))
    .filter((o): o is MaxineObject & { apiVersion: string } => {
      const v = (o as { apiVersion?: unknown } | null)?.apiVersion;
      return typeof v === 'string' && v.startsWith('maxine.io/');
    })
    .map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)
    .sort();
}

let cp: ControlPlane | undefined;
let operator: ChildProcess | undefined;
/** The operator's log lines, parsed (`{ unparsed }` for a line that is not JSON), and raw. */
let logLines: Record<string, unknown>[] = [];
let rawLog: () => string = () => '';

async function kubectl(args: string[]): Promise<string> {
  const r = await cp!.kubectl(args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function eventually<T>(
  what: string,
  check: () => Promise<T | false>,
  ms: number,
): Promise<T> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== false) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() - started > ms)
      throw new Error(
        `${what}: not within ${ms} ms${last instanceof Error ? ` (${last.message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts the operator as the README does (from source); resolves when it listens. */
async function startOperator(args: string[], kubeconfig: string): Promise<void> {
  const started = await spawnListening(
    ['--import', 'tsx', 'operator/main.ts', ...args, '--port', '0'],
    { cwd: ROOT, env: { ...process.env, KUBECONFIG: kubeconfig }, timeoutMs: 120_000 },
  );
  operator = started.proc;
  logLines = started.lines;
  rawLog = started.output;
}

/** Runs one README command; an unknown one fails the test. */
async function run(command: string): Promise<void> {
  if (command === 'npm run cluster:up') {
    cp = await startLocalCluster();
  } else if (command.startsWith('export KUBECONFIG=')) {
    // The line cluster:up prints: the README names the file cluster:up writes.
    expect(command).toBe('export KUBECONFIG=$PWD/.maxine/cluster/admin.kubeconfig');
    expect(cp!.kubeconfig.endsWith('/admin.kubeconfig')).toBe(true);
  } else if (command.startsWith(OPERATOR)) {
    await startOperator(command.slice(OPERATOR.length).split(/\s+/), cp!.kubeconfig);
    // It says once why it cannot lead yet, and how to fix it.
    await eventually(
      'the lease-namespace line',
      () =>
        Promise.resolve(
          logLines.some((l) => String(l.msg).includes('lease namespace maxine-system')),
        ),
      15_000,
    );
  } else if (command.startsWith('kubectl ')) {
    const out = await kubectl(command.slice('kubectl '.length).split(/\s+/));
    process.stderr.write(`[readme] $ ${command}\n${out}`);
  } else {
    throw new Error(
      `the README's Kubernetes section says "${command}", which this test does not run`,
    );
  }
}

/** Every Maxine object of `expected` is Ready=True at its current generation. */
async function allReady(expected: string[]): Promise<void> {
  await eventually(
    `${expected.length} objects Ready at their generation`,
    async () => {
      const list = JSON.parse(await kubectl(['get', 'msvc,mint,macl', '-A', '-o', 'json'])) as {
        items: MaxineObject[];
      };
      const byKey = new Map(
        list.items.map((o) => [`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`, o]),
      );
      const notReady = expected.filter((key) => {
        const o = byKey.get(key);
        const ready = o?.status?.conditions?.find((c) => c.type === 'Ready');
        return (
          o === undefined ||
          o.status?.observedGeneration !== o.metadata.generation ||
          ready?.status !== 'True' ||
          ready.observedGeneration !== o.metadata.generation
        );
      });
      if (notReady.length > 0) throw new Error(`not Ready yet: ${notReady.join(', ')}`);
      return true;
    },
    60_000,
  );
}

beforeAll(async () => {
  await ensureBinaries();
}, 30 * 60_000);

afterAll(async () => {
  if (operator !== undefined && operator.exitCode === null) {
    const exited = new Promise((r) => operator!.once('exit', r));
    operator.kill('SIGTERM');
    await exited;
  }
  await cp?.stop();
}, 60_000);

describe("the README's Kubernetes section", () => {
  it('ends with every example object Ready, the operator leading, and no dump in its log', async () => {
    const commands = sectionCommands('README.md', SECTION);
    expect(commands).toContain('kubectl apply -f examples/');
    // docs/operations.md gives the same commands.
    expect(sectionCommands('docs/operations.md', '## Kubernetes mode')).toEqual(commands);
    for (const command of commands) await run(command);

    const topLevel = yamlFiles(join(ROOT, 'examples')).filter(
      (f) => !relative(join(ROOT, 'examples'), f).includes('/'),
    );
    const expected = maxineObjectsIn(topLevel);
    expect(expected.length).toBeGreaterThanOrEqual(6);
    await allReady(expected);

    expect(logLines.some((l) => l.msg === 'became leader')).toBe(true);
    const leaseLines = logLines.filter((l) => String(l.msg).includes('lease namespace'));
    expect(leaseLines).toHaveLength(1);
    expect(leaseLines[0]).toMatchObject({
      level: 'warn',
      error: { status: 404, reason: 'NotFound' },
    });
    expect(rawLog()).not.toMatch(/HTTP-Code|"headers"|audit-id/i);
    expect(logLines.filter((l) => 'unparsed' in l)).toEqual([]);
  }, 240_000);

  it('every file under examples/, applied with kubectl, gives Ready objects', async () => {
    const files = yamlFiles(join(ROOT, 'examples'));
    for (const file of files) await kubectl(['apply', '-f', relative(ROOT, file)]);
    const expected = maxineObjectsIn(files);
    expect(expected.some((k) => k.includes('/bank/'))).toBe(true);
    await allReady(expected);
  }, 120_000);
});
