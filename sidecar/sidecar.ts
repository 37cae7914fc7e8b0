/**
 * The sidecar, composed: the local registry copy (fed by the operator's event stream), the
 * localhost server answering from it, the health monitor running the service's check (or the
 * pod's override), and the agent that registers and heartbeats with the latest result.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { listen } from '../common/listen.js';
import type { RegisterInput } from '../common/wire.js';
import type { Logger } from '../common/logger.js';
import { RegistrationAgent } from './agent.js';
import type { SidecarConfig } from './config.js';
import { CheckRunner, checkEnv } from './health/runner.js';
import type { ReportedHealth } from './health/runner.js';
import { MeshConfigCache, namesService, operatorMeshFetcher } from './mesh.js';
import { RegistryMirror } from './mirror.js';
import { discoveryScope } from './scope.js';
import { createSidecarServer } from './server.js';

export interface Sidecar {
  readonly mirror: RegistryMirror;
  readonly agent: RegistrationAgent;
  /** The operator's mesh renders of the pod's service (`/v1/mesh/{mesh}`, `MAXINE_MESH_DIR`). */
  readonly mesh: MeshConfigCache;
  /** The reported check result, undefined while no check is configured or before the first. */
  health(): ReportedHealth | undefined;
  start(): Promise<AddressInfo>;
  stop(): Promise<void>;
}

export function createSidecar(config: SidecarConfig, logger: Logger): Sidecar {
  const token = tokenReader(config.tokenFile, logger);
  const checks = new CheckRunner({
    appPort: config.appPort,
    logger,
    // Scripts see who they check, not the sidecar's own settings (token path, operator URL).
    // Relative commands (`./check.sh`) resolve in the mounted scripts ConfigMap.
    exec: {
      env: checkEnv({
        service: config.service,
        namespace: config.namespace,
        host: config.host,
        appPort: config.appPort,
        ...(config.pod && { podName: config.pod.name }),
      }),
      ...(config.healthScriptsDir !== undefined && { cwd: config.healthScriptsDir }),
    },
    onChange: () => agent.heartbeatNow(),
  });
  const health = (): ReportedHealth | undefined => checks.current();

  const registration: RegisterInput = {
    service: config.service,
    namespace: config.namespace,
    host: config.host,
    port: config.appPort,
    ...(config.version !== undefined && { version: config.version }),
    ...(config.zone !== undefined && { zone: config.zone }),
    ...(config.ttlSeconds !== undefined && { ttlSeconds: config.ttlSeconds }),
    ...(config.pod && { metadata: { pod: config.pod.name } }),
  };
  const agent = new RegistrationAgent({
    operatorUrl: config.operatorUrl,
    registration,
    logger,
    token,
    health,
  });

  const ownSpec = () => mirror.state.spec(config.namespace, config.service);
  const scope = (): string[] | undefined =>
    discoveryScope(config.discoveryScope, config.namespace, ownSpec());
  const own = { namespace: config.namespace, name: config.service };
  const mesh = new MeshConfigCache({
    fetch: operatorMeshFetcher({
      operatorUrl: config.operatorUrl,
      namespace: config.namespace,
      service: config.service,
      token,
    }),
    logger,
    refreshMs: config.meshRefreshSeconds * 1000,
    ...(config.meshDir !== undefined && { dir: config.meshDir }),
  });
  const ownSpecChanged = (): void => {
    checks.apply(config.healthCheck ?? ownSpec()?.healthCheck);
    mirror.rescope();
    mesh.invalidate();
  };

  const mirror = new RegistryMirror({
    operatorUrl: config.operatorUrl,
    logger,
    token,
    onResync: ownSpecChanged,
    scope,
    onService: (ref) => {
      if (ref.namespace === config.namespace && ref.name === config.service) ownSpecChanged();
    },
    onIntention: (destination) => {
      if (namesService(destination, own)) mesh.invalidate();
    },
  });

  const server = createSidecarServer({
    source: mirror.state,
    namespace: config.namespace,
    logger,
    config: () => ({
      service: { namespace: config.namespace, name: config.service },
      config: ownSpec()?.config ?? {},
    }),
    mesh: (name) => mesh.get(name),
    // Alive as long as the process answers: an unreachable operator must not restart the pod.
    health: () => ({
      ok: true,
      service: `${config.namespace}/${config.service}`,
      registration: agent.status(),
      operator: mirror.status(),
      check: health() ?? null,
      mesh: mesh.status(),
    }),
  });

  return {
    mirror,
    agent,
    mesh,
    health,
    async start() {
      const address = await listen(server, config.listenPort, config.listenHost);
      mirror.start();
      mesh.start();
      if (config.healthCheck !== undefined) checks.apply(config.healthCheck);
      agent.start();
      logger.info(
        {
          kind: 'MaxineService',
          namespace: config.namespace,
          name: config.service,
          pod: config.pod?.name,
          operator: config.operatorUrl,
          port: address.port,
          authenticated: config.tokenFile !== undefined,
          meshDir: config.meshDir,
        },
        'maxine sidecar listening',
      );
      return address;
    },
    async stop() {
      await agent.stop();
      await checks.stop();
      await mesh.stop();
      mirror.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Reads the projected token on each use: kubelet rotates the file in place. */
function tokenReader(
  file: string | undefined,
  logger: Logger,
): (() => Promise<string | undefined>) | undefined {
  if (file === undefined) return undefined;
  let warned = false;
  return async () => {
    try {
      const token = (await readFile(file, 'utf8')).trim();
      warned = false;
      return token === '' ? undefined : token;
    } catch (err) {
      if (!warned) logger.warn({ err, file }, 'cannot read the ServiceAccount token');
      warned = true;
      return undefined;
    }
  };
}
