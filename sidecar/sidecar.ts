/**
 * The sidecar, composed: the local registry copy (fed by the operator's event stream), the
 * localhost server answering from it, the health monitor running the service's check (or the
 * pod's override), and the agent that registers and heartbeats with the latest result.
 */
import { kubeSecretReader } from './app-config/secrets.js';
import type { SecretRead } from './app-config/secrets.js';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { listen } from '../common/listen.js';
import { Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import type { RegisterInput, ServiceRef } from '../common/wire.js';
import type { Logger } from '../common/logger.js';
import { RegistrationAgent } from './agent.js';
import type { SidecarConfig } from './config.js';
import { CheckRunner, checkEnv } from './health/runner.js';
import type { ReportedHealth } from './health/runner.js';
import { MeshConfigCache, namesService, operatorMeshFetcher } from './mesh.js';
import { MemoryTrim } from './memory-trim.js';
import { RegistryMirror } from './mirror.js';
import { ConfigDelivery } from './app-config/delivery.js';
import { discoveryScope, outsideScope } from './scope.js';
import { MaxineError } from '../common/errors.js';
import { createSidecarServer, isLoopback } from './server.js';
import type { SidecarServerDeps } from './server.js';
import { IntentionAuthorizer, scopeCovers } from './proxy/authorizer.js';
import { Breakers } from './proxy/breaker.js';
import { ProxyEngine } from './proxy/engine.js';
import { createForwardProxyServer } from './proxy/forward-listener.js';
import type { CallTracer, OutboundRequest, ProxyHooks } from './proxy/hooks.js';
import { createProxyMetrics } from './proxy/metrics.js';
import { DestinationRateLimiter } from './proxy/rate-limit.js';
import { CallReporter } from './proxy/reporter.js';
import { SlidingRetryBudget, SpecRetryPolicy } from './proxy/retry.js';
import { createProxyTracer, PropagatingTracer } from './proxy/tracing.js';
import type { ProxyTracer, TracingSettings } from './proxy/tracing.js';

export interface Sidecar {
  readonly mirror: RegistryMirror;
  readonly agent: RegistrationAgent;
  /** The operator's mesh renders of the pod's service (`/v1/mesh/{mesh}`, `MAXINE_MESH_DIR`). */
  readonly mesh: MeshConfigCache;
  /** The reported check result, undefined while no check is configured or before the first. */
  health(): ReportedHealth | undefined;
  /** The outbound proxy (path form on the main server, and the forward listener). */
  readonly proxy: ProxyEngine;
  /** Where the forward-proxy listener listens once started; undefined when off or not bound. */
  proxyAddress(): AddressInfo | undefined;
  /** The sidecar's metrics (`GET /metrics`): the proxy, breakers, retries, limits, spans. */
  readonly prom: PromRegistry;
  start(): Promise<AddressInfo>;
  stop(): Promise<void>;
}

/** What the composition root reads besides the sidecar's own configuration. */
export interface SidecarExtras {
  /** OpenTelemetry settings (`OTEL_*`); absent: propagate trace context only. */
  tracing?: TracingSettings;
}

/**
 * The refusal of a local discovery the mirrored intentions forbid; undefined for a service the
 * copy does not hold (discovery answers it: not found, or outside the scope).
 */
function discoveryRefusal(
  authorizer: IntentionAuthorizer,
  copy: { has(namespace: string, name: string): boolean },
  destination: ServiceRef,
): MaxineError | undefined {
  if (!copy.has(destination.namespace, destination.name)) return undefined;
  const decision = authorizer.discovery(destination);
  if (decision.allowed) return undefined;
  return new MaxineError('INTENTION_DENIED', decision.reason, {
    ...(decision.intention !== undefined && { intention: decision.intention }),
  });
}

/** The server's intention check of local discovery, when `MAXINE_DISCOVERY_CHECK_INTENTIONS`. */
function discoveryCheck(
  on: boolean,
  authorizer: IntentionAuthorizer,
  copy: { has(namespace: string, name: string): boolean },
): Pick<SidecarServerDeps, 'discoveryRefusal'> {
  if (!on) return {};
  return {
    discoveryRefusal: (namespace, name) => discoveryRefusal(authorizer, copy, { namespace, name }),
  };
}

export function createSidecar(
  config: SidecarConfig,
  logger: Logger,
  extras: SidecarExtras = {},
): Sidecar {
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
  const own = { namespace: config.namespace, name: config.service };
  // Recomputed only when what it reads moved: the own spec (a new object on every change)
  // or the mirrored intentions (`policyVersion`).
  let scopeMemo: { spec: unknown; policy: number; value: string[] | undefined } | undefined;
  const scope = (): string[] | undefined => {
    const spec = ownSpec();
    const policy = mirror.state.policyVersion;
    const memo = scopeMemo;
    if (memo !== undefined && memo.spec === spec && memo.policy === policy) return memo.value;
    const value = discoveryScope(config.discoveryScope, config.namespace, spec, {
      service: config.service,
      intentions: mirror.state.intentions(),
    });
    scopeMemo = { spec, policy, value };
    return value;
  };
  const outside = (destination: ServiceRef, fallback: MaxineError) =>
    outsideScope(config.discoveryScope, scope(), destination, fallback);
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
    appConfig.refresh(
      ownSpec()?.config,
      mirror.state.configVersion(config.namespace, config.service),
      mirror.state.configSecrets(config.namespace, config.service),
    );
    mirror.rescope();
    mesh.invalidate();
  };

  const memoryTrim = new MemoryTrim({ delayMs: config.memoryTrimSeconds * 1000, logger });
  const mirror = new RegistryMirror({
    operatorUrl: config.operatorUrl,
    logger,
    token,
    onResync: () => {
      memoryTrim.schedule();
      ownSpecChanged();
      for (const ref of breakers.tracked()) refreshMembers(ref);
    },
    scope,
    onService: (ref) => {
      if (ref.namespace === config.namespace && ref.name === config.service) ownSpecChanged();
      refreshMembers(ref);
    },
    onIntention: (destination) => {
      if (namesService(destination, own)) mesh.invalidate();
      // The destinations intentions allow this pod to call are part of its scope.
      if (config.discoveryScope === 'pod') mirror.rescope();
    },
    ...(config.discoveryScope === 'pod' && { caller: own }),
  });

  // The outbound proxy and what it asks on each call (sidecar/proxy/hooks.ts).
  const prom = new PromRegistry();
  collectDefaultMetrics({ register: prom, prefix: 'maxine_sidecar_' });
  const appConfig = new ConfigDelivery({
    service: own,
    logger,
    prom,
    maxWaiters: config.configMaxWaiters,
    appPort: config.appPort,
    ...(config.configDir !== undefined && { dir: config.configDir }),
    ...(config.configReload !== undefined && { reload: config.configReload }),
    ...secretReaderOf(config),
  });
  const reporter = new CallReporter({
    operatorUrl: config.operatorUrl,
    source: own,
    pod: config.pod?.name,
    logger,
    token,
    intervalMs: config.reportIntervalSeconds * 1000,
  });
  const breakers = new Breakers({
    log: logger,
    registry: prom,
    onTransition: (t) => reporter.circuitChanged(t),
  });
  /** Keeps the breakers' view of a called service's members equal to the local copy's. */
  const refreshMembers = (ref: ServiceRef): void => {
    if (!breakers.isTracked(ref)) return;
    const route = mirror.state.route(ref.namespace, ref.name);
    if (route === undefined) breakers.forget(ref, Date.now());
    else
      breakers.retain(
        ref,
        route.instances.map((i) => i.id),
        Date.now(),
      );
  };
  const tracer = new SwappableTracer(new PropagatingTracer());
  const authorizer = new IntentionAuthorizer({
    caller: own,
    policy: mirror.state,
    inScope: (d) => scopeCovers(scope(), d),
  });
  const hooks: ProxyHooks = {
    authorizer,
    rateLimiter: new DestinationRateLimiter({ registry: prom }),
    breakers,
    retryPolicy: new SpecRetryPolicy({ retryNonIdempotent: config.proxyRetryNonIdempotent }),
    retryBudget: new SlidingRetryBudget({ registry: prom }),
    observer: reporter,
    tracer,
  };
  const proxy = new ProxyEngine({
    routes: mirror.state,
    hooks,
    logger,
    metrics: createProxyMetrics(prom),
    connectTimeoutMs: config.proxyConnectTimeoutMs,
    ...(config.zone !== undefined && { localZone: config.zone }),
    outsideScope: outside,
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
    outsideScope: outside,
    ...discoveryCheck(config.discoveryChecksIntentions, authorizer, mirror.state),
    logger,
    config: appConfig.state,
    mesh: (name) => mesh.get(name),
    // Alive as long as the process answers: an unreachable operator must not restart the pod.
    health: () => ({
      ok: true,
      service: `${config.namespace}/${config.service}`,
      registration: agent.status(),
      operator: mirror.status(),
      // What the copy holds (`cluster`: every service, no list).
      scope: { kind: config.discoveryScope, services: scope() ?? null },
      check: health() ?? null,
      mesh: mesh.status(),
      config: { version: appConfig.state.current.version, hash: appConfig.state.current.hash },
      reports: reporter.status(),
    }),
    metrics: prom,
  });

  return {
    mirror,
    agent,
    mesh,
    health,
    proxy,
    prom,
    proxyAddress: () => forward?.address,
    async start() {
      if (extras.tracing !== undefined) {
        tracer.current = await createProxyTracer({
          settings: extras.tracing,
          logger,
          registers: [prom],
          resource: {
            'k8s.namespace.name': config.namespace,
            ...(config.pod && { 'k8s.pod.name': config.pod.name }),
          },
        });
      }
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
      reporter.start();
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
      memoryTrim.stop();
      await appConfig.stop();
      proxy.close();
      await reporter.stop();
      await tracer.current.shutdown();
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

/** The tracer the engine holds from the start; the exporting one replaces it once loaded. */
class SwappableTracer implements CallTracer {
  constructor(public current: ProxyTracer) {}
  startCall(request: OutboundRequest) {
    return this.current.startCall(request);
  }
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

/** Reads the Secrets the pod's config names, from the API server with the pod's token. */
function secretReaderOf(config: SidecarConfig): { readSecret?: SecretRead } {
  return config.kubeApi === undefined
    ? {}
    : { readSecret: kubeSecretReader({ ...config.kubeApi, namespace: config.namespace }) };
}
