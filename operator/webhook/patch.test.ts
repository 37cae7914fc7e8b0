import { describe, expect, it } from '@jest/globals';
import { applyJsonPatch, JsonPatchError } from './json-patch.js';
import { buildInjection, injectionConfigSchema } from '../../common/injection-patch.js';
import type {
  InjectablePod,
  InjectionInput,
  SelectingService,
} from '../../common/injection-patch.js';

const config = injectionConfigSchema.parse({ image: 'example.test/maxine-sidecar:1.2.3' });

const shop: SelectingService = { name: 'shop', selector: { app: 'shop' } };
const cart: SelectingService = { name: 'cart', selector: { app: 'cart' } };
const anyWeb: SelectingService = { name: 'web', selector: { tier: 'web' } };
const empty: SelectingService = { name: 'everything', selector: {} };

interface PodOptions {
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  namespace?: string;
}

/** A pod as the API server sends it on CREATE: no annotations map unless some are set. */
function pod({ annotations, labels = { app: 'shop' }, namespace }: PodOptions = {}): InjectablePod {
  return {
    metadata: {
      generateName: 'shop-7d9f-',
      ...(namespace !== undefined && { namespace }),
      labels,
      ...(annotations !== undefined && { annotations }),
    },
    spec: { containers: [{ name: 'app' }] },
  };
}

function input(overrides: Partial<InjectionInput> = {}): InjectionInput {
  return {
    pod: pod({ annotations: { 'maxine.io/inject': 'true' } }),
    namespace: 'shop',
    namespaceOptIn: false,
    services: [shop, cart],
    config,
    ...overrides,
  };
}

/** Builds, applies and returns the patched pod; fails the test when nothing was injected. */
function injected(given: InjectionInput): { pod: any; service: string; warnings?: string[] } {
  const result = buildInjection(given);
  if (!result.inject) throw new Error(`not injected: ${result.reason}`);
  return {
    pod: applyJsonPatch(given.pod, result.patch),
    service: result.service,
    ...(result.warnings && { warnings: result.warnings }),
  };
}

const sidecarOf = (p: any): any =>
  p.spec.initContainers.find((c: any) => c.name === 'maxine-sidecar');
const envOf = (p: any): Record<string, unknown> =>
  Object.fromEntries(
    sidecarOf(p).env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]),
  );

describe('buildInjection: whether a pod is injected', () => {
  const cases: {
    name: string;
    given: Partial<InjectionInput>;
    inject: boolean;
    reason?: string | RegExp;
    warning?: RegExp;
  }[] = [
    { name: 'opt-in by pod annotation', given: {}, inject: true },
    {
      name: 'opt-in by namespace label',
      given: { pod: pod(), namespaceOptIn: true },
      inject: true,
    },
    {
      name: 'opt-out annotation wins in an opted-in namespace',
      given: { pod: pod({ annotations: { 'maxine.io/inject': 'false' } }), namespaceOptIn: true },
      inject: false,
      reason: 'maxine.io/inject is "false"',
    },
    {
      name: 'not opted in',
      given: { pod: pod() },
      inject: false,
      reason: 'not opted in',
    },
    {
      name: 'an unknown annotation value does not opt in, and says so',
      given: { pod: pod({ annotations: { 'maxine.io/inject': 'yes' } }) },
      inject: false,
      reason: 'not opted in',
      warning: /"yes" is neither "true" nor "false"/,
    },
    {
      name: 'an unknown annotation value does not opt out of an opted-in namespace',
      given: { pod: pod({ annotations: { 'maxine.io/inject': 'False' } }), namespaceOptIn: true },
      inject: true,
      warning: /"False" is neither/,
    },
    ...['kube-system', 'kube-public', 'kube-node-lease'].map((namespace) => ({
      name: `system namespace ${namespace}`,
      given: { namespace },
      inject: false,
      reason: `namespace ${namespace} is never injected`,
      warning: /maxine.io\/inject is ignored/,
    })),
    {
      name: 'a namespace of config.skipNamespaces',
      given: {
        namespace: 'legacy',
        config: injectionConfigSchema.parse({ skipNamespaces: ['legacy'] }),
      },
      inject: false,
      reason: 'namespace legacy is never injected',
      warning: /maxine.io\/inject is ignored: namespace legacy/,
    },
    {
      name: "the operator's namespace",
      given: { namespace: 'maxine-system', namespaceOptIn: true, pod: pod() },
      inject: false,
      reason: "the operator's own pods are never injected",
    },
    {
      name: "the operator's pod by its label, anywhere",
      given: {
        pod: pod({
          annotations: { 'maxine.io/inject': 'true' },
          labels: { 'app.kubernetes.io/name': 'maxine-operator' },
        }),
      },
      inject: false,
      reason: "the operator's own pods are never injected",
      warning: /is ignored: the operator's own pods/,
    },
    {
      name: 'already injected: status annotation',
      given: {
        pod: pod({ annotations: { 'maxine.io/inject': 'true', 'maxine.io/status': 'injected' } }),
      },
      inject: false,
      reason: 'already injected',
    },
    {
      name: 'already injected: a maxine-sidecar init container',
      given: {
        pod: {
          ...pod({ annotations: { 'maxine.io/inject': 'true' } }),
          spec: { initContainers: [{ name: 'maxine-sidecar' }], containers: [{ name: 'app' }] },
        },
      },
      inject: false,
      reason: 'already injected',
    },
    {
      name: 'already injected: a maxine-sidecar container',
      given: {
        pod: {
          metadata: {},
          spec: { containers: [{ name: 'app' }, { name: 'maxine-sidecar' }] },
        },
        namespaceOptIn: true,
      },
      inject: false,
      reason: 'already injected',
    },
    {
      name: 'service by selector',
      given: { services: [shop, cart, empty] },
      inject: true,
    },
    {
      name: 'no MaxineService selects the pod (an empty selector selects none)',
      given: { services: [cart, empty] },
      inject: false,
      warning: /^not injected: no MaxineService selects this pod; set maxine.io\/service$/,
    },
    {
      name: 'two MaxineServices select the pod',
      given: {
        services: [shop, anyWeb, cart],
        pod: pod({
          annotations: { 'maxine.io/inject': 'true' },
          labels: { app: 'shop', tier: 'web' },
        }),
      },
      inject: false,
      warning: /^not injected: services shop, web select this pod; set maxine.io\/service$/,
    },
    {
      name: 'ambiguity is resolved by the service annotation',
      given: {
        services: [shop, anyWeb],
        pod: pod({
          annotations: { 'maxine.io/inject': 'true', 'maxine.io/service': 'web' },
          labels: { app: 'shop', tier: 'web' },
        }),
      },
      inject: true,
    },
    {
      name: 'an invalid service annotation',
      given: {
        pod: pod({
          annotations: { 'maxine.io/inject': 'true', 'maxine.io/service': 'Not_A_Name' },
        }),
      },
      inject: false,
      warning: /maxine.io\/service: "Not_A_Name" is not a valid service name/,
    },
    {
      name: 'a health-check annotation that is not JSON',
      given: {
        pod: pod({
          annotations: { 'maxine.io/inject': 'true', 'maxine.io/health-check': '{http: /x}' },
        }),
      },
      inject: false,
      warning: /^not injected: maxine.io\/health-check: not valid JSON/,
    },
    {
      name: 'a health-check annotation the schema rejects (field and problem named)',
      given: {
        pod: pod({
          annotations: {
            'maxine.io/inject': 'true',
            'maxine.io/health-check': '{"http":{"path":"healthz"}}',
          },
        }),
      },
      inject: false,
      warning: /maxine.io\/health-check: http.path: must start with "\/"/,
    },
    {
      name: 'a health check with two kinds',
      given: {
        pod: pod({
          annotations: {
            'maxine.io/inject': 'true',
            'maxine.io/health-check': '{"tcp":{},"http":{"path":"/"}}',
          },
        }),
      },
      inject: false,
      warning: /exactly one of exec, http or tcp must be set \(found 2\)/,
    },
    {
      name: 'an invalid health-scripts ConfigMap name',
      given: {
        pod: pod({
          annotations: {
            'maxine.io/inject': 'true',
            'maxine.io/health-scripts-configmap': 'Bad Name',
          },
        }),
      },
      inject: false,
      warning: /"Bad Name" is not a valid ConfigMap name/,
    },
    {
      name: 'a pod that already uses one of the volume names',
      given: {
        pod: {
          ...pod({ annotations: { 'maxine.io/inject': 'true' } }),
          spec: { containers: [{ name: 'app' }], volumes: [{ name: 'maxine-token' }] },
        },
      },
      inject: false,
      warning: /already has volume\(s\) named maxine-token/,
    },
  ];

  it.each(cases)('$name', ({ given, inject, reason, warning }) => {
    const result = buildInjection(input(given));
    expect(result.inject).toBe(inject);
    if (!result.inject && reason !== undefined) expect(result.reason).toEqual(reason);
    if (warning !== undefined)
      expect(result.warnings).toContainEqual(expect.stringMatching(warning));
    else expect(result.warnings).toBeUndefined();
  });
});

describe('buildInjection: the patched pod', () => {
  it('adds the native sidecar with its full contract to a bare pod', () => {
    const { pod: patched, service } = injected(input());
    expect(service).toBe('shop');
    expect(patched.metadata.annotations).toEqual({
      'maxine.io/inject': 'true',
      'maxine.io/status': 'injected',
    });
    expect(patched.spec.containers).toEqual([{ name: 'app' }]);
    expect(patched.spec.initContainers).toEqual([
      {
        name: 'maxine-sidecar',
        image: 'example.test/maxine-sidecar:1.2.3',
        imagePullPolicy: 'IfNotPresent',
        restartPolicy: 'Always',
        ports: [{ name: 'maxine', containerPort: 7711, protocol: 'TCP' }],
        env: [
          { name: 'MAXINE_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          {
            name: 'MAXINE_POD_NAMESPACE',
            valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
          },
          { name: 'MAXINE_POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
          { name: 'MAXINE_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'MAXINE_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          {
            name: 'MAXINE_SERVICE_ACCOUNT',
            valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } },
          },
          { name: 'MAXINE_SERVICE', value: 'shop' },
          { name: 'MAXINE_OPERATOR_URL', value: 'http://maxine-operator.maxine-system.svc:7710' },
          { name: 'MAXINE_TOKEN_FILE', value: '/var/run/secrets/maxine.io/token' },
          { name: 'MAXINE_PODINFO_DIR', value: '/etc/maxine/podinfo' },
          { name: 'MAXINE_LISTEN_HOST', value: '0.0.0.0' },
        ],
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
        startupProbe: {
          httpGet: { path: '/healthz', port: 7711 },
          timeoutSeconds: 1,
          periodSeconds: 1,
          failureThreshold: 30,
        },
        readinessProbe: {
          httpGet: { path: '/healthz', port: 7711 },
          timeoutSeconds: 1,
          periodSeconds: 5,
          failureThreshold: 3,
        },
        livenessProbe: {
          httpGet: { path: '/healthz', port: 7711 },
          timeoutSeconds: 1,
          periodSeconds: 10,
          failureThreshold: 3,
        },
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 65532,
          runAsGroup: 65532,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        },
        volumeMounts: [
          { name: 'maxine-token', mountPath: '/var/run/secrets/maxine.io', readOnly: true },
          { name: 'maxine-podinfo', mountPath: '/etc/maxine/podinfo', readOnly: true },
        ],
      },
    ]);
    expect(patched.spec.volumes).toEqual([
      {
        name: 'maxine-token',
        projected: {
          sources: [
            {
              serviceAccountToken: {
                audience: 'maxine.io',
                expirationSeconds: 3600,
                path: 'token',
              },
            },
          ],
        },
      },
      {
        name: 'maxine-podinfo',
        downwardAPI: {
          items: [
            { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
            { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
          ],
        },
      },
    ]);
  });

  it('creates metadata.annotations when the pod has none (namespace opt-in)', () => {
    const { pod: patched } = injected(input({ pod: pod(), namespaceOptIn: true }));
    expect(patched.metadata.annotations).toEqual({ 'maxine.io/status': 'injected' });
  });

  it('appends to existing init containers, volumes and annotations and keeps them', () => {
    const given: InjectablePod = {
      metadata: {
        name: 'shop-0',
        labels: { app: 'shop' },
        annotations: { 'maxine.io/inject': 'true', 'example.com/owner': 'team-a' },
      },
      spec: {
        initContainers: [{ name: 'migrate' }],
        containers: [{ name: 'app' }],
        volumes: [{ name: 'data' }],
      },
    };
    const { pod: patched } = injected(input({ pod: given }));
    expect(patched.spec.initContainers.map((c: any) => c.name)).toEqual([
      'migrate',
      'maxine-sidecar',
    ]);
    expect(patched.spec.volumes.map((v: any) => v.name)).toEqual([
      'data',
      'maxine-token',
      'maxine-podinfo',
    ]);
    expect(patched.metadata.annotations).toEqual({
      'maxine.io/inject': 'true',
      'example.com/owner': 'team-a',
      'maxine.io/status': 'injected',
    });
    expect(given.spec?.initContainers).toEqual([{ name: 'migrate' }]);
  });

  it('adds the maxine.io/healthy readiness gate, keeping the gates the pod has', () => {
    const cases: { gates?: { conditionType: string }[]; want: string[] }[] = [
      { want: ['maxine.io/healthy'] },
      { gates: [], want: ['maxine.io/healthy'] },
      {
        gates: [{ conditionType: 'example.com/lb' }],
        want: ['example.com/lb', 'maxine.io/healthy'],
      },
      // Idempotent: a pod that already carries the gate gets no second one.
      {
        gates: [{ conditionType: 'maxine.io/healthy' }, { conditionType: 'example.com/lb' }],
        want: ['maxine.io/healthy', 'example.com/lb'],
      },
    ];
    for (const { gates, want } of cases) {
      const given: InjectablePod = {
        metadata: { labels: { app: 'shop' }, annotations: { 'maxine.io/inject': 'true' } },
        spec: { containers: [{ name: 'app' }], ...(gates && { readinessGates: gates }) },
      };
      const { pod: patched } = injected(input({ pod: given }));
      expect(patched.spec.readinessGates.map((g: any) => g.conditionType)).toEqual(want);
    }
  });

  it('appends to empty arrays as well', () => {
    const given: InjectablePod = {
      metadata: { labels: { app: 'shop' }, annotations: { 'maxine.io/inject': 'true' } },
      spec: { initContainers: [], containers: [{ name: 'app' }], volumes: [] },
    };
    const { pod: patched } = injected(input({ pod: given }));
    expect(patched.spec.initContainers.map((c: any) => c.name)).toEqual(['maxine-sidecar']);
    expect(patched.spec.volumes).toHaveLength(2);
  });

  it('uses the service annotation even when no MaxineService declares it (with a warning)', () => {
    const {
      service,
      pod: patched,
      warnings,
    } = injected(
      input({
        pod: pod({ annotations: { 'maxine.io/inject': 'true', 'maxine.io/service': 'billing' } }),
      }),
    );
    expect(service).toBe('billing');
    expect(envOf(patched).MAXINE_SERVICE).toBe('billing');
    expect(warnings).toEqual([expect.stringContaining('no MaxineService "billing"')]);
  });

  it('passes a valid health-check override as MAXINE_HEALTH_CHECK, verbatim', () => {
    const check = '{"exec":{"command":["/etc/maxine/health/check.sh"]},"intervalSeconds":5}';
    const { pod: patched, warnings } = injected(
      input({
        pod: pod({ annotations: { 'maxine.io/inject': 'true', 'maxine.io/health-check': check } }),
      }),
    );
    expect(envOf(patched).MAXINE_HEALTH_CHECK).toBe(check);
    expect(warnings).toBeUndefined();
  });

  it('passes the discovery scope annotation on, and refuses an unknown scope', () => {
    const scoped = (scope: string) =>
      input({
        pod: pod({
          annotations: { 'maxine.io/inject': 'true', 'maxine.io/discovery-scope': scope },
        }),
      });
    expect(envOf(injected(scoped('namespace')).pod).MAXINE_DISCOVERY_SCOPE).toBe('namespace');
    expect(envOf(injected(input()).pod).MAXINE_DISCOVERY_SCOPE).toBeUndefined();
    const refused = buildInjection(scoped('galaxy'));
    expect(refused.inject).toBe(false);
    expect(refused.warnings?.join(' ')).toContain('maxine.io/discovery-scope: "galaxy"');
  });

  it.each(['pod', 'namespace', 'cluster'])('passes the discovery scope %s on', (scope) => {
    const pod_ = pod({
      annotations: { 'maxine.io/inject': 'true', 'maxine.io/discovery-scope': scope },
    });
    expect(envOf(injected(input({ pod: pod_ })).pod).MAXINE_DISCOVERY_SCOPE).toBe(scope);
  });

  it('refuses an unknown scope naming the ones it takes', () => {
    const pod_ = pod({
      annotations: { 'maxine.io/inject': 'true', 'maxine.io/discovery-scope': 'all' },
    });
    const refused = buildInjection(input({ pod: pod_ }));
    expect(refused.inject).toBe(false);
    expect(refused.warnings?.join(' ')).toContain('is not one of "pod", "namespace", "cluster"');
  });

  it("tells the sidecar the app's first declared port, for its checks and registration", () => {
    const withPorts = pod({ annotations: { 'maxine.io/inject': 'true' } });
    withPorts.spec = {
      containers: [
        { name: 'init-free', ports: [] },
        { name: 'app', ports: [{ containerPort: 8080 }, { containerPort: 9090 }] },
      ],
    };
    expect(envOf(injected(input({ pod: withPorts })).pod).MAXINE_APP_PORT).toBe('8080');
    expect(envOf(injected(input()).pod).MAXINE_APP_PORT).toBeUndefined();
  });

  it('mounts the health-scripts ConfigMap read-only and executable', () => {
    const { pod: patched } = injected(
      input({
        pod: pod({
          annotations: {
            'maxine.io/inject': 'true',
            'maxine.io/health-scripts-configmap': 'shop-health',
          },
        }),
      }),
    );
    expect(patched.spec.volumes).toContainEqual({
      name: 'maxine-health-scripts',
      configMap: { name: 'shop-health', defaultMode: 0o555 },
    });
    expect(sidecarOf(patched).volumeMounts).toContainEqual({
      name: 'maxine-health-scripts',
      mountPath: '/etc/maxine/health',
      readOnly: true,
    });
    expect(envOf(patched).MAXINE_HEALTH_SCRIPTS_DIR).toBe('/etc/maxine/health');
  });

  it('shares the config volume: the sidecar writes it, each app container reads it', () => {
    const withMounts = pod({
      annotations: {
        'maxine.io/inject': 'true',
        'maxine.io/config-mount': '/etc/app/config',
        'maxine.io/config-reload': 'http:POST:/-/reload',
      },
    });
    withMounts.spec = {
      containers: [
        { name: 'app', volumeMounts: [{ name: 'data', mountPath: '/data' }] },
        { name: 'helper' },
      ],
    };
    const { pod: patched } = injected(input({ pod: withMounts }));
    expect(patched.spec.volumes).toContainEqual({ name: 'maxine-config', emptyDir: {} });
    expect(sidecarOf(patched).volumeMounts).toContainEqual({
      name: 'maxine-config',
      mountPath: '/etc/maxine/config',
    });
    const readOnly = { name: 'maxine-config', mountPath: '/etc/app/config', readOnly: true };
    expect(patched.spec.containers).toEqual([
      { name: 'app', volumeMounts: [{ name: 'data', mountPath: '/data' }, readOnly] },
      { name: 'helper', volumeMounts: [readOnly] },
    ]);
    expect(envOf(patched)).toMatchObject({
      MAXINE_CONFIG_DIR: '/etc/maxine/config',
      MAXINE_CONFIG_RELOAD: 'http:POST:/-/reload',
    });
    // An HTTP reload needs no shared process namespace.
    expect(patched.spec.shareProcessNamespace).toBeUndefined();
  });

  it.each([
    [{ 'maxine.io/config-reload': 'signal:HUP:nginx' }, undefined, true],
    [{ 'maxine.io/config-reload': 'signal:HUP:nginx' }, true, true],
    [{ 'maxine.io/config-mount': '/etc/app' }, undefined, undefined],
  ])('annotations %j with shareProcessNamespace %s → %s', (annotations, share, expected) => {
    const p = pod({ annotations: { 'maxine.io/inject': 'true', ...annotations } });
    p.spec = {
      containers: [{ name: 'app' }],
      ...(share !== undefined && { shareProcessNamespace: share }),
    };
    const { pod: patched } = injected(input({ pod: p }));
    expect(patched.spec.shareProcessNamespace).toBe(expected);
  });

  it.each([
    [
      { 'maxine.io/config-mount': 'etc/app' },
      'maxine.io/config-mount: "etc/app" is not an absolute path',
    ],
    [
      { 'maxine.io/config-mount': '/etc/../x' },
      'maxine.io/config-mount: "/etc/../x" is not an absolute path',
    ],
    [
      { 'maxine.io/config-mount': '/data' },
      'maxine.io/config-mount: container app already mounts /data',
    ],
    [
      { 'maxine.io/config-reload': 'exec:reboot' },
      'maxine.io/config-reload: the reload action is signal:<SIG>:<process name> or http:<METHOD>:<path>',
    ],
    [
      { 'maxine.io/config-reload': 'signal:HUP:app', share: 'false' },
      'maxine.io/config-reload: a signal reaches the app only with shareProcessNamespace, which the pod sets false',
    ],
  ])('refuses %j', (given, message) => {
    const { share, ...annotations } = given as Record<string, string>;
    const p = pod({ annotations: { 'maxine.io/inject': 'true', ...annotations } });
    p.spec = {
      containers: [{ name: 'app', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
      ...(share === 'false' && { shareProcessNamespace: false }),
    };
    const result = buildInjection(input({ pod: p }));
    expect(result.inject).toBe(false);
    expect(result.inject === false && result.reason).toContain(message);
  });

  it('takes image, operator URL, audience and resources from the config', () => {
    const custom = injectionConfigSchema.parse({
      image: 'registry.example/sidecar:2',
      operatorUrl: 'https://maxine.example:8443',
      tokenAudience: 'maxine-prod',
      resources: { requests: { cpu: '50m' }, limits: { memory: '256Mi' } },
    });
    const { pod: patched } = injected(input({ config: custom }));
    const sidecar = sidecarOf(patched);
    expect(sidecar.image).toBe('registry.example/sidecar:2');
    expect(envOf(patched).MAXINE_OPERATOR_URL).toBe('https://maxine.example:8443');
    expect(sidecar.resources).toEqual({
      requests: { cpu: '50m', memory: '32Mi' },
      limits: { memory: '256Mi' },
    });
    expect(patched.spec.volumes[0].projected.sources[0].serviceAccountToken.audience).toBe(
      'maxine-prod',
    );
  });

  it.each([
    ['a bare pod', input()],
    ['a namespace opt-in', input({ pod: pod(), namespaceOptIn: true })],
    [
      'a pod with everything',
      input({
        pod: {
          metadata: {
            labels: { app: 'shop' },
            annotations: {
              'maxine.io/inject': 'true',
              'maxine.io/health-check': '{"tcp":{"port":8080}}',
              'maxine.io/health-scripts-configmap': 'scripts',
            },
          },
          spec: { initContainers: [{ name: 'a' }], containers: [{ name: 'b' }], volumes: [] },
        },
      }),
    ],
  ])('re-invocation on the patched pod (%s) adds nothing', (_name, given) => {
    const { pod: patched } = injected(given);
    const again = buildInjection({ ...given, pod: patched });
    expect(again).toEqual({ inject: false, reason: 'already injected' });
    // Even without the status annotation, the sidecar itself marks the pod as injected.
    delete patched.metadata.annotations['maxine.io/status'];
    expect(buildInjection({ ...given, pod: patched })).toMatchObject({
      inject: false,
      reason: 'already injected',
    });
  });

  it('escapes "/" in the annotation key as ~1', () => {
    const result = buildInjection(input());
    expect(result.inject && result.patch.map((op) => op.path)).toContain(
      '/metadata/annotations/maxine.io~1status',
    );
  });
});

describe('injectionConfigSchema', () => {
  it('has working defaults', () => {
    expect(injectionConfigSchema.parse({})).toEqual({
      image: 'ghcr.io/maxine-registry/sidecar:0.1.0',
      operatorUrl: 'http://maxine-operator.maxine-system.svc:7710',
      tokenAudience: 'maxine.io',
      tokenExpirationSeconds: 3600,
      resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
      operatorNamespace: 'maxine-system',
      skipNamespaces: [],
    });
  });

  it.each([
    [{ operatorUrl: 'not a url' }, 'operatorUrl'],
    [{ resources: { requests: { cpu: 'ten' } } }, 'resources.requests.cpu'],
    [{ tokenExpirationSeconds: 60 }, 'tokenExpirationSeconds'],
  ])('rejects %j', (value, path) => {
    const result = injectionConfigSchema.safeParse(value);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});

describe('applyJsonPatch (the test oracle)', () => {
  it.each([
    [{ a: [1] }, [{ op: 'add', path: '/a/-', value: 2 }], { a: [1, 2] }],
    [{ a: [1, 3] }, [{ op: 'add', path: '/a/1', value: 2 }], { a: [1, 2, 3] }],
    [{ 'x/y': 1 }, [{ op: 'replace', path: '/x~1y', value: 2 }], { 'x/y': 2 }],
    [{ 'x~y': 1 }, [{ op: 'remove', path: '/x~0y' }], {}],
    [{ a: { b: 1 } }, [{ op: 'test', path: '/a', value: { b: 1 } }], { a: { b: 1 } }],
  ] as const)('%j + %j = %j', (doc, ops, expected) => {
    expect(applyJsonPatch(doc, ops as any)).toEqual(expected);
  });

  it.each([
    [{}, [{ op: 'add', path: '/a/-', value: 1 }]],
    [{ a: [] }, [{ op: 'add', path: '/a/1', value: 1 }]],
    [{}, [{ op: 'remove', path: '/a' }]],
    [{ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]],
    [{}, [{ op: 'add', path: 'a', value: 1 }]],
  ] as const)('refuses %j + %j', (doc, ops) => {
    expect(() => applyJsonPatch(doc, ops as any)).toThrow(JsonPatchError);
  });
});
