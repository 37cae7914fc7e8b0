/**
 * What a non-2xx answer means, said so that the user knows what to do (pure). An answer can
 * come from the API server (a `Status` object: the Service is missing, has no endpoints, the
 * user may not use the proxy) or from the operator (`{"error": {"code", "message"}}`).
 */
import { EXIT, PluginError } from './exit-codes.js';
import type { ExitCode } from './exit-codes.js';
import type { Answer, ProxyTarget } from './transport.js';

export type Via =
  | {
      via: 'proxy';
      target: ProxyTarget;
      path: string;
      /** Whether a bearer token went to the operator in X-Maxine-Kubernetes-Authorization. */
      forwarded?: boolean;
    }
  | { via: 'direct'; server: string; path: string };

interface KubeStatus {
  kind: 'Status';
  message?: string;
  reason?: string;
  code?: number;
}
interface OperatorError {
  error: { code: string; message: string };
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}

const isStatus = (v: unknown): v is KubeStatus =>
  typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
const isOperatorError = (v: unknown): v is OperatorError =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { error?: { code?: unknown } }).error?.code === 'string';

/** Throws the PluginError a failed answer means; returns for a 2xx. */
export function describeFailure(answer: Answer, via: Via): void {
  if (answer.status >= 200 && answer.status < 300) return;
  const parsed = parseJson(answer.body);
  if (isOperatorError(parsed)) throw operatorFailure(answer.status, parsed, via);
  if (via.via === 'proxy')
    throw proxyFailure(answer, isStatus(parsed) ? parsed : undefined, via.target);
  throw new PluginError(
    answer.status === 404 ? EXIT.operatorMissing : EXIT.failed,
    `${via.server} answered ${answer.status} to ${via.path}${answer.status === 404 ? ': is it a Maxine operator?' : ''}`,
  );
}

const ANONYMOUS_HINT =
  'The API server does not pass your credentials on to the operator, and your kubeconfig user ' +
  'has no bearer token for kubectl maxine to forward (a client certificate?), so the operator ' +
  'sees an anonymous caller. Use a kubeconfig user with a token, or --token TOKEN (for example ' +
  'kubectl create token SERVICEACCOUNT), or let anonymous callers read (operator flag ' +
  '--anonymous true and a MaxineACL for Group system:unauthenticated); see docs/kubectl-maxine.md.';

function operatorFailure(status: number, e: OperatorError, via: Via): PluginError {
  const said = `the operator answered ${status} ${e.error.code}: ${e.error.message}`;
  if (status === 401)
    return new PluginError(
      EXIT.forbidden,
      via.via === 'proxy' && via.forwarded !== true ? `${said}\n${ANONYMOUS_HINT}` : said,
    );
  if (status === 403) return new PluginError(EXIT.forbidden, said);
  if (status === 404 && e.error.code !== 'ROUTE_NOT_FOUND')
    return new PluginError(EXIT.notFound, said);
  const code: ExitCode = status === 404 ? EXIT.operatorMissing : EXIT.failed;
  return new PluginError(code, said);
}

function proxyFailure(answer: Answer, status: KubeStatus | undefined, t: ProxyTarget): PluginError {
  const where = `service ${t.service} in namespace ${t.namespace}`;
  const message = status?.message ?? answer.body.trim().slice(0, 200);
  if (answer.status === 401)
    return new PluginError(EXIT.forbidden, `the API server does not know you (401): ${message}`);
  if (answer.status === 403)
    return new PluginError(
      EXIT.forbidden,
      `the API server refused (403): ${message}\nThe plugin needs "get" on services/proxy in ${t.namespace} (kubectl auth can-i get services/proxy -n ${t.namespace}).`,
    );
  if (answer.status === 404 && status?.reason === 'NotFound')
    return new PluginError(
      EXIT.operatorMissing,
      `no Maxine operator: ${message}. Is Maxine installed? Look for it with --operator-namespace and --operator-service (now ${where}).`,
    );
  if (answer.status === 503 || answer.status === 502)
    return new PluginError(
      EXIT.operatorMissing,
      `the Maxine operator does not answer (${answer.status}): ${message}. Is its pod running? kubectl -n ${t.namespace} get pods,endpoints ${t.service}`,
    );
  return new PluginError(EXIT.failed, `the API server answered ${answer.status}: ${message}`);
}
