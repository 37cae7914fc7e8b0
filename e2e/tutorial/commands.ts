/**
 * What the tutorial test reads out of a command line or a Deployment's args (pure): the parts
 * of the commands a stand-in runs instead, and the operator flags this host replaces.
 */

export interface ExecInPod {
  deployment: string;
  namespace: string;
  container: string;
  /** The command after `--`, as the shell would get it. */
  command: string;
}

/** `kubectl exec deploy/D -n NS -c C -- CMD`, or undefined for any other form. */
export function parseExec(line: string): ExecInPod | undefined {
  const m = /^kubectl exec deploy\/([a-z0-9-]+) -n ([a-z0-9-]+) -c ([a-z0-9-]+) -- (\S.*)$/.exec(
    line,
  );
  if (m === null) return undefined;
  return { deployment: m[1]!, namespace: m[2]!, container: m[3]!, command: m[4]! };
}

export interface PortForward {
  namespace: string;
  service: string;
  localPort: number;
  servicePort: number;
}

/** `kubectl port-forward -n NS svc/S LOCAL[:REMOTE] [...] &`, or undefined for any other form. */
export function parsePortForward(line: string): PortForward | undefined {
  const m =
    /^kubectl port-forward -n ([a-z0-9-]+) svc\/([a-z0-9-]+) (\d+)(?::(\d+))?( .*)? &$/.exec(line);
  if (m === null) return undefined;
  return {
    namespace: m[1]!,
    service: m[2]!,
    localPort: Number(m[3]),
    servicePort: Number(m[4] ?? m[3]),
  };
}

/** Operator flags whose in-cluster values (addresses, the in-cluster ServiceAccount) this host replaces. */
export const HOST_FLAGS: ReadonlySet<string> = new Set([
  'host',
  'port',
  'kubeconfig',
  'webhook-host',
  'webhook-port',
  'webhook-ips',
  'webhook-dns-names',
  'sidecar-operator-url',
  'advertise-url',
]);

/** `args` without the HOST_FLAGS (`--flag value` and `--flag=value` alike). */
export function withoutHostFlags(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(=.*)?$/.exec(args[i]!);
    if (m !== null && HOST_FLAGS.has(m[1]!)) {
      if (m[2] === undefined) i++;
      continue;
    }
    kept.push(args[i]!);
  }
  return kept;
}
