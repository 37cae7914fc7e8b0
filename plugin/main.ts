/**
 * `kubectl maxine`: the composition root of the kubectl plugin (started by
 * plugin/kubectl-maxine.ts, the `kubectl-maxine` executable of package.json "bin"). Parses the command line, loads the
 * kubeconfig, picks the transport to the operator and runs the command; failures are printed
 * as one clear message on stderr with the exit code of plugin/exit-codes.ts.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { HELP, parseCommand } from './args.js';
import type { Command, CommonOptions } from './args.js';
import { discover, events, graph, status, why } from './commands.js';
import type { Context } from './commands.js';
import { EXIT, PluginError } from './exit-codes.js';
import { describeReport, gatherFacts, injectCheck } from './inject-check.js';
import { render } from './format.js';
import { directTransport, proxyTransport } from './transport.js';
import type { OperatorTransport } from './transport.js';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

function loadKubeConfig(c: CommonOptions): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (c.kubeconfig !== undefined) kc.loadFromFile(c.kubeconfig);
    else kc.loadFromDefault();
    if (c.context !== undefined) kc.setCurrentContext(c.context);
  } catch (err) {
    throw new PluginError(EXIT.failed, `cannot load the kubeconfig: ${(err as Error).message}`);
  }
  return kc;
}

/** The kubeconfig user's bearer token, for --server (none for client certificates). */
function tokenOf(kc: KubeConfig): string | undefined {
  const user = kc.getCurrentUser();
  return user?.token ?? undefined;
}

function transportOf(c: CommonOptions, kc: KubeConfig | undefined): OperatorTransport {
  if (c.server !== undefined)
    return directTransport(c.server, c.token ?? (kc === undefined ? undefined : tokenOf(kc)));
  if (kc === undefined) throw new PluginError(EXIT.failed, 'no kubeconfig');
  return proxyTransport(
    kc,
    { namespace: c.operatorNamespace, service: c.operatorService, port: c.operatorPort },
    c.token,
  );
}

/** The kubeconfig (none for --server with --token) and the namespace of unqualified names. */
function kubeOf(c: CommonOptions & { command: string }): { kc?: KubeConfig; namespace: string } {
  const needsKube = c.server === undefined || c.token === undefined || c.command === 'inject-check';
  const kc = needsKube ? loadKubeConfig(c) : undefined;
  const fromContext = kc?.getContextObject(kc.getCurrentContext())?.namespace;
  return { ...(kc && { kc }), namespace: c.namespace ?? (fromContext || 'default') };
}

async function runCommand(c: Exclude<Command, { command: 'help' }>, io: Io): Promise<void> {
  const { kc, namespace } = kubeOf(c);
  if (c.command === 'inject-check') {
    const report = injectCheck(await gatherFacts(kc as KubeConfig, namespace, c.pod));
    io.stdout(
      c.output === 'json' || c.output === 'yaml'
        ? render(c.output, report, [], [])
        : describeReport(report),
    );
    return;
  }
  const ctx: Context = { transport: transportOf(c, kc), namespace, write: io.stdout };
  switch (c.command) {
    case 'status':
      return status(c, ctx);
    case 'discover':
      return discover(c, ctx);
    case 'why':
      return why(c, ctx);
    case 'graph':
      return graph(c, ctx);
    case 'events':
      await events(c, ctx);
      if (c.follow)
        throw new PluginError(
          EXIT.operatorMissing,
          'the event stream ended: the operator closed it',
        );
      return;
  }
}

/** Runs one invocation; resolves with its exit code (never throws). */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  try {
    const command = parseCommand(argv);
    if (command.command === 'help') {
      io.stdout(HELP);
      return EXIT.ok;
    }
    await runCommand(command, io);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof PluginError) {
      io.stderr(`error: ${err.message}\n`);
      if (err.exitCode === EXIT.usage) io.stderr('See kubectl maxine help.\n');
      return err.exitCode;
    }
    io.stderr(`error: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.failed;
  }
}
