/**
 * The operator's identity in the e2e tier: its manifests (namespace, ServiceAccount,
 * least-privilege ClusterRole) applied as a user would, and a kubeconfig holding a token of
 * that ServiceAccount, so the operator under test has exactly its RBAC rights.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Writable } from 'node:stream';
import { configSchema } from '../operator/config.js';
import { createOperator } from '../operator/operator.js';
import { loadKubeParts } from '../operator/kube/load-parts.js';
import type { Operator } from '../operator/operator.js';
import { createLogger } from '../common/logger.js';
import type { ControlPlane } from './controlplane/cluster.js';
import { applyCrds } from './lib/crds.js';

export const OPERATOR_NAMESPACE = 'maxine-system';
export const OPERATOR_SERVICE_ACCOUNT = 'maxine-operator';

interface Kubeconfig {
  clusters: { name: string; cluster: { server: string; 'certificate-authority-data'?: string } }[];
}

/** Runs kubectl against `cp` (with `input` on stdin); its stdout, or an error with stderr. */
export async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Applies manifests/ and returns the path of a kubeconfig with the operator's token. */
export async function operatorKubeconfig(cp: ControlPlane): Promise<string> {
  await kubectl(cp, ['apply', '-k', join(process.cwd(), 'manifests')]);
  const token = (
    await kubectl(cp, [
      'create',
      'token',
      OPERATOR_SERVICE_ACCOUNT,
      '-n',
      OPERATOR_NAMESPACE,
      '--duration=2h',
    ])
  ).trim();
  const path = join(cp.dir, 'operator.kubeconfig');
  await writeTokenKubeconfig(cp, path, {
    user: OPERATOR_SERVICE_ACCOUNT,
    token,
    context: 'operator',
  });
  return path;
}

/**
 * Writes a kubeconfig at `path` (mode 0600) that reaches `cp`'s cluster as `user` with a bearer
 * `token`, in a context named `context` (with a default `namespace` when given).
 */
export async function writeTokenKubeconfig(
  cp: ControlPlane,
  path: string,
  who: { user: string; token: string; context: string; namespace?: string },
): Promise<void> {
  const admin = parse(await readFile(cp.kubeconfig, 'utf8')) as Kubeconfig;
  const cluster = admin.clusters[0];
  if (cluster === undefined) throw new Error(`no cluster in ${cp.kubeconfig}`);
  const { user, token, context, namespace } = who;
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [cluster],
      users: [{ name: user, user: { token } }],
      contexts: [
        {
          name: context,
          context: { cluster: cluster.name, user, ...(namespace !== undefined && { namespace }) },
        },
      ],
      'current-context': context,
    }),
    { mode: 0o600 },
  );
}

/**
 * Installs the CRDs and waits until the API server serves them (polled: `kubectl wait` fails on
 * a CRD that has no conditions yet; e2e/lib/crds.ts).
 */
export async function installCrds(cp: ControlPlane): Promise<void> {
  await applyCrds((args) => cp.kubectl(args), join(process.cwd(), 'crds'));
}

/** The user the e2e operators know as their bootstrap administrator. */
export const E2E_ADMIN = 'e2e-admin';

/**
 * An in-process operator in kubernetes mode with the operator's own RBAC; logs discarded.
 * It knows one static token, of a bootstrap administrator: `admin` holds the header for it.
 */
export async function startKubeOperator(
  cp: ControlPlane,
  overrides: Record<string, unknown> = {},
  /** Where the operator's log goes (a test reading it); default: discarded. */
  log?: { level: string; sink: Writable },
): Promise<{ operator: Operator; base: string; admin: { authorization: string } }> {
  // MAXINE_E2E_LOGS=debug (or info, ...) shows the operator's log on stderr when debugging.
  const level = log?.level ?? process.env.MAXINE_E2E_LOGS ?? 'warn';
  const sink =
    log?.sink ??
    (process.env.MAXINE_E2E_LOGS === undefined
      ? new Writable({ write: (_c, _e, done) => done() })
      : process.stderr);
  const token = randomBytes(24).toString('base64url');
  const tokensFile = join(cp.dir, `tokens-${token.slice(0, 8)}.yaml`);
  await writeFile(tokensFile, stringify({ tokens: [{ token, user: E2E_ADMIN }] }), {
    mode: 0o600,
  });
  await loadKubeParts();
  const operator = createOperator(
    configSchema.parse({
      port: 0,
      mode: 'kubernetes',
      // A second replica passes the first one's kubeconfig: manifests/ are applied once.
      kubeconfig:
        typeof overrides.kubeconfig === 'string'
          ? overrides.kubeconfig
          : await operatorKubeconfig(cp),
      logLevel: 'warn',
      // The injection webhook is tested on its own (sidecar.e2e); elsewhere it stays off.
      webhook: false,
      staticTokensFile: tokensFile,
      bootstrapAdmins: [`User:${E2E_ADMIN}`],
      ...overrides,
    }),
    createLogger(level, sink),
  );
  const address = await operator.start();
  return {
    operator,
    base: `http://127.0.0.1:${address.port}`,
    admin: { authorization: `Bearer ${token}` },
  };
}
