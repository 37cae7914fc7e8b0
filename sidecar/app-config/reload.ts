/**
 * The reload action run after a config change reached the files (`maxine.io/config-reload`,
 * env `MAXINE_CONFIG_RELOAD`): `signal:<SIG>:<process name>` signals every process of that
 * name in the pod's shared process namespace (`shareProcessNamespace: true`; found in /proc by
 * its `comm` or its argv[0]'s base name), or `http:<METHOD>:<path>` calls the application on
 * localhost at its port. One run at a time; changes during a run make one more run after it.
 * Every outcome is logged and counted; nothing here throws into the sidecar.
 */
import { http } from '../../common/node-http.js';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ReloadAction } from '../../common/config-reload.js';
import type { Logger } from '../../common/logger.js';

/** Whether /proc/<pid> describes a process named `name` (comm is cut at 15 bytes). */
export function processNamed(name: string, comm: string, cmdline: string): boolean {
  if (comm.trim() === name.slice(0, 15)) return true;
  const argv0 = cmdline.split('\0', 1)[0] ?? '';
  return argv0 !== '' && basename(argv0) === name;
}

export interface ReloaderOptions {
  action: ReloadAction;
  appPort: number;
  logger: Logger;
  /** Where to look for processes; default /proc. */
  procRoot?: string;
  timeoutMs?: number;
  /** Each outcome: `ok`, `not_found` (no such process), `failed`. */
  onOutcome?: (outcome: 'ok' | 'not_found' | 'failed') => void;
}

export class Reloader {
  private running: Promise<void> | undefined;
  private again = false;
  private version = 0;

  constructor(private readonly opts: ReloaderOptions) {}

  /** Asks for a run (for config `version`); coalesced with one in progress. */
  trigger(version: number): void {
    this.version = version;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.loop();
  }

  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.runOnce(this.version);
      } while (this.again);
    } finally {
      this.running = undefined;
    }
  }

  private async runOnce(version: number): Promise<void> {
    const { action, logger } = this.opts;
    let outcome: 'ok' | 'not_found' | 'failed';
    let detail: Record<string, unknown>;
    try {
      if (action.kind === 'signal') {
        const pids = await this.signal(action.signal, action.process);
        outcome = pids.length > 0 ? 'ok' : 'not_found';
        detail = { signal: action.signal, process: action.process, pids };
      } else {
        const status = await this.call(action.method, action.path);
        outcome = status >= 200 && status < 300 ? 'ok' : 'failed';
        detail = { method: action.method, path: action.path, status };
      }
    } catch (err) {
      outcome = 'failed';
      detail = { err, action: action.kind };
    }
    this.opts.onOutcome?.(outcome);
    const fields = { ...detail, version, outcome };
    if (outcome === 'ok') logger.info(fields, 'config reload action run');
    else logger.warn(fields, 'config reload action did not succeed');
  }

  /** Signals every process named `name` but this one; returns their pids. */
  private async signal(signal: string, name: string): Promise<number[]> {
    const root = this.opts.procRoot ?? '/proc';
    const hit: number[] = [];
    for (const entry of await readdir(root)) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === process.pid) continue;
      try {
        const [comm, cmdline] = await Promise.all([
          readFile(join(root, entry, 'comm'), 'utf8'),
          readFile(join(root, entry, 'cmdline'), 'utf8'),
        ]);
        if (!processNamed(name, comm, cmdline)) continue;
        process.kill(pid, `SIG${signal}` as NodeJS.Signals);
        hit.push(pid);
      } catch {
        // gone meanwhile, or not ours to read or signal
      }
    }
    return hit;
  }

  private call(method: string, path: string): Promise<number> {
    const timeout = this.opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.opts.appPort,
          method,
          path,
          timeout,
          headers: { 'content-length': '0' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
      req.on('error', reject);
      req.end();
    });
  }
}
