/**
 * Sidecar injection (pure): decides whether a pod gets the Maxine sidecar and builds the JSON
 * patch that adds it. No I/O: the webhook server hands in the pod, whether its namespace opted
 * in, and the MaxineServices of that namespace; the answer is either a reason not to inject
 * (with warnings a person should see in `kubectl`) or the patch.
 *
 * The patch only ever uses `add`, and each `add` targets a parent that exists in the pod it was
 * built for (a missing array or map is added whole), so it always applies. Re-invocation
 * (`reinvocationPolicy: IfNeeded`) sees the sidecar or the status annotation and adds nothing.
 */
import type {
  V1Container,
  V1EnvVar,
  V1Probe,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { formatPath } from './errors.js';
import { dnsLabel, dnsSubdomain } from './names.js';
import { parseReloadAction } from './config-reload.js';
import { healthCheckSchema } from './resources.js';
import { selects } from './selector.js';
import {
  ANNOTATION_INJECT,
  ANNOTATION_SERVICE,
  ANNOTATION_HEALTH_CHECK,
  ANNOTATION_HEALTH_SCRIPTS,
  ANNOTATION_STATUS,
  ANNOTATION_DISCOVERY_SCOPE,
  ANNOTATION_CONFIG_MOUNT,
  ANNOTATION_CONFIG_RELOAD,
  CONFIG_DIR,
  CONFIG_VOLUME,
  DISCOVERY_SCOPES,
  type DiscoveryScopeKind,
  STATUS_INJECTED,
  SIDECAR_NAME,
  SIDECAR_PORT,
  SIDECAR_PORT_NAME,
  SIDECAR_UID,
  TOKEN_VOLUME,
  TOKEN_DIR,
  TOKEN_FILE,
  PODINFO_VOLUME,
  PODINFO_DIR,
  HEALTH_SCRIPTS_VOLUME,
  HEALTH_SCRIPTS_DIR,
  HEALTH_CONDITION,
} from './injection.js';
import type { SidecarEnvName } from './injection.js';

const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];
const OPERATOR_LABEL = ['app.kubernetes.io/name', 'maxine-operator'] as const;

/** A Kubernetes resource quantity such as `10m`, `32Mi` or `0.5`. */
const quantity = z
  .string()
  .regex(
    /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$/,
    'must be a Kubernetes quantity such as "10m" or "32Mi"',
  );

export const injectionConfigSchema = z.object({
  /** The sidecar image. */
  image: z.string().min(1).default('ghcr.io/maxine-registry/sidecar:0.1.0'),
  /** Where the sidecar reaches the operator's API. */
  operatorUrl: z.url().default('http://maxine-operator.maxine-system.svc:7710'),
  /** Audience of the projected ServiceAccount token (the operator's TokenReview checks it). */
  tokenAudience: z.string().min(1).max(253).default('maxine.io'),
  /** Lifetime the kubelet requests for the projected token; it rotates it at 80 %. */
  tokenExpirationSeconds: z.int().min(600).max(86_400).default(3600),
  resources: z
    .object({
      requests: z
        .object({ cpu: quantity.default('10m'), memory: quantity.default('32Mi') })
        .prefault({}),
      limits: z.object({ memory: quantity.default('128Mi') }).prefault({}),
    })
    .prefault({}),
  /** The operator's own namespace: its pods are never injected. */
  operatorNamespace: z.string().min(1).default('maxine-system'),
  /** Namespaces never injected, on top of kube-system, kube-public and kube-node-lease. */
  skipNamespaces: z.array(z.string().min(1)).default([]),
});
export type InjectionConfig = z.infer<typeof injectionConfigSchema>;
export type InjectionConfigInput = z.input<typeof injectionConfigSchema>;

// ---- Input and output shapes ----

/** The pod fields the builder reads (structurally compatible with client-node's V1Pod). */
export interface InjectablePod {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: {
    initContainers?: { name: string }[];
    containers?: {
      name: string;
      ports?: { containerPort: number }[];
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: { name: string }[];
    readinessGates?: { conditionType: string }[];
    shareProcessNamespace?: boolean;
  };
}

/** A MaxineService as the builder needs it: its name and pod selector. */
export interface SelectingService {
  name: string;
  selector: Record<string, string>;
}

export type JsonPatchOperation =
  { op: 'add' | 'replace' | 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

export interface InjectionInput {
  pod: InjectablePod;
  /** The namespace of the admission request (a pod created by a controller may not carry one). */
  namespace: string;
  /** The namespace carries `maxine.io/injection: enabled`. */
  namespaceOptIn: boolean;
  /** The MaxineServices of the pod's namespace. */
  services: readonly SelectingService[];
  config: InjectionConfig;
}

export type InjectionResult =
  | { inject: false; reason: string; warnings?: string[] }
  | { inject: true; service: string; patch: JsonPatchOperation[]; warnings?: string[] };

// ---- The decision ----

export function buildInjection(input: InjectionInput): InjectionResult {
  const { pod } = input;
  const eligible = eligibilityOf(input);
  if (!eligible.inject || pod.spec === undefined) {
    return skip(eligible.inject ? 'the pod has no spec' : eligible.reason, eligible.warnings);
  }
  const warnings = eligible.warnings;
  const sidecar = sidecarInputOf(input);
  if ('problem' in sidecar) return refuse(sidecar.problem, warnings);
  warnings.push(...sidecar.warnings);
  const volumes = sidecarVolumes(sidecar);
  const clash = volumeClash(pod, volumes);
  if (clash !== undefined) return refuse(clash, warnings);

  return {
    inject: true,
    service: sidecar.service,
    patch: [
      ...appendAll('/spec/initContainers', pod.spec.initContainers, [sidecarContainer(sidecar)]),
      ...appendAll('/spec/volumes', pod.spec.volumes, volumes),
      ...healthGate(pod.spec.readinessGates),
      ...appConfigPatch(pod.spec, sidecar),
      ...statusAnnotation(pod),
    ],
    ...(warnings.length > 0 && { warnings }),
  };
}

type Decision =
  { inject: true; warnings: string[] } | { inject: false; reason: string; warnings: string[] };

/** Whether the pod is to be injected at all: opted in, not excluded, not injected yet. */
function eligibilityOf({ pod, namespace, namespaceOptIn, config }: InjectionInput): Decision {
  const annotated = pod.metadata?.annotations?.[ANNOTATION_INJECT];
  const optIn = optInOf(annotated, namespaceOptIn);
  if (!optIn.inject) return optIn;
  const excluded = exclusionOf(pod, namespace, config);
  if (excluded !== undefined) {
    // Only a person who asked on the pod itself is told why nothing happened.
    const told = annotated === 'true' ? [`${ANNOTATION_INJECT} is ignored: ${excluded}`] : [];
    return { inject: false, reason: excluded, warnings: [...optIn.warnings, ...told] };
  }
  if (isInjected(pod))
    return { inject: false, reason: 'already injected', warnings: optIn.warnings };
  return optIn;
}

/** What the sidecar is told, from the annotations and the namespace's MaxineServices. */
function sidecarInputOf({
  pod,
  services,
  config,
}: InjectionInput): (SidecarInput & { warnings: string[] }) | { problem: string } {
  const annotations = pod.metadata?.annotations ?? {};
  const service = serviceOf(annotations[ANNOTATION_SERVICE], pod, services);
  if ('problem' in service) return service;
  const healthCheck = healthCheckOf(annotations[ANNOTATION_HEALTH_CHECK]);
  if (healthCheck !== undefined && 'problem' in healthCheck) return healthCheck;
  const scripts = annotations[ANNOTATION_HEALTH_SCRIPTS];
  if (scripts !== undefined && !dnsSubdomain.safeParse(scripts).success)
    return { problem: `${ANNOTATION_HEALTH_SCRIPTS}: "${scripts}" is not a valid ConfigMap name` };
  const scope = annotations[ANNOTATION_DISCOVERY_SCOPE];
  if (scope !== undefined && !isDiscoveryScope(scope))
    return {
      problem: `${ANNOTATION_DISCOVERY_SCOPE}: "${scope}" is not one of ${DISCOVERY_SCOPES.map((v) => `"${v}"`).join(', ')}`,
    };
  const configFiles = configFilesOf(annotations, pod);
  if ('problem' in configFiles) return configFiles;
  return {
    service: service.name,
    healthCheck: healthCheck?.json,
    scripts,
    scope,
    ...configFiles,
    appPort: pod.spec?.containers?.flatMap((c) => c.ports ?? [])[0]?.containerPort,
    config,
    warnings: service.warnings,
  };
}

function skip(reason: string, warnings: string[]): InjectionResult {
  return { inject: false, reason, ...(warnings.length > 0 && { warnings }) };
}

/** Not injected because something is wrong with the pod: the person must hear why. */
function refuse(problem: string, warnings: string[]): InjectionResult {
  return { inject: false, reason: problem, warnings: [...warnings, `not injected: ${problem}`] };
}

function optInOf(value: string | undefined, namespaceOptIn: boolean): Decision {
  if (value === 'false')
    return { inject: false, reason: `${ANNOTATION_INJECT} is "false"`, warnings: [] };
  if (value === 'true') return { inject: true, warnings: [] };
  const warnings =
    value === undefined
      ? []
      : [`${ANNOTATION_INJECT}: "${value}" is neither "true" nor "false"; ignored`];
  if (namespaceOptIn) return { inject: true, warnings };
  return { inject: false, reason: 'not opted in', warnings };
}

/** Why a pod is never injected, or undefined when it may be. */
function exclusionOf(
  pod: InjectablePod,
  namespace: string,
  config: InjectionConfig,
): string | undefined {
  if (SYSTEM_NAMESPACES.includes(namespace) || config.skipNamespaces.includes(namespace))
    return `namespace ${namespace} is never injected`;
  if (
    namespace === config.operatorNamespace ||
    pod.metadata?.labels?.[OPERATOR_LABEL[0]] === OPERATOR_LABEL[1]
  )
    return "the operator's own pods are never injected";
  return undefined;
}

export function isInjected(pod: InjectablePod): boolean {
  const named = (c: { name: string }): boolean => c.name === SIDECAR_NAME;
  return (
    pod.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_INJECTED ||
    (pod.spec?.initContainers ?? []).some(named) ||
    (pod.spec?.containers ?? []).some(named)
  );
}

function serviceOf(
  annotated: string | undefined,
  pod: InjectablePod,
  services: readonly SelectingService[],
): { name: string; warnings: string[] } | { problem: string } {
  if (annotated !== undefined) {
    if (!dnsLabel.safeParse(annotated).success)
      return { problem: `${ANNOTATION_SERVICE}: "${annotated}" is not a valid service name` };
    const declared = services.some((s) => s.name === annotated);
    return {
      name: annotated,
      warnings: declared
        ? []
        : [
            `no MaxineService "${annotated}" in this namespace (yet); the sidecar registers it anyway`,
          ],
    };
  }
  const matching = services
    .filter((s) => selects(s.selector, pod.metadata?.labels))
    .map((s) => s.name)
    .sort();
  const [only, ...more] = matching;
  if (only === undefined)
    return { problem: `no MaxineService selects this pod; set ${ANNOTATION_SERVICE}` };
  if (more.length > 0)
    return {
      problem: `services ${matching.join(', ')} select this pod; set ${ANNOTATION_SERVICE}`,
    };
  return { name: only, warnings: [] };
}

function healthCheckOf(
  value: string | undefined,
): { json: string } | { problem: string } | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    return { problem: `${ANNOTATION_HEALTH_CHECK}: not valid JSON (${(err as Error).message})` };
  }
  const result = healthCheckSchema.safeParse(parsed);
  if (result.success) return { json: value };
  const issues = result.error.issues.map((i) => {
    const where = formatPath(i.path);
    return where === '' ? i.message : `${where}: ${i.message}`;
  });
  return { problem: `${ANNOTATION_HEALTH_CHECK}: ${issues.join('; ')}` };
}

// ---- The sidecar ----

export interface SidecarInput {
  service: string;
  /** The health-check override, as the annotation gave it. */
  healthCheck: string | undefined;
  /** Name of the ConfigMap with exec health-check scripts. */
  scripts: string | undefined;
  /** The app's first declared container port, registered outside Kubernetes and probed by checks. */
  appPort?: number;
  /** What the sidecar's local copy holds (the sidecar's default when absent: cluster). */
  scope?: DiscoveryScopeKind;
  /** Where the app containers see the config files (`maxine.io/config-mount`). */
  configMount?: string;
  /** The reload action, as the annotation gave it (`maxine.io/config-reload`), validated. */
  configReload?: string;
  /** The reload action signals a process: the pod must share its process namespace. */
  configSignal?: boolean;
  config: InjectionConfig;
}

type ConfigFiles = Pick<SidecarInput, 'configMount' | 'configReload' | 'configSignal'>;

/** `maxine.io/config-mount` and `maxine.io/config-reload`, checked against the pod. */
function configFilesOf(
  annotations: Record<string, string>,
  pod: InjectablePod,
): ConfigFiles | { problem: string } {
  const mount = annotations[ANNOTATION_CONFIG_MOUNT];
  const reload = annotations[ANNOTATION_CONFIG_RELOAD];
  const problem = mount === undefined ? undefined : mountProblem(mount, pod);
  if (problem !== undefined) return { problem: `${ANNOTATION_CONFIG_MOUNT}: ${problem}` };
  const action = reload === undefined ? undefined : parseReloadAction(reload);
  if (typeof action === 'string') return { problem: `${ANNOTATION_CONFIG_RELOAD}: ${action}` };
  const signal = action?.kind === 'signal';
  if (signal && pod.spec?.shareProcessNamespace === false)
    return {
      problem: `${ANNOTATION_CONFIG_RELOAD}: a signal reaches the app only with shareProcessNamespace, which the pod sets false`,
    };
  return {
    ...(mount !== undefined && { configMount: mount }),
    ...(reload !== undefined && { configReload: reload.trim() }),
    ...(signal && { configSignal: true }),
  };
}

function mountProblem(mount: string, pod: InjectablePod): string | undefined {
  if (!/^\/[A-Za-z0-9_./-]{0,254}$/.test(mount) || mount.split('/').includes('..'))
    return `"${mount}" is not an absolute path`;
  const taken = pod.spec?.containers?.find((c) =>
    c.volumeMounts?.some((m) => m.mountPath === mount),
  );
  return taken === undefined ? undefined : `container ${taken.name} already mounts ${mount}`;
}

/** The config volume mounted read-only into each app container; the shared process namespace. */
function appConfigPatch(
  spec: NonNullable<InjectablePod['spec']>,
  input: SidecarInput,
): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [];
  if (input.configMount !== undefined) {
    const mount = { name: CONFIG_VOLUME, mountPath: input.configMount, readOnly: true };
    (spec.containers ?? []).forEach((c, i) => {
      ops.push(...appendAll(`/spec/containers/${i}/volumeMounts`, c.volumeMounts, [mount]));
    });
  }
  if (input.configSignal === true && spec.shareProcessNamespace !== true)
    ops.push({ op: 'add', path: '/spec/shareProcessNamespace', value: true });
  return ops;
}

// Typed by the contract: a variable the sidecar does not read fails the type check.
const fieldEnv = (name: SidecarEnvName, fieldPath: string): V1EnvVar => ({
  name,
  valueFrom: { fieldRef: { fieldPath } },
});
const valueEnv = (name: SidecarEnvName, value: string): V1EnvVar => ({ name, value });

export function sidecarEnv(input: SidecarInput): V1EnvVar[] {
  return [
    fieldEnv('MAXINE_POD_NAME', 'metadata.name'),
    fieldEnv('MAXINE_POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('MAXINE_POD_UID', 'metadata.uid'),
    fieldEnv('MAXINE_POD_IP', 'status.podIP'),
    fieldEnv('MAXINE_NODE_NAME', 'spec.nodeName'),
    fieldEnv('MAXINE_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    valueEnv('MAXINE_SERVICE', input.service),
    valueEnv('MAXINE_OPERATOR_URL', input.config.operatorUrl),
    valueEnv('MAXINE_TOKEN_FILE', TOKEN_FILE),
    valueEnv('MAXINE_PODINFO_DIR', PODINFO_DIR),
    // kubelet probes /healthz on the pod IP; discovery still answers loopback callers only.
    valueEnv('MAXINE_LISTEN_HOST', '0.0.0.0'),
    ...(input.appPort === undefined ? [] : [valueEnv('MAXINE_APP_PORT', String(input.appPort))]),
    ...(input.scope === undefined ? [] : [valueEnv('MAXINE_DISCOVERY_SCOPE', input.scope)]),
    ...(input.healthCheck === undefined
      ? []
      : [valueEnv('MAXINE_HEALTH_CHECK', input.healthCheck)]),
    ...(input.scripts === undefined
      ? []
      : [valueEnv('MAXINE_HEALTH_SCRIPTS_DIR', HEALTH_SCRIPTS_DIR)]),
    ...(input.configMount === undefined ? [] : [valueEnv('MAXINE_CONFIG_DIR', CONFIG_DIR)]),
    ...(input.configReload === undefined
      ? []
      : [valueEnv('MAXINE_CONFIG_RELOAD', input.configReload)]),
  ];
}

const probe = (extra: Omit<V1Probe, 'httpGet'>): V1Probe => ({
  httpGet: { path: '/healthz', port: SIDECAR_PORT },
  timeoutSeconds: 1,
  ...extra,
});

export function sidecarContainer(input: SidecarInput): V1Container {
  const { config } = input;
  const mounts: V1VolumeMount[] = [
    { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
    { name: PODINFO_VOLUME, mountPath: PODINFO_DIR, readOnly: true },
    ...(input.scripts === undefined
      ? []
      : [{ name: HEALTH_SCRIPTS_VOLUME, mountPath: HEALTH_SCRIPTS_DIR, readOnly: true }]),
    ...(input.configMount === undefined ? [] : [{ name: CONFIG_VOLUME, mountPath: CONFIG_DIR }]),
  ];
  return {
    name: SIDECAR_NAME,
    image: config.image,
    imagePullPolicy: 'IfNotPresent',
    // A native sidecar: started before the app containers, stopped after them.
    restartPolicy: 'Always',
    ports: [{ name: SIDECAR_PORT_NAME, containerPort: SIDECAR_PORT, protocol: 'TCP' }],
    env: sidecarEnv(input),
    resources: {
      requests: { cpu: config.resources.requests.cpu, memory: config.resources.requests.memory },
      limits: { memory: config.resources.limits.memory },
    },
    // The app containers start once the startup probe passes: up to 30 s to come up.
    startupProbe: probe({ periodSeconds: 1, failureThreshold: 30 }),
    readinessProbe: probe({ periodSeconds: 5, failureThreshold: 3 }),
    livenessProbe: probe({ periodSeconds: 10, failureThreshold: 3 }),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: mounts,
  };
}

export function sidecarVolumes(input: SidecarInput): V1Volume[] {
  return [
    {
      name: TOKEN_VOLUME,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: input.config.tokenAudience,
              expirationSeconds: input.config.tokenExpirationSeconds,
              path: 'token',
            },
          },
        ],
      },
    },
    {
      name: PODINFO_VOLUME,
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        ],
      },
    },
    ...(input.scripts === undefined
      ? []
      : [
          {
            name: HEALTH_SCRIPTS_VOLUME,
            configMap: { name: input.scripts, defaultMode: 0o555 },
          },
        ]),
    // Written by the sidecar (files of the service's config), read by the app containers.
    ...(input.configMount === undefined ? [] : [{ name: CONFIG_VOLUME, emptyDir: {} }]),
  ];
}

/** The pod already has a volume of one of our names: adding ours would make it invalid. */
function volumeClash(pod: InjectablePod, volumes: readonly V1Volume[]): string | undefined {
  const taken = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  const clashing = volumes.map((v) => v.name).filter((n) => taken.has(n));
  return clashing.length === 0
    ? undefined
    : `the pod already has volume(s) named ${clashing.join(', ')}`;
}

// ---- JSON patch ----

/** RFC 6901: `~` is `~0` and `/` is `~1` in a JSON pointer segment. */
export function escapePointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Appends items to an array, adding the array whole when the pod has none. */
function appendAll(
  path: string,
  existing: readonly unknown[] | undefined,
  items: readonly unknown[],
): JsonPatchOperation[] {
  if (existing === undefined) return [{ op: 'add', path, value: [...items] }];
  return items.map((value) => ({ op: 'add', path: `${path}/-`, value }));
}

/**
 * The readiness gate of the health condition: the pod is Ready only once the operator finds it
 * healthy. Kept when the pod already has it; other gates are left as they are.
 */
function healthGate(gates: readonly { conditionType: string }[] | undefined): JsonPatchOperation[] {
  if (gates?.some((g) => g.conditionType === HEALTH_CONDITION) === true) return [];
  return appendAll('/spec/readinessGates', gates, [{ conditionType: HEALTH_CONDITION }]);
}

function statusAnnotation(pod: InjectablePod): JsonPatchOperation[] {
  if (pod.metadata === undefined)
    return [
      {
        op: 'add',
        path: '/metadata',
        value: { annotations: { [ANNOTATION_STATUS]: STATUS_INJECTED } },
      },
    ];
  if (pod.metadata.annotations === undefined)
    return [
      { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_STATUS]: STATUS_INJECTED } },
    ];
  return [
    {
      op: 'add',
      path: `/metadata/annotations/${escapePointer(ANNOTATION_STATUS)}`,
      value: STATUS_INJECTED,
    },
  ];
}

function isDiscoveryScope(value: string): value is DiscoveryScopeKind {
  return (DISCOVERY_SCOPES as readonly string[]).includes(value);
}
