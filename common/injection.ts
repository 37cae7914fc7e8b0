/**
 * The injection contract: the names the operator's webhook writes into a pod (annotations,
 * the sidecar container, its volumes and paths) and that the operator's pod watch and the
 * sidecar read back. Shared by both programs, so it lives here and imports nothing.
 */

export const ANNOTATION_INJECT = 'maxine.io/inject';
export const ANNOTATION_SERVICE = 'maxine.io/service';
export const ANNOTATION_HEALTH_CHECK = 'maxine.io/health-check';
export const ANNOTATION_HEALTH_SCRIPTS = 'maxine.io/health-scripts-configmap';
export const ANNOTATION_STATUS = 'maxine.io/status';
/**
 * What the sidecar's local copy holds (sidecar/scope.ts): `pod` (the default) its own service,
 * its dependencies and what intentions allow it to call; `namespace` its namespace and its
 * dependencies; `cluster` everything its token may read.
 */
export const ANNOTATION_DISCOVERY_SCOPE = 'maxine.io/discovery-scope';
export const DISCOVERY_SCOPES = ['pod', 'namespace', 'cluster'] as const;
/**
 * Where the application containers see the service's config as files (an absolute path): an
 * emptyDir the sidecar writes (`MAXINE_CONFIG_DIR`) mounted read-only into each of them.
 */
export const ANNOTATION_CONFIG_MOUNT = 'maxine.io/config-mount';
/** What the sidecar runs after a config change (common/config-reload.ts). */
export const ANNOTATION_CONFIG_RELOAD = 'maxine.io/config-reload';
export type DiscoveryScopeKind = (typeof DISCOVERY_SCOPES)[number];
export const STATUS_INJECTED = 'injected';
/** Namespace label that opts every pod of the namespace in (routed by the webhook configuration). */
export const NAMESPACE_INJECTION_LABEL = 'maxine.io/injection';

/**
 * The pod condition in which the operator's leader writes the health Maxine decides (the
 * sidecar's checks, its lease); the webhook adds it to an injected pod as a readiness gate, so
 * the pod is Ready (and in its Services' endpoints) only while Maxine finds it healthy.
 */
export const HEALTH_CONDITION = 'maxine.io/healthy';

export const SIDECAR_NAME = 'maxine-sidecar';
export const SIDECAR_PORT = 7711;
export const SIDECAR_PORT_NAME = 'maxine';
export const SIDECAR_UID = 65532;
export const TOKEN_VOLUME = 'maxine-token';
export const TOKEN_DIR = '/var/run/secrets/maxine.io';
export const TOKEN_FILE = `${TOKEN_DIR}/token`;
export const PODINFO_VOLUME = 'maxine-podinfo';
export const PODINFO_DIR = '/etc/maxine/podinfo';
export const HEALTH_SCRIPTS_VOLUME = 'maxine-health-scripts';
export const HEALTH_SCRIPTS_DIR = '/etc/maxine/health';
export const CONFIG_VOLUME = 'maxine-config';
export const CONFIG_DIR = '/etc/maxine/config';

/**
 * The environment variables the webhook sets on the sidecar container (`sidecarEnv` in
 * common/injection-patch.ts) and the sidecar parses (`sidecarEnvSchema` in sidecar/config.ts,
 * which is checked to have each of them, so a renamed variable fails the type check).
 */
export const SIDECAR_ENV = [
  'MAXINE_POD_NAME',
  'MAXINE_POD_NAMESPACE',
  'MAXINE_POD_UID',
  'MAXINE_POD_IP',
  'MAXINE_NODE_NAME',
  'MAXINE_SERVICE_ACCOUNT',
  'MAXINE_SERVICE',
  'MAXINE_OPERATOR_URL',
  'MAXINE_TOKEN_FILE',
  'MAXINE_PODINFO_DIR',
  'MAXINE_LISTEN_HOST',
  'MAXINE_APP_PORT',
  'MAXINE_DISCOVERY_SCOPE',
  'MAXINE_HEALTH_CHECK',
  'MAXINE_HEALTH_SCRIPTS_DIR',
  'MAXINE_CONFIG_DIR',
  'MAXINE_CONFIG_RELOAD',
] as const;
export type SidecarEnvName = (typeof SIDECAR_ENV)[number];
