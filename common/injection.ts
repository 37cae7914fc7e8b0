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
/** `namespace`: the sidecar mirrors only its namespace and its service's dependencies. */
export const ANNOTATION_DISCOVERY_SCOPE = 'maxine.io/discovery-scope';
export const STATUS_INJECTED = 'injected';
/** Namespace label that opts every pod of the namespace in (routed by the webhook configuration). */
export const NAMESPACE_INJECTION_LABEL = 'maxine.io/injection';

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
