/**
 * The plugin's exit codes: a script can tell "fix your command" from "the operator is not
 * there" from "you may not" (documented in docs/kubectl-maxine.md).
 */
export const EXIT = {
  ok: 0,
  /** Anything else: the API server or the operator failed, an unexpected answer. */
  failed: 1,
  /** The command line is wrong (unknown command or flag, missing argument, bad value). */
  usage: 2,
  /** No operator answers: its Service does not exist, has no endpoints, or does not connect. */
  operatorMissing: 3,
  /** The API server or the operator refused: missing RBAC, or no/unknown credentials. */
  forbidden: 4,
  /** What was asked for does not exist (a service, a pod). */
  notFound: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the plugin explains to its user and exits with. */
export class PluginError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
  }
}
