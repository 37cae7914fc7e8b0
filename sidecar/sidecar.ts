/**
 * The sidecar, composed: the local registry copy (fed by the operator's event stream), the
 * localhost server answering from it, the health monitor running the service's check (or the
 * pod's override), and the agent that registers and heartbeats with the latest result.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { listen } from '../common/listen.js';
import type { HealthStatus, RegisterInput } from '../common/wire.js';
import type { Logger } from '../common/logger.js';
import { RegistrationAgent } from './agent.js';
import type { SidecarConfig } from './config.js';
import type { HealthCheck } from './health/checks.js';
import { HealthMonitor } from './health/monitor.js';
import { MeshConfigCache, namesService, operatorMeshFetcher } from './mesh.js';
import { RegistryMirror } from './mirror.js';
import { createSidecarServer, isLoopback } from './server.js';
import { DEFAULT_PROXY_HOOKS } from './proxy/defaults.js';
import { ProxyEngine } from './proxy/engine.js';
import { createForwardProxyServer } from './proxy/forward-listener.js';

export interface Sidecar {
  readonly mirror: RegistryMirror;
  readonly agent: RegistrationAgent;
  /** The operator's mesh renders of the pod's service (`/v1/mesh/{mesh}`, `MAXINE_MESH_DIR`). */
  readonly mesh: MeshConfigCache;
  /** The reported check result, undefined while no check is configured or before the first. */
  health(): { status: HealthStatus; output?: string } | undefined;
  /** The outbound proxy (path form on the main server, and the forward listener). */
  readonly proxy: ProxyEngine;
  /** Where the forward-proxy listener listens once started; undefined when off or not bound. */
  proxyAddress(): AddressInfo | undefined;
  start(): Promise<AddressInfo>;
  stop(): Promise<void>;
}

/** Heartbeat outputs are capped by the wire schema. */
const MAX_OUTPUT = 4000;

export function createSidecar(config: SidecarConfig, logger: Logger): Sidecar {
  const token = tokenReader(config.tokenFile, logger);
  let monitor: HealthMonitor | undefined;
  let checkSpec = '';

  const health = (): { status: HealthStatus; output?: string } | undefined => {
    // No check configured: nothing to fail (and a status left by a removed check is cleared).
    if (monitor === undefined) return checkSpec === 'null' ? { status: 'passing' } : undefined;
    const current = monitor.current();
    if (current === undefined) return undefined;
    return { status: current.status, output: current.output.slice(0, MAX_OUTPUT) };
  };

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

  /** Runs the check the pod's override or its service's spec asks for (none: no monitor). */
  const applyCheck = (spec: HealthCheck | undefined): void => {
    const key = JSON.stringify(spec ?? null);
    if (key === checkSpec) return;
    checkSpec = key;
    if (spec === undefined) {
      const old = monitor;
      monitor = undefined;
      old?.stop().catch((err: unknown) => logger.warn({ err }, 'stopping the check failed'));
      agent.heartbeatNow();
      return;
    }
    if (monitor !== undefined) {
      monitor.update(spec);
      return;
    }
    monitor = new HealthMonitor({
      spec,
      target: { host: '127.0.0.1', defaultPort: config.appPort },
      logger,
      // Scripts see who they check, not the sidecar's own settings (token path, operator URL).
      // Relative commands (`./check.sh`) resolve in the mounted scripts ConfigMap.
      exec: {
        env: checkEnv(config),
        ...(config.healthScriptsDir !== undefined && { cwd: config.healthScriptsDir }),
      },
      onChange: (s) => {
        logger.info({ status: s.status, output: s.output.slice(0, 512) }, 'health check status');
        agent.heartbeatNow();
      },
    });
    monitor.start();
  };
  const ownSpec = () => mirror.state.spec(config.namespace, config.service);
  /** Namespace scope: the pod's namespace and whatever its service declares it calls. */
  const scope = (): string[] | undefined => {
    if (config.discoveryScope === 'cluster') return undefined;
    const deps = ownSpec()?.dependencies ?? [];
    const refs = deps
      .map((d) => `${d.namespace ?? config.namespace}/${d.name}`)
      .filter((r) => !r.startsWith(`${config.namespace}/`));
    return [`${config.namespace}/*`, ...new Set(refs)].sort();
  };
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
    applyCheck(config.healthCheck ?? ownSpec()?.healthCheck);
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

  // Allow-all hooks until the real authorizer, limiter, breakers, retries, observer and tracer
  // are composed here (sidecar/proxy/defaults.ts).
  const proxy = new ProxyEngine({
    routes: mirror.state,
    hooks: DEFAULT_PROXY_HOOKS,
    logger,
    ...(config.zone !== undefined && { localZone: config.zone }),
  });
  const forward = config.proxyListen && {
    at: config.proxyListen,
    server: createForwardProxyServer({
      engine: proxy,
      namespace: config.namespace,
      logger,
      allowPeer: isLoopback,
    }),
    address: undefined as AddressInfo | undefined,
  };
  const server = createSidecarServer({
    proxy,
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
    proxy,
    proxyAddress: () => forward?.address,
    async start() {
      const address = await listen(server, config.listenPort, config.listenHost);
      if (forward) {
        // The proxy port taken must not stop registration and health: said loudly, not fatal.
        forward.address = await listen(forward.server, forward.at.port, forward.at.host).catch(
          (err: unknown) => {
            logger.error(
              { err, listen: `${forward.at.host}:${forward.at.port}` },
              'forward-proxy listener not started; set MAXINE_PROXY_LISTEN to a free HOST:PORT or off',
            );
            return undefined;
          },
        );
      }
      mirror.start();
      mesh.start();
      if (config.healthCheck !== undefined) applyCheck(config.healthCheck);
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
      await monitor?.stop();
      await mesh.stop();
      mirror.stop();
      proxy.close();
      await Promise.all(
        [server, ...(forward?.address ? [forward.server] : [])].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
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

/** The environment of exec checks: a plain PATH and the pod's identity. */
function checkEnv(config: SidecarConfig): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    MAXINE_SERVICE: config.service,
    MAXINE_POD_NAMESPACE: config.namespace,
    MAXINE_POD_IP: config.host,
    MAXINE_APP_PORT: String(config.appPort),
    ...(config.pod && { MAXINE_POD_NAME: config.pod.name }),
  };
}
