/**
 * `kubectl maxine inject-check POD`: why a pod did or did not get a sidecar. The facts come from
 * the API server with the user's credentials (the pod, its namespace's labels, the
 * MutatingWebhookConfiguration, the namespace's MaxineServices); the verdict on the pod itself
 * is the webhook's own decision function (common/injection-patch.ts buildInjection), never a
 * second implementation of it.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { buildInjection, injectionConfigSchema } from '../common/injection-patch.js';
import type { InjectablePod } from '../common/injection-patch.js';
import { EXIT, PluginError } from './exit-codes.js';
import { matchesSelector, selectorText } from './label-selector.js';
import type { LabelSelector } from './label-selector.js';

export const SIDECAR_CONTAINER = 'maxine-sidecar';
export const NAMESPACE_OPT_IN_PATH = '/inject/namespace';

export interface WebhookFacts {
  name: string;
  path?: string;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  failurePolicy?: string;
  coversPodCreate: boolean;
}

export interface InjectFacts {
  namespace: string;
  namespaceLabels: Record<string, string>;
  pod: InjectablePod & { metadata?: { name?: string; labels?: Record<string, string> } };
  /** undefined: the MutatingWebhookConfiguration does not exist. */
  webhooks: WebhookFacts[] | undefined;
  webhookConfiguration: string;
  services: { name: string; selector: Record<string, string> }[];
}

export interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

export interface InjectReport {
  pod: string;
  namespace: string;
  injected: boolean;
  checks: Check[];
  verdict: string;
}

const hasSidecar = (pod: InjectFacts['pod']): boolean =>
  [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].some(
    (c) => c.name === SIDECAR_CONTAINER,
  );

/** The report for one pod (pure). */
export function injectCheck(f: InjectFacts): InjectReport {
  const podName = f.pod.metadata?.name ?? '<unnamed>';
  const labels = f.pod.metadata?.labels ?? {};
  const injected = hasSidecar(f.pod);
  const checks = podChecks(f, injected);
  const called = calledWebhooks(f, labels, checks);
  const namespaceOptIn = called.some((w) => w.path === NAMESPACE_OPT_IN_PATH);
  const decision = buildInjection({
    pod: f.pod,
    namespace: f.namespace,
    namespaceOptIn,
    services: f.services,
    config: injectionConfigSchema.parse({ image: 'inject-check.invalid/sidecar' }),
  });
  const decisionText = decision.inject
    ? `injects it for service ${decision.service}`
    : `does not inject it: ${decision.reason}`;
  checks.push({
    check: 'webhook decision',
    ok: decision.inject || (injected && decision.reason === 'already injected'),
    detail: `asked about this pod now, the webhook ${decisionText}${
      decision.warnings?.length ? ` (${decision.warnings.join('; ')})` : ''
    }`,
  });
  return {
    pod: podName,
    namespace: f.namespace,
    injected,
    checks,
    verdict: verdictOf(f, injected, called, decision),
  };
}

/** The pod's own facts: its sidecar, its namespace's label, its annotation. */
function podChecks(f: InjectFacts, injected: boolean): Check[] {
  const annotations = f.pod.metadata?.annotations ?? {};
  const checks: Check[] = [];
  checks.push({
    check: 'sidecar container',
    ok: injected,
    detail: injected
      ? `${SIDECAR_CONTAINER} is in the pod (maxine.io/status: ${annotations['maxine.io/status'] ?? '<none>'})`
      : `no ${SIDECAR_CONTAINER} container in the pod`,
  });
  const nsLabel = f.namespaceLabels['maxine.io/injection'];
  checks.push({
    check: 'namespace label',
    ok: nsLabel === 'enabled',
    detail: `namespace ${f.namespace} maxine.io/injection=${nsLabel ?? '<unset>'}`,
  });
  const podAnnotation = annotations['maxine.io/inject'];
  checks.push({
    check: 'pod annotation',
    ok: podAnnotation !== 'false' && (nsLabel === 'enabled' || podAnnotation === 'true'),
    detail: `maxine.io/inject=${podAnnotation ?? '<unset>'}`,
  });
  return checks;
}

function calledWebhooks(
  f: InjectFacts,
  labels: Record<string, string>,
  checks: Check[],
): WebhookFacts[] {
  if (f.webhooks === undefined) {
    checks.push({
      check: 'webhook configuration',
      ok: false,
      detail: `MutatingWebhookConfiguration ${f.webhookConfiguration} does not exist`,
    });
    return [];
  }
  const nsLabels = { 'kubernetes.io/metadata.name': f.namespace, ...f.namespaceLabels };
  const called: WebhookFacts[] = [];
  for (const w of f.webhooks) {
    const ns = matchesSelector(w.namespaceSelector, nsLabels);
    const obj = matchesSelector(w.objectSelector, labels);
    const ok = ns && obj && w.coversPodCreate;
    if (ok) called.push(w);
    const why = [
      `namespaceSelector ${selectorText(w.namespaceSelector)} ${ns ? 'matches' : 'does not match'}`,
      `objectSelector ${selectorText(w.objectSelector)} ${obj ? 'matches' : 'does not match'}`,
      ...(w.coversPodCreate ? [] : ['its rules do not cover pod CREATE']),
    ];
    checks.push({
      check: `webhook ${w.name}`,
      ok,
      detail: `${ok ? 'called' : 'not called'} for this pod: ${why.join('; ')} (path ${w.path ?? '<url>'}, failurePolicy ${w.failurePolicy ?? 'Fail'})`,
    });
  }
  return called;
}

function verdictOf(
  f: InjectFacts,
  injected: boolean,
  called: WebhookFacts[],
  decision: ReturnType<typeof buildInjection>,
): string {
  if (injected) return 'injected: the pod has the sidecar';
  if (f.webhooks === undefined)
    return `not injected: the webhook configuration ${f.webhookConfiguration} is missing (is Maxine installed with its webhook?)`;
  if (called.length === 0)
    return 'not injected: the API server does not call the webhook for this pod (no webhook selects its namespace and labels)';
  if (!decision.inject) return `not injected: ${decision.reason}`;
  return 'not injected, yet the webhook would inject it now: the pod predates the opt-in or the MaxineService, the webhook failed (failurePolicy Ignore), or the operator was down; recreate the pod';
}

/** The report as kubectl describe-like text. */
export function describeReport(r: InjectReport): string {
  const width = Math.max(...r.checks.map((c) => c.check.length)) + 2;
  const lines = [
    `Pod:      ${r.namespace}/${r.pod}`,
    `Verdict:  ${r.verdict}`,
    'Checks:',
    ...r.checks.map((c) => `  ${c.ok ? 'yes' : 'no '}  ${c.check.padEnd(width)}${c.detail}`),
  ];
  return `${lines.join('\n')}\n`;
}

// ---- gathering the facts (I/O) ----

interface KubeError {
  code?: number;
  body?: unknown;
  message?: string;
}

function kubeFailure(err: unknown, what: string): PluginError {
  const e = err as KubeError;
  const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body ?? '');
  let message = e.message ?? String(err);
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // keep the client's own message
  }
  if (e.code === 403)
    return new PluginError(
      EXIT.forbidden,
      `the API server refused (403) to get ${what}: ${message}`,
    );
  if (e.code === 401)
    return new PluginError(EXIT.forbidden, `the API server does not know you (401): ${message}`);
  if (e.code === 404) return new PluginError(EXIT.notFound, `${what} not found`);
  return new PluginError(EXIT.failed, `cannot get ${what}: ${message}`);
}

async function orMissing<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if ((err as KubeError).code === 404) return undefined;
    throw err;
  }
}

export async function gatherFacts(
  kc: KubeConfig,
  namespace: string,
  podName: string,
  webhookConfiguration = 'maxine-sidecar-injector',
): Promise<InjectFacts> {
  const k8s = await import('@kubernetes/client-node');
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const pod = await core
    .readNamespacedPod({ name: podName, namespace })
    .catch((err: unknown) => Promise.reject(kubeFailure(err, `pod ${namespace}/${podName}`)));
  const ns = await core
    .readNamespace({ name: namespace })
    .catch((err: unknown) => Promise.reject(kubeFailure(err, `namespace ${namespace}`)));
  const config = await orMissing(
    admission.readMutatingWebhookConfiguration({ name: webhookConfiguration }),
  ).catch((err: unknown) =>
    Promise.reject(kubeFailure(err, `mutatingwebhookconfiguration ${webhookConfiguration}`)),
  );
  const list = (await custom
    .listNamespacedCustomObject({
      group: 'maxine.io',
      version: 'v1alpha1',
      namespace,
      plural: 'maxineservices',
    })
    .catch((err: unknown) =>
      Promise.reject(kubeFailure(err, `maxineservices in ${namespace}`)),
    )) as {
    items: { metadata: { name: string }; spec?: { selector?: Record<string, string> } }[];
  };
  return {
    namespace,
    namespaceLabels: ns.metadata?.labels ?? {},
    pod: pod as unknown as InjectFacts['pod'],
    webhookConfiguration,
    webhooks: config?.webhooks?.map((w) => ({
      name: w.name,
      ...(w.clientConfig.service?.path !== undefined && { path: w.clientConfig.service.path }),
      ...(w.clientConfig.url !== undefined && { path: new URL(w.clientConfig.url).pathname }),
      ...(w.namespaceSelector && { namespaceSelector: w.namespaceSelector }),
      ...(w.objectSelector && { objectSelector: w.objectSelector }),
      ...(w.failurePolicy !== undefined && { failurePolicy: w.failurePolicy }),
      coversPodCreate: (w.rules ?? []).some(
        (r) =>
          (r.apiGroups ?? []).some((g) => g === '' || g === '*') &&
          (r.resources ?? []).some((x) => x === 'pods' || x === '*') &&
          (r.operations ?? []).some((o) => o === 'CREATE' || o === '*'),
      ),
    })),
    services: list.items.map((s) => ({ name: s.metadata.name, selector: s.spec?.selector ?? {} })),
  };
}
