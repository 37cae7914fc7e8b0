/** The `kubectl-maxine` plugin run as the executable it is, for the plugin's e2e suites. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { eventually } from '../../test/helpers/operator.js';

export const PLUGIN = join(process.cwd(), 'plugin', 'kubectl-maxine.ts');

export interface PluginRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A plugin process: its output so far, and its end. */
export interface RunningPlugin {
  child: ChildProcess;
  done: Promise<PluginRun>;
  output: () => string;
}

/** Starts the plugin from source (`node --import tsx`) with `args`, in this environment. */
export function startPlugin(args: string[], env: NodeJS.ProcessEnv): RunningPlugin {
  const child = spawn(process.execPath, ['--import', 'tsx', PLUGIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<PluginRun>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done, output: () => stdout };
}

/**
 * Runs `events -f` (`args`, in `opts.env`): after `before` (if any, given the output so far), calls
 * `register` until the plugin's output matches `pattern` (30 s at most; `what` names it in the
 * timeout), then ends the plugin (SIGTERM) whatever happened, and returns its output.
 */
export async function tailUntil(
  args: string[],
  register: () => Promise<void>,
  pattern: RegExp,
  opts: {
    env: NodeJS.ProcessEnv;
    what: string;
    before?: (output: () => string) => Promise<void>;
  },
): Promise<string> {
  const tail = startPlugin(args, opts.env);
  try {
    await opts.before?.(tail.output);
    await eventually(
      async () => {
        await register();
        return pattern.test(tail.output());
      },
      30_000,
      opts.what,
    );
    return tail.output();
  } finally {
    tail.child.kill('SIGTERM');
    await tail.done;
  }
}
