/**
 * The monitor on a real schedule with real checks: a script whose exit status a file decides,
 * a server that records when it is probed.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { healthCheckSchema } from '../../common/resources.js';
import { createLogger } from '../../common/logger.js';
import { HealthMonitor } from './monitor.js';
import type { Observation } from './state.js';

let dir: string;
const monitors: HealthMonitor[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'maxine-monitor-'));
});
/** Processes a test saw start; killed after it, should a failure have left them running. */
const strays: number[] = [];
afterEach(async () => {
  await Promise.all(monitors.splice(0).map((m) => m.stop()));
  for (const pid of strays.splice(0)) {
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

const target = { host: '127.0.0.1', defaultPort: 1 };

function monitor(spec: unknown, onChange: (s: Observation) => void = () => {}): HealthMonitor {
  const m = new HealthMonitor({ spec: healthCheckSchema.parse(spec), target, onChange });
  monitors.push(m);
  return m;
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Writes the file in one step, so a check never reads it half-written. */
async function replace(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

/** Whether the process still runs (a killed orphan may linger as a zombie, which runs nothing). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

describe('HealthMonitor', () => {
  it('reports critical after failureThreshold failing runs and healthy after successThreshold', async () => {
    const codeFile = join(dir, 'code');
    const runsFile = join(dir, 'runs');
    await replace(codeFile, '0');
    await writeFile(runsFile, '');
    // Each run logs the exit status it read, so the runs behind a change can be counted.
    const command = ['/bin/sh', '-c', `c=$(cat ${codeFile}); echo $c >> ${runsFile}; exit $c`];
    const changes: { status: string; at: number; runs: string[] }[] = [];
    const m = monitor(
      { exec: { command }, intervalSeconds: 1, failureThreshold: 3, successThreshold: 2 },
      ({ status }) => {
        const runs = readFileSync(runsFile, 'utf8').trim().split('\n');
        changes.push({ status, at: Date.now(), runs });
      },
    );
    m.start();
    await waitFor('passing', () => changes[0]);
    expect(changes[0]!.status).toBe('passing');

    await replace(codeFile, '2');
    const flipped = Date.now();
    const critical = await waitFor('critical', () => changes[1]);
    expect(critical.status).toBe('critical');
    // Exactly failureThreshold failing runs, one per second: the first within a second of the
    // flip, the third two seconds later.
    expect(critical.runs.slice(-4)).toEqual(['0', '2', '2', '2']);
    expect(critical.at - flipped).toBeGreaterThanOrEqual(1900);
    expect(critical.at - flipped).toBeLessThan(3800);
    expect(m.current()?.status).toBe('critical');
    expect(m.current()?.output).toBe('[exit status 2]');

    await replace(codeFile, '0');
    const healed = Date.now();
    const passing = await waitFor('passing again', () => changes[2]);
    expect(passing.status).toBe('passing');
    expect(passing.runs.slice(-3)).toEqual(['2', '0', '0']);
    expect(passing.at - healed).toBeGreaterThanOrEqual(900);
    expect(passing.at - healed).toBeLessThan(2800);

    await m.stop();
    const runsAtStop = readFileSync(runsFile, 'utf8');
    await new Promise((r) => setTimeout(r, 1500));
    expect(readFileSync(runsFile, 'utf8')).toBe(runsAtStop);
    expect(changes).toHaveLength(3);
  });

  it('measures the interval start to start when the check is faster than the interval', async () => {
    const arrivals: number[] = [];
    const server = http.createServer((_req, res) => {
      arrivals.push(Date.now());
      setTimeout(() => res.end('ok'), 400);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const m = monitor({ http: { path: '/', port }, intervalSeconds: 1 });
      m.start();
      await waitFor('four probes', () => (arrivals.length >= 4 ? true : undefined));
      await m.stop();
      const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]!);
      // 1 s apart, not 1.4 s (interval after the end) and never less (overlap).
      for (const gap of gaps) {
        expect(gap).toBeGreaterThanOrEqual(950);
        expect(gap).toBeLessThan(1250);
      }
      expect(m.current()?.status).toBe('passing');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('stop() kills a running check with its children and drops its result', async () => {
    const pidFile = join(dir, 'stop.pids');
    const changes: Observation[] = [];
    const m = monitor(
      {
        exec: {
          command: [
            '/bin/sh',
            '-c',
            `echo $$ > ${pidFile}; sleep 100 & echo $! >> ${pidFile}; wait`,
          ],
        },
        intervalSeconds: 60,
        timeoutSeconds: 60,
      },
      (s) => changes.push(s),
    );
    m.start();
    const pids = await waitFor('the check to start', () => {
      try {
        const lines = readFileSync(pidFile, 'utf8').trim().split('\n');
        return lines.length === 2 ? lines.map(Number) : undefined;
      } catch {
        return undefined;
      }
    });
    strays.push(...pids);
    expect(pids.every(running)).toBe(true);
    const stopping = Date.now();
    await m.stop();
    expect(Date.now() - stopping).toBeLessThan(1500);
    await waitFor('the check to die', () => (pids.some(running) ? undefined : true), 2000);
    expect(changes).toEqual([]);
    expect(m.current()).toBeUndefined();
  });

  it('update() runs the new check at once and keeps the reported status', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    try {
      const changes: Observation[] = [];
      const m = monitor({ tcp: { port }, intervalSeconds: 3600 }, (s) => changes.push(s));
      m.start();
      await waitFor('passing', () => changes[0]);
      const updated = Date.now();
      m.update(healthCheckSchema.parse({ tcp: { port: closedPort }, failureThreshold: 1 }));
      // Carried over until the new check reports.
      expect(m.current()?.status).toBe('passing');
      await waitFor('critical', () => changes[1]);
      expect(Date.now() - updated).toBeLessThan(1000);
      expect(changes.map((c) => c.status)).toEqual(['passing', 'critical']);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('applies the new thresholds to the carried status; runNow() runs outside the schedule', async () => {
    const changes: string[] = [];
    const m = monitor({ exec: { command: ['/bin/true'] } }, (s) => changes.push(s.status));
    expect(m.current()).toBeUndefined();
    expect(await m.runNow()).toEqual({ status: 'passing', output: '' });
    const failing = { exec: { command: ['/bin/sh', '-c', 'exit 2'] }, failureThreshold: 2 };
    m.update(healthCheckSchema.parse(failing));
    expect(await m.runNow()).toEqual({ status: 'passing', output: '' });
    expect(await m.runNow()).toEqual({ status: 'critical', output: '[exit status 2]' });
    expect(changes).toEqual(['passing', 'critical']);
  });

  it('runs checks one at a time even when asked at once', async () => {
    const logFile = join(dir, 'overlap.log');
    await writeFile(logFile, '');
    const m = monitor({
      exec: {
        command: ['/bin/sh', '-c', `echo start >> ${logFile}; sleep 0.2; echo end >> ${logFile}`],
      },
    });
    await Promise.all([m.runNow(), m.runNow(), m.runNow()]);
    expect((await readFile(logFile, 'utf8')).trim().split('\n')).toEqual([
      'start',
      'end',
      'start',
      'end',
      'start',
      'end',
    ]);
  });

  it('survives an onChange that throws, and logs it', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const m = new HealthMonitor({
      spec: healthCheckSchema.parse({ exec: { command: ['/bin/true'] } }),
      target,
      onChange: () => {
        throw new Error('listener broke');
      },
      logger: createLogger('info', sink),
    });
    monitors.push(m);
    expect(await m.runNow()).toEqual({ status: 'passing', output: '' });
    expect(lines.join('')).toContain('listener broke');
  });
});
