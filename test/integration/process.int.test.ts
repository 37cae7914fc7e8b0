/**
 * The operator as a real process, started the way `npm start` does (flags and environment),
 * stopped with SIGTERM: it must finish in-flight work, log, and exit 0.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { spawnListening } from '../helpers/spawn.js';

interface Started {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  port: number;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

async function startProcess(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const { proc, lines, port } = await spawnListening(
    ['--import', 'tsx', 'operator/main.ts', ...args],
    { env: { ...process.env, ...env } },
  );
  children.push(proc);
  return { child: proc, lines, port };
}

describe('operator process', () => {
  it('reads flags and environment, serves, and on SIGTERM stops cleanly with exit code 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'maxine-proc-'));
    await writeFile(
      join(dir, 'svc.yaml'),
      'apiVersion: maxine.io/v1alpha1\nkind: MaxineService\nmetadata: { name: web, namespace: shop }\nspec: {}\n',
    );
    try {
      const { child, lines, port } = await startProcess(['--port', '0', '--disallow-undeclared'], {
        MAXINE_RESOURCES: dir,
        MAXINE_LOG_LEVEL: 'info',
      });
      const base = `http://127.0.0.1:${port}`;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const undeclared = await fetch(`${base}/api/v1/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service: 'nope', namespace: 'shop', host: 'h', port: 1 }),
      });
      expect(undeclared.status).toBe(404);
      const exited = new Promise<number | null>((resolve) =>
        child.on('exit', (code) => resolve(code)),
      );
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const messages = lines.map((l) => l.msg);
      expect(messages).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
      expect(lines.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads examples/ as `npm start` does: no problem, and nothing said about its Namespaces', async () => {
    const { child, lines, port } = await startProcess(['--port', '0']);
    let body: { items: { kind: string }[]; problems: unknown[] } = { items: [], problems: [] };
    for (let i = 0; i < 100 && body.items.length === 0; i++) {
      body = (await (
        await fetch(`http://127.0.0.1:${port}/api/v1/resources`)
      ).json()) as typeof body;
      if (body.items.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    // examples/ holds Namespaces for kubectl too: standalone mode skips them silently.
    expect(body.items.length).toBeGreaterThanOrEqual(7);
    expect(body.items.every((i) => i.kind.startsWith('Maxine'))).toBe(true);
    expect(body.problems).toEqual([]);
    // Nothing about the folder (the README's two warnings, anonymous access and audit log, aside).
    const loud = lines.filter((l) => l.level === 'warn' || l.level === 'error');
    const aboutFiles = loud.filter(
      (l) => 'file' in l || /resource|namespace|invalid/i.test(String(l.msg)),
    );
    expect(aboutFiles).toEqual([]);
    child.kill('SIGTERM');
  });

  it('refuses a bad flag with a message naming it and exit code 2', async () => {
    const child = spawn(process.execPath, [
      '--import',
      'tsx',
      'operator/main.ts',
      '--port',
      'eighty',
    ]);
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr).toContain('port');
    expect(stderr).toContain('Usage: maxine-operator');
  });
});
