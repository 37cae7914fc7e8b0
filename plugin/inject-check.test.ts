import { describe, expect, it } from '@jest/globals';
import { describeReport, injectCheck } from './inject-check.js';
import type { InjectFacts, WebhookFacts } from './inject-check.js';
import { matchesSelector, selectorText } from './label-selector.js';

/** The two webhooks of manifests/webhook.yaml. */
const WEBHOOKS: WebhookFacts[] = [
  {
    name: 'namespace.inject.maxine.io',
    path: '/inject/namespace',
    namespaceSelector: {
      matchExpressions: [
        { key: 'maxine.io/injection', operator: 'In', values: ['enabled'] },
        {
          key: 'kubernetes.io/metadata.name',
          operator: 'NotIn',
          values: ['kube-system', 'maxine-system'],
        },
      ],
    },
    failurePolicy: 'Ignore',
    coversPodCreate: true,
  },
  {
    name: 'pod.inject.maxine.io',
    path: '/inject',
    namespaceSelector: {
      matchExpressions: [
        { key: 'maxine.io/injection', operator: 'NotIn', values: ['enabled', 'disabled'] },
      ],
    },
    objectSelector: {},
    failurePolicy: 'Ignore',
    coversPodCreate: true,
  },
];

function facts(
  over: Partial<InjectFacts> & { annotations?: Record<string, string>; sidecar?: boolean },
): InjectFacts {
  const { annotations, sidecar, ...rest } = over;
  return {
    namespace: 'shop',
    namespaceLabels: { 'maxine.io/injection': 'enabled' },
    webhookConfiguration: 'maxine-sidecar-injector',
    webhooks: WEBHOOKS,
    services: [{ name: 'web', selector: { app: 'web' } }],
    pod: {
      metadata: { name: 'web-1', labels: { app: 'web' }, ...(annotations && { annotations }) },
      spec: {
        containers: [{ name: 'app' }],
        ...(sidecar === true && { initContainers: [{ name: 'maxine-sidecar' }] }),
      },
    },
    ...rest,
  };
}

const checkOf = (f: InjectFacts, name: string) =>
  injectCheck(f).checks.find((c) => c.check === name);

describe('injectCheck', () => {
  it.each([
    [
      'an injected pod',
      facts({ sidecar: true, annotations: { 'maxine.io/status': 'injected' } }),
      true,
      /^injected: the pod has the sidecar$/,
    ],
    [
      'a pod in an opted-in namespace, created before the opt-in',
      facts({}),
      false,
      /the webhook would inject it now: the pod predates/,
    ],
    [
      'a pod in a namespace without the label or annotation',
      facts({ namespaceLabels: {} }),
      false,
      /^not injected: not opted in$/,
    ],
    [
      'a pod annotated maxine.io/inject: "false"',
      facts({ annotations: { 'maxine.io/inject': 'false' } }),
      false,
      /^not injected: maxine.io\/inject is "false"$/,
    ],
    [
      'a namespace labelled disabled: no webhook is called',
      facts({ namespaceLabels: { 'maxine.io/injection': 'disabled' } }),
      false,
      /the API server does not call the webhook for this pod/,
    ],
    [
      'no webhook configuration',
      facts({ webhooks: undefined }),
      false,
      /the webhook configuration maxine-sidecar-injector is missing/,
    ],
    [
      'no MaxineService selects the pod',
      facts({ services: [] }),
      false,
      /^not injected: .*no MaxineService selects this pod/,
    ],
  ])('%s', (_what, f, injected, verdict) => {
    const report = injectCheck(f);
    expect(report.injected).toBe(injected);
    expect(report.verdict).toMatch(verdict);
  });

  it('says which webhook the API server calls and why the other is not', () => {
    const f = facts({});
    expect(checkOf(f, 'webhook namespace.inject.maxine.io')).toMatchObject({
      ok: true,
      detail: expect.stringMatching(
        /^called for this pod: namespaceSelector maxine.io\/injection in \(enabled\),kubernetes.io\/metadata.name notin \(kube-system,maxine-system\) matches/,
      ) as unknown as string,
    });
    expect(checkOf(f, 'webhook pod.inject.maxine.io')).toMatchObject({
      ok: false,
      detail: expect.stringContaining(
        'not called for this pod: namespaceSelector maxine.io/injection notin (enabled,disabled) does not match',
      ) as unknown as string,
    });
    expect(checkOf(f, 'namespace label')).toEqual({
      check: 'namespace label',
      ok: true,
      detail: 'namespace shop maxine.io/injection=enabled',
    });
  });

  it('a pod annotated in a namespace without the label goes through the pod webhook', () => {
    const f = facts({ namespaceLabels: {}, annotations: { 'maxine.io/inject': 'true' } });
    expect(checkOf(f, 'webhook pod.inject.maxine.io')?.ok).toBe(true);
    expect(checkOf(f, 'pod annotation')?.ok).toBe(true);
    expect(checkOf(f, 'webhook decision')?.detail).toBe(
      'asked about this pod now, the webhook injects it for service web',
    );
  });

  it('prints a describe-like report', () => {
    const text = describeReport(injectCheck(facts({ namespaceLabels: {} })));
    expect(text.split('\n').slice(0, 4)).toEqual([
      'Pod:      shop/web-1',
      'Verdict:  not injected: not opted in',
      'Checks:',
      '  no   sidecar container                   no maxine-sidecar container in the pod',
    ]);
  });
});

describe('matchesSelector', () => {
  const labels = { app: 'web', tier: 'front' };
  it.each([
    [undefined, true],
    [{}, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'db' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'Gt', values: ['1'] }] }, false],
  ])('%j → %s', (selector, matches) => {
    expect(matchesSelector(selector, labels)).toBe(matches);
  });

  it('prints selectors as kubectl does', () => {
    expect(selectorText(undefined)).toBe('<everything>');
    expect(
      selectorText({
        matchLabels: { a: 'b' },
        matchExpressions: [
          { key: 'c', operator: 'In', values: ['d', 'e'] },
          { key: 'f', operator: 'DoesNotExist' },
          { key: 'g', operator: 'Exists' },
        ],
      }),
    ).toBe('a=b,c in (d,e),!f,g');
  });
});
