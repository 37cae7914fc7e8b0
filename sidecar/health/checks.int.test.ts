/**
 * The check runners against real processes and real sockets: a command's process group is
 * killed for real, a server sees its connection closed for real.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { healthCheckSchema } from '../../common/resources.js';
import { checkTimeoutMs, runCheck, runExec, runHttp, runTcp, USER_AGENT } from './checks.js';

let dir: string;
const spawnedPids: number[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-health-'));
});
afterEach(() => {
  // A failed assertion must not leave sleeps behind.
  for (const pid of spawnedPids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already, as it should be
    }
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function script(name: string, body: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

async function pidsIn(file: string): Promise<number[]> {
  const pids = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map(Number);
  spawnedPids.push(...pids);
  return pids;
}

/** Whether the process still runs; a killed orphan is a zombie until reaped, and runs nothing. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** The pids still running after `ms` (SIGKILL is delivered asynchronously). */
async function survivors(pids: number[], ms = 2000): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids.filter(running);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    alive = alive.filter(running);
  }
  return alive;
}

const exec = (command: string[], timeoutMs = 5000) => runExec(command, { timeoutMs });
const sh = (code: string, timeoutMs = 5000) => exec(['/bin/sh', '-c', code], timeoutMs);

describe('runExec', () => {
  it.each([
    ['exit 0 is passing', 'echo all good', 'passing', 'all good\n'],
    ['exit 1 is warning', 'echo disk at 85%; exit 1', 'warning', 'disk at 85%\n'],
    ['exit 2 is critical', 'echo broken; exit 2', 'critical', 'broken\n[exit status 2]'],
    ['exit 127 is critical', 'exit 127', 'critical', '[exit status 127]'],
    ['a signal is critical', 'kill -TERM $$', 'critical', '[killed by SIGTERM]'],
  ])('%s', async (_name, code, status, output) => {
    const result = await sh(code);
    expect(result).toMatchObject({ status, output });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('runs the executable without a shell: arguments are not expanded', async () => {
    const result = await exec(['/bin/echo', '$HOME', '*', 'a;b']);
    expect(result).toMatchObject({ status: 'passing', output: '$HOME * a;b\n' });
  });

  it('passes env and cwd, and captures stdout and stderr together', async () => {
    const result = await runExec(['/bin/sh', '-c', 'echo "$GREETING"; pwd; echo oops >&2'], {
      timeoutMs: 5000,
      env: { GREETING: 'hello', PATH: process.env.PATH },
      cwd: dir,
    });
    expect(result.status).toBe('passing');
    expect(result.output).toContain(`hello\n${dir}\n`);
    expect(result.output).toContain('oops\n');
  });

  it('ignores stdin: a command reading it sees end of file at once', async () => {
    const result = await sh('cat; echo read-done', 2000);
    expect(result).toMatchObject({ status: 'passing', output: 'read-done\n' });
  });

  it('keeps the first bytes of a 1 MB output and counts the rest', async () => {
    const result = await sh("head -c 1048576 /dev/zero | tr '\\0' x");
    expect(result.status).toBe('passing');
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(4096);
    const match = /^(x+)\n\[output truncated: (\d+) bytes more\]$/.exec(result.output);
    expect(match).not.toBeNull();
    expect(match![1]!.length).toBeGreaterThan(3900);
    expect(match![1]!.length + Number(match![2])).toBe(1048576);
  });

  it('fits the status note under the cap too, and leaves an output that fits alone', async () => {
    const cut = await runExec(['/bin/sh', '-c', 'head -c 300 /dev/zero | tr "\\0" y; exit 3'], {
      timeoutMs: 5000,
      outputCapBytes: 300,
    });
    expect(Buffer.byteLength(cut.output)).toBeLessThanOrEqual(300);
    expect(cut.output).toMatch(/^y+\n\[output truncated: \d+ bytes more\]\n\[exit status 3\]$/);
    const whole = await runExec(['/bin/sh', '-c', 'head -c 300 /dev/zero | tr "\\0" y'], {
      timeoutMs: 5000,
      outputCapBytes: 300,
    });
    expect(whole.output).toBe('y'.repeat(300));
  });

  it('never cuts a UTF-8 character in two, and replaces invalid bytes', async () => {
    // 3000 × "é" (2 bytes each): the cap falls on a character boundary or one byte into one.
    const accents = await runExec(
      ['/bin/sh', '-c', 'i=0; while [ $i -lt 3000 ]; do printf é; i=$((i+1)); done'],
      {
        timeoutMs: 10_000,
        outputCapBytes: 1001,
      },
    );
    const [kept, marker] = accents.output.split('\n');
    expect(kept).toMatch(/^é+$/);
    expect(marker).toBe(`[output truncated: ${6000 - Buffer.byteLength(kept!)} bytes more]`);
    const invalid = await sh("printf 'a\\377b'");
    expect(invalid.output).toBe('a\ufffdb');
  });

  it('on timeout kills the whole process group, grandchildren included', async () => {
    const pids = join(dir, 'timeout.pids');
    const file = await script(
      'tree.sh',
      [
        `echo $$ >> ${pids}`,
        `sleep 100 & echo $! >> ${pids}`,
        // A grandchild in a subshell of its own, and its child.
        `sh -c 'sleep 100 & echo $! >> ${pids}; wait' & echo $! >> ${pids}`,
        'echo started',
        'wait',
      ].join('\n'),
    );
    const result = await exec([file], 1000);
    expect(result.status).toBe('critical');
    expect(result.output).toBe('started\n[timed out after 1000 ms; process group killed]');
    expect(result.durationMs).toBeGreaterThanOrEqual(990);
    expect(result.durationMs).toBeLessThan(3000);
    const tree = await pidsIn(pids);
    expect(tree).toHaveLength(4);
    expect(await survivors(tree)).toEqual([]);
  });

  it('does not wait for a background child holding the output open, and kills it', async () => {
    const pidFile = join(dir, 'background.pid');
    const started = Date.now();
    const result = await sh(`sleep 100 & echo $! > ${pidFile}; echo done`, 10_000);
    expect(result).toMatchObject({ status: 'passing', output: 'done\n' });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await survivors(await pidsIn(pidFile))).toEqual([]);
  });

  it('stops at an abort like at a timeout', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const result = await runExec(['/bin/sleep', '100'], {
      timeoutMs: 10_000,
      signal: controller.signal,
    });
    expect(result).toMatchObject({ status: 'critical', output: '[aborted; process group killed]' });
    expect(result.durationMs).toBeLessThan(2000);
  });

  it('reports a missing command as critical', async () => {
    const result = await exec(['/no/such/health-check', '--now']);
    expect(result).toMatchObject({
      status: 'critical',
      output: 'cannot run "/no/such/health-check": no such file or directory',
    });
  });

  it('reports a command that is not executable as critical', async () => {
    const file = await script('not-executable.sh', 'exit 0');
    await chmod(file, 0o644);
    const result = await exec([file]);
    expect(result).toMatchObject({
      status: 'critical',
      output: `cannot run ${JSON.stringify(file)}: permission denied`,
    });
  });

  it('reports a missing working directory as critical', async () => {
    const result = await runExec(['/bin/true'], { timeoutMs: 5000, cwd: join(dir, 'nope') });
    expect(result.status).toBe('critical');
    expect(result.output).toMatch(/^cannot run "\/bin\/true": /);
  });

  it('reports a command that cannot be spawned at all as critical', async () => {
    const result = await exec(['/bin/echo\0oops']);
    expect(result.status).toBe('critical');
    expect(result.output).toMatch(/^cannot run /);
  });
});

const execFileP = promisify(execFile);

describe('runHttp', () => {
  let server: http.Server;
  let tlsServer: https.Server;
  let port: number;
  let tlsPort: number;
  const open = new Set<Socket>();
  const requests: { url: string | undefined; agent: string | undefined }[] = [];

  const handler: http.RequestListener = (req, res) => {
    requests.push({ url: req.url, agent: req.headers['user-agent'] });
    switch (req.url) {
      case '/ok':
        return void res.end('fine');
      case '/empty':
        return void res.writeHead(204).end();
      case '/busy':
        return void res.writeHead(429).end('slow down');
      case '/fail':
        return void res.writeHead(500).end('e'.repeat(2000));
      case '/redirect':
        return void res.writeHead(302, { location: '/ok' }).end();
      case '/endless':
        // Headers, then a body that never ends: the check reads its start and lets go.
        res.writeHead(200);
        return void res.write('z'.repeat(600));
      default:
        // /slow: never answers
        return;
    }
  };

  const track = (socket: Socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  };

  beforeAll(async () => {
    server = http.createServer(handler).on('connection', track);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;

    const key = join(dir, 'tls.key');
    const cert = join(dir, 'tls.crt');
    await execFileP('openssl', [
      ...['req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt'],
      ...['ec_paramgen_curve:prime256v1', '-keyout', key, '-out', cert],
      ...['-days', '1', '-subj', '/CN=not-this-host'],
    ]);
    tlsServer = https
      .createServer({ key: await readFile(key), cert: await readFile(cert) }, handler)
      .on('secureConnection', track);
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    tlsPort = (tlsServer.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    tlsServer.closeAllConnections();
    await new Promise((r) => server.close(r));
    await new Promise((r) => tlsServer.close(r));
  });
  afterEach(async () => {
    // Every check closes its connection: none stays open on the server side.
    const deadline = Date.now() + 2000;
    while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(open.size).toBe(0);
    requests.length = 0;
  });

  const get = (path: string, timeoutMs = 2000) =>
    runHttp({ host: '127.0.0.1', port, path, scheme: 'http', timeoutMs });

  it.each([
    ['/ok', 'passing', 'HTTP 200 OK\nfine'],
    ['/empty', 'passing', 'HTTP 204 No Content'],
    ['/busy', 'warning', 'HTTP 429 Too Many Requests\nslow down'],
    ['/redirect', 'critical', 'HTTP 302 Found'],
  ])('GET %s is %s', async (path, status, output) => {
    expect(await get(path)).toMatchObject({ status, output });
    expect(requests).toEqual([{ url: path, agent: USER_AGENT }]);
  });

  it('reports a server error with the first 512 bytes of its body', async () => {
    const result = await get('/fail');
    expect(result).toMatchObject({
      status: 'critical',
      output: `HTTP 500 Internal Server Error\n${'e'.repeat(512)}`,
    });
  });

  it('reads the start of a body that never ends, then closes', async () => {
    const result = await get('/endless');
    expect(result).toMatchObject({ status: 'passing', output: `HTTP 200 OK\n${'z'.repeat(512)}` });
    expect(result.durationMs).toBeLessThan(1000);
  });

  it('times out on a server that does not answer, and closes the connection', async () => {
    const result = await get('/slow', 300);
    expect(result).toMatchObject({
      status: 'critical',
      output: `GET http://127.0.0.1:${port}/slow: timed out after 300 ms`,
    });
    expect(result.durationMs).toBeGreaterThanOrEqual(290);
    expect(result.durationMs).toBeLessThan(1500);
  });

  it('reports a refused connection', async () => {
    const closed = await closedPort();
    const result = await runHttp({
      host: '127.0.0.1',
      port: closed,
      path: '/ok',
      scheme: 'http',
      timeoutMs: 2000,
    });
    expect(result.status).toBe('critical');
    expect(result.output).toMatch(`GET http://127.0.0.1:${closed}/ok: connect ECONNREFUSED`);
  });

  it('speaks HTTPS without verifying the certificate, as kubelet', async () => {
    const result = await runHttp({
      host: '127.0.0.1',
      port: tlsPort,
      path: '/ok',
      scheme: 'https',
      timeoutMs: 2000,
    });
    expect(result).toMatchObject({ status: 'passing', output: 'HTTP 200 OK\nfine' });
  });

  it('fails an HTTPS check against a plain HTTP port', async () => {
    const result = await runHttp({
      host: '127.0.0.1',
      port,
      path: '/ok',
      scheme: 'https',
      timeoutMs: 2000,
    });
    expect(result.status).toBe('critical');
    expect(result.output).toMatch(/^GET https:\/\/127\.0\.0\.1:\d+\/ok: /);
  });
});

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe('runTcp', () => {
  it('passes when the port accepts, and closes the connection at once', async () => {
    const server = net.createServer();
    const closedOnServer = new Promise<void>((resolve) => {
      server.once('connection', (socket) => socket.on('close', () => resolve()));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const result = await runTcp({ host: '127.0.0.1', port, timeoutMs: 2000 });
      expect(result).toMatchObject({ status: 'passing', output: `connected to 127.0.0.1:${port}` });
      await closedOnServer;
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('fails on a closed port', async () => {
    const port = await closedPort();
    const result = await runTcp({ host: '127.0.0.1', port, timeoutMs: 2000 });
    expect(result.status).toBe('critical');
    expect(result.output).toMatch(`connect 127.0.0.1:${port}: connect ECONNREFUSED`);
  });
});

describe('runCheck', () => {
  it.each([
    [{ intervalSeconds: 10 }, 5000],
    [{ intervalSeconds: 2 }, 2000],
    [{ intervalSeconds: 10, timeoutSeconds: 7 }, 7000],
  ])('derives the timeout from %j', (spec, ms) => {
    expect(checkTimeoutMs(spec)).toBe(ms);
  });

  it('probes the default port when the spec names none, and its own port otherwise', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const closed = await closedPort();
    try {
      const target = { host: '127.0.0.1', defaultPort: port };
      const byDefault = healthCheckSchema.parse({ tcp: {} });
      expect((await runCheck(byDefault, target)).status).toBe('passing');
      const own = healthCheckSchema.parse({ tcp: { port: closed } });
      expect((await runCheck(own, target)).status).toBe('critical');
      const httpSpec = healthCheckSchema.parse({ http: { path: '/', port: closed } });
      expect((await runCheck(httpSpec, target)).output).toContain(`127.0.0.1:${closed}/`);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('runs an exec check with the timeout of the spec', async () => {
    const spec = healthCheckSchema.parse({
      exec: { command: ['/bin/sleep', '10'] },
      intervalSeconds: 1,
    });
    const result = await runCheck(spec, { host: '127.0.0.1', defaultPort: 1 });
    expect(result).toMatchObject({
      status: 'critical',
      output: '[timed out after 1000 ms; process group killed]',
    });
  });
});
