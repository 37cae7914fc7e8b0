/**
 * Builds a standalone operator from its configuration without listening, so tests start it
 * on port 0 and main.ts only adds signals. Data flows one way: folder → reconciler →
 * registry → (REST, discovery, events).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registryLimitsOf } from './config.js';
import type { OperatorConfig } from './config.js';
import { EventLog } from './events/log.js';
import { createApp } from './http/app.js';
import { createFastPath } from './http/fast-path.js';
import { createEdgeServer } from './http/edge.js';
import { shapedMessages } from './http/request-shape.js';
import { createForwarder } from './http/forward.js';
import type { Forwarder } from './http/forward.js';
import { createEventStream, EVENTS_PATH } from './http/event-stream.js';
import { buildOpenApi } from './http/openapi.js';
import { PolicyStore } from './policy/store.js';
import { Reconciler } from './reconciler.js';
import { systemClock } from './registry/clock.js';
import type { Clock } from './registry/clock.js';
import { Registry } from './registry/registry.js';
import { ConfigHistory } from './registry/config-history.js';
import { FolderSource } from './sources/folder.js';
import type { ResourceSource } from './sources/source.js';
import { LeaseSweeper } from './registry/sweeper.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { LeaderElector } from './kube/leader.js';
import { listen } from '../common/listen.js';
import { createSecurity } from './auth/setup.js';
import type { SecurityDeps } from './auth/setup.js';
import type { HealthConditionWriter } from './kube/health-condition.js';
import type { Injector } from './webhook/injector.js';
import type { KubeSource } from './sources/kube.js';
import type { KubeRegistrations } from './kube/registrations.js';
import { kubePartsLoaded } from './kube/load-parts.js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import { createMetrics } from './telemetry/metrics.js';
import type { MeshControllerOptions } from './mesh/controller.js';
import { MeshInputs } from './mesh/inputs.js';
import { ObservedEdges } from './graph/observed.js';
import { MAX_REPORT_EDGES } from '../common/wire.js';
import { FileStore } from './store/file.js';
import { RedisStore } from './store/redis.js';
import { SharedRedisStore } from './store/redis-shared.js';
import type { Registry as PromRegistry } from 'prom-client';
import { MemoryStore } from './store/store.js';
import type { RegistryStore, StoredState } from './store/store.js';
import { createMqttBridge } from './mqtt/setup.js';
import type { MqttBridge } from './mqtt/bridge.js';

export const VERSION = '0.1.0';

export interface Operator {
  readonly server: Server;
  readonly registry: Registry;
  readonly events: EventLog;
  /** Where registrations outlive the process (standalone `--store`). */
  readonly store: RegistryStore;
  /** Whether this replica leads (always true in standalone mode or without leader election). */
  isLeader(): boolean;
  /** Where resources come from: the folder (standalone) or the API server (kubernetes). */
  readonly source: ResourceSource;
  /** The injection webhook's address, once listening (kubernetes mode). */
  webhook(): AddressInfo | undefined;
  /** Resolves once the webhook's CA is in its configuration (at once without a webhook). */
  whenWebhookReady(): Promise<void>;
  /** Syncs the source, starts the lease sweeper and listens. Resolves with the bound address. */
  start(): Promise<AddressInfo>;
  /** Stops accepting, closes streams and watchers, waits for in-flight requests (bounded). */
  stop(): Promise<void>;
}

function kubeConfigOf(path: string | undefined): KubeConfig {
  const kc = new (kubePartsLoaded().KubeConfig)();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromDefault(); // KUBECONFIG, ~/.kube/config, or the in-cluster ServiceAccount
  return kc;
}

export function createOperator(
  config: OperatorConfig,
  logger: Logger,
  clock: Clock = systemClock,
): Operator {
  const { events, emit: toLog, publishTo, heartbeatsWanted } = eventsOf(config, clock);
  let healthConditions: HealthConditionWriter | undefined;
  const emit = (draft: Draft): void => {
    toLog(draft);
    healthConditions?.noticeEvent(draft);
  };
  const registry = new Registry({
    clock,
    emit,
    // The health-condition writer reads a sidecar's first check result from a heartbeat.
    heartbeatsWanted: () => healthConditions !== undefined || heartbeatsWanted(),
    allowUndeclared: config.allowUndeclared,
    defaultTtlSeconds: config.defaultTtlSeconds,
    defaultRemoveAfterSeconds: config.removeAfterSeconds,
    massExpiryThreshold: config.massExpiryThreshold,
    massExpiryMinInstances: config.massExpiryMinInstances,
    limits: registryLimitsOf(config),
    // Followers answer sidecars 503 NO_LEADER with Retry-After = the renew period during a
    // handover: a lease the new leader adopts must outlast that wait.
    adoptedLeaseGraceMs: config.leaseRenewSeconds * 1000,
    configHistory: new ConfigHistory({
      clock,
      limit: config.configHistory,
      maxServices: config.configHistoryServices,
      maxBytes: config.configHistoryBytes,
    }),
  });
  const policies = new PolicyStore(emit, { policyNamespaces: config.policyNamespaces });
  const reconciler = new Reconciler(registry, policies, clock);
  let elector: LeaderElector | undefined;
  /** Whether this replica leads (always true in standalone mode or without leader election). */
  const isLeader = (): boolean => elector?.isLeader ?? true;
  let source: ResourceSource;
  let kubeAccess: SecurityDeps['kube'];
  let injector: Injector | undefined;
  let kubeMesh: Pick<MeshControllerOptions, 'kubeConfig' | 'statusChanged'> | undefined;
  /** Kubernetes mode: registrations from outside the cluster kept in the API server. */
  let registrations: KubeRegistrations | undefined;
  let kubeSource: KubeSource | undefined;
  const identity =
    config.podName ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  if (config.mode === 'kubernetes') {
    const {
      KubeSource,
      EventRecorder,
      LeaderElector,
      KubeRegistrations,
      createInjector,
      makeReviewer,
      makeUserReviewer,
    } = kubePartsLoaded();
    const kubeConfig = kubeConfigOf(config.kubeconfig);
    const kube = new KubeSource({
      kubeConfig,
      reconciler,
      registry,
      logger,
      statusResyncMs: config.statusResyncMs,
      isLeader,
      clock,
      events: new EventRecorder({ kubeConfig, logger, instance: identity, isLeader }),
      configFromMaxObjects: config.configFromMaxObjects,
    });
    if (config.leaderElection) {
      elector = new LeaderElector({
        kubeConfig,
        namespace: config.leaseNamespace,
        name: config.leaseName,
        identity,
        leaseDurationSeconds: config.leaseDurationSeconds,
        renewSeconds: config.leaseRenewSeconds,
        logger,
        advertiseUrl: config.advertiseUrl,
        onStartedLeading: () => {
          // Gated pods: start from the health their conditions say, then write transitions.
          registry.followPodConditions(false);
          healthConditions?.resyncAll();
          registrations?.tookOver();
          mqtt?.leadershipChanged(true);
          kube.resyncAll();
          void meshController?.syncNow();
        },
        onStoppedLeading: () => {
          registry.followPodConditions(true);
          registrations?.steppedDown();
          mqtt?.leadershipChanged(false);
        },
      });
      // A follower until elected: gated pods' health is what their conditions say.
      registry.followPodConditions(true);
    }
    registrations = new KubeRegistrations({
      kubeConfig,
      registry,
      events,
      logger,
      isLeader,
      serviceUid: (namespace, name) => kube.serviceUid(namespace, name),
    });
    source = kube;
    if (config.webhook ?? true)
      injector = createInjector({ config, kubeConfig, reconciler, logger });
    kubeAccess = {
      kubeConfig,
      pod: (namespace, name) => kube.pod(namespace, name),
      makeReviewer,
      makeUserReviewer,
    };
    kubeSource = kube;
    kubeMesh = { kubeConfig, statusChanged: (key) => kube.requestStatus(key) };
  } else {
    source = new FolderSource({ dir: config.resources, reconciler, logger });
  }
  const metrics = createMetrics({
    registry,
    events,
    resourceProblems: () => source.problems().length,
    isLeader,
  });
  const { store, sharedStore } = createStores(config, logger, metrics.prom, { events, clock });
  // Shared Redis: the registry's events are numbered there and come back through the stream.
  if (sharedStore !== undefined) publishTo((draft) => sharedStore.publish(draft));
  registrations?.registerMetrics(metrics.prom);
  registerSourceMetrics(kubeSource, metrics.prom, injector);
  const keeping = keepingOf(store, registrations);
  if (kubeMesh !== undefined) {
    healthConditions = new (kubePartsLoaded().HealthConditionWriter)({
      kubeConfig: kubeMesh.kubeConfig,
      registry,
      logger: logger.child({ component: 'health-condition' }),
      isLeader,
      writesPerSecond: config.healthConditionWritesPerSecond,
      maxPending: config.healthConditionMaxPending,
      resyncMs: config.statusResyncMs,
      prom: metrics.prom,
      clock,
    });
  }
  const security = createSecurity({
    config,
    reconciler,
    registry,
    store: policies,
    logger,
    prom: metrics.prom,
    ...(kubeAccess && { kube: kubeAccess }),
  });
  const { access, guard } = security;
  const meshInputs = new MeshInputs({ reconciler, registry, access, config });
  const meshController =
    kubeMesh === undefined || !config.meshApply
      ? undefined
      : new (kubePartsLoaded().MeshController)({
          ...kubeMesh,
          reconciler,
          renderer: meshInputs,
          events,
          logger: logger.child({ component: 'mesh' }),
          isLeader,
          resyncMs: config.meshResyncMs,
          prom: metrics.prom,
        });
  const observed = new ObservedEdges({
    maxEdges: config.graphMaxEdges,
    maxEdgesPerSource: MAX_REPORT_EDGES,
    windowMs: config.graphWindowSeconds * 1000,
  });
  const mqtt = createMqttBridge({
    config,
    events,
    registry,
    access,
    logger,
    prom: metrics.prom,
    isLeader,
  });
  const stream = createEventStream({
    events,
    registry,
    clock,
    logger,
    access,
    prom: metrics.prom,
    limits: {
      maxConnections: config.eventStreamMaxConnections,
      maxPerPrincipal: config.eventStreamMaxPerPrincipal,
      snapshotConcurrency: config.snapshotConcurrency,
      snapshotQueue: config.snapshotQueue,
      snapshotChunkBytes: config.snapshotChunkBytes,
      snapshotStallMs: config.snapshotStallMs,
      bufferBytes: config.eventStreamBufferBytes,
      sseHeartbeatMs: config.eventStreamSseHeartbeatMs,
    },
  });
  const openapi = buildOpenApi(VERSION);
  const app = createApp({
    registry,
    reconciler,
    resourceProblems: () => source.problems(),
    isLeader,
    metrics,
    logger,
    isReady: () => source.ready && store.available() && registrations?.synced !== false,
    ...keeping,
    openapi: () => openapi,
    guard,
    access,
    mesh: meshInputs,
    metricsAuth: config.metricsAuth ?? config.mode === 'kubernetes',
    graph: {
      registry,
      reconciler,
      access,
      guard,
      observed,
      emit,
      windowSeconds: config.graphWindowSeconds,
      bodyTimeoutMs: config.bodyTimeoutMs,
      prom: metrics.prom,
      logger,
      now: () => clock.now(),
    },
    ...(security.auditExport && { auditExport: security.auditExport }),
    readinessDetails: () => mqttReadiness(mqtt),
    eventStream: stream,
  });
  const fastPath = createFastPath({
    registry,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    bodyTimeoutMs: config.bodyTimeoutMs,
    guard,
    access,
    observer: (route, method) => metrics.routeObserver(route, method),
    ...keeping,
  });
  const forwarder = forwarderOf(elector, { config, identity, logger, prom: metrics.prom });
  // One hidden class for every request and response, fast path or express (decision 0041).
  const messages = shapedMessages(app);
  const server = createEdgeServer({
    config,
    prom: metrics.prom,
    audit: (entry) => security.audit(entry),
    request: (req, res) => {
      if (forwarder?.handle(req, res) === true) return;
      if (!fastPath(req, res)) app(req, res);
    },
    websocket: (req, socket, head) => stream.handleUpgrade(req, socket, head),
    messages,
  });

  const sweeper = new LeaseSweeper({
    registry,
    logger,
    intervalMs: config.sweepIntervalMs,
    massExpiryThreshold: config.massExpiryThreshold,
  });

  let webhookAddress: AddressInfo | undefined;
  return {
    server,
    registry,
    events,
    store,
    source,
    isLeader,
    webhook: () => webhookAddress,
    whenWebhookReady: () => injector?.whenBundlePatched() ?? Promise.resolve(),
    async start() {
      // What the store kept, before any event is numbered: the sequence continues above it.
      const kept = await store.load();
      continueEvents(events, kept, logger);
      // Before any MaxineService is applied: known configs keep their versions.
      if (kept.configs !== undefined) registry.configs.seed(kept.configs);
      await security.start();
      await source.start();
      // After the MaxineServices (registrations name them), before leading and listening.
      await registrations?.start();
      // After the folder (declared services are known), before the first sweep and listen.
      const refused = restoreFromStore(registry, store, kept, logger);
      store.attach(registry, events);
      store.keepConfigs?.(registry.configs);
      // What the registry refused is dropped from the store too: it holds what the registry holds.
      store.forget(refused);
      // Shared Redis: only the holder of the expiry lock sweeps (after reading renewals).
      if (sharedStore === undefined) sweeper.sweepOnce();
      if (injector !== undefined) webhookAddress = await injector.start();
      elector?.start();
      healthConditions?.start();
      meshController?.start();
      mqtt?.start();
      if (sharedStore === undefined) sweeper.start();
      else sharedStore.runExpiry(() => sweeper.sweepOnce(), config.sweepIntervalMs);
      const address = await listen(server, config.port, config.host);
      logger.info(
        {
          host: address.address,
          port: address.port,
          resources: config.resources,
          allowUndeclared: config.allowUndeclared,
          events: EVENTS_PATH,
        },
        `maxine operator listening (${config.mode} mode)`,
      );
      for (const warning of security.warnings()) logger.warn(warning);
      return address;
    },
    async stop() {
      sweeper.stop();
      healthConditions?.stop();
      stream.close();
      await mqtt?.stop();
      await meshController?.stop();
      await elector?.stop();
      await injector?.stop();
      await registrations?.stop();
      await source.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timeout = new Promise<void>((resolve) => {
        setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, config.shutdownTimeoutMs).unref();
      });
      await Promise.race([closed, timeout]);
      forwarder?.close();
      await store.close();
      await security.stop();
    },
  };
}

/** Where a write is kept before it is acknowledged: the standalone store, the API server. */
function keepingOf(
  store: RegistryStore,
  registrations: KubeRegistrations | undefined,
): { committed?: () => Promise<void>; kept?: KubeRegistrations } {
  return {
    ...(store.committed && { committed: store.committed }),
    ...(registrations && { kept: registrations }),
  };
}

/** Followers forward registry writes to the leader; without leader election nothing is forwarded. */
function forwarderOf(
  elector: LeaderElector | undefined,
  deps: { config: OperatorConfig; identity: string; logger: Logger; prom: PromRegistry },
): Forwarder | undefined {
  if (elector === undefined) return undefined;
  const { config } = deps;
  return createForwarder({
    leader: () => elector.leader,
    identity: deps.identity,
    timeoutMs: config.forwardTimeoutMs,
    bodyLimitBytes: config.bodyLimitBytes,
    retryAfterSeconds: config.leaseRenewSeconds,
    logger: deps.logger,
    prom: deps.prom,
  });
}

/** What `/readyz` says of the MQTT bridge (it never decides readiness). */
function mqttReadiness(mqtt: MqttBridge | undefined): Record<string, unknown> {
  return mqtt === undefined ? {} : { mqtt: mqtt.status() };
}

/**
 * Re-creates what the store kept; says how much, and which registrations were refused (their
 * ids are returned).
 */
function restoreFromStore(
  registry: Registry,
  store: RegistryStore,
  kept: StoredState,
  logger: Logger,
): string[] {
  if (store.kind === 'memory') return [];
  const { restored, refused } = registry.restore(kept.instances);
  logger.info(
    { store: store.kind, restored, refused: refused.length, seq: kept.seq },
    'registrations restored from the store',
  );
  // Bounded: the first few by name, the rest as a count.
  for (const r of refused.slice(0, 20)) {
    logger.warn(
      { instance: r.id, code: r.code, reason: r.message },
      'stored registration not restored: the configuration now refuses it',
    );
  }
  return refused.map((r) => r.id);
}

/**
 * The event log continues what the store kept: the same epoch and events when the store kept
 * them (a `since=` from before the restart replays), else numbering above the kept sequence
 * (in a new epoch: a `since=` gets a snapshot).
 */
function continueEvents(events: EventLog, kept: StoredState, logger: Logger): void {
  const log = kept.events;
  // Registrations written after events the log lost (a power loss under --store-fsync
  // interval): numbering on from the log would give a seen number to a new event.
  if (log !== undefined && log.lastSeq >= kept.seq) {
    events.restore(log.epoch, log.after, log.events);
    logger.info(
      { epoch: log.epoch, events: events.size, lastSeq: events.lastSeq },
      'event log restored from the store: since= from before the restart replays',
    );
    return;
  }
  if (log !== undefined)
    logger.warn(
      { epoch: log.epoch, keptLastSeq: log.lastSeq, registrationsSeq: kept.seq },
      'kept event log is behind the registrations: a new epoch starts (resuming clients get a snapshot)',
    );
  // (0 from the shared store: its events came numbered, read into the log by load.)
  if (kept.seq > 0) events.continueAfter(kept.seq);
}

type Draft = Parameters<EventLog['append']>[0];

/**
 * The event log, and the registry's emit: into the log, or (once publishTo is called) to the
 * store shared with other operators, which numbers the events in Redis.
 */
function eventsOf(
  config: OperatorConfig,
  clock: Clock,
): {
  events: EventLog;
  emit: (draft: Draft) => void;
  publishTo: (p: (d: Draft) => void) => void;
  /** Whether a heartbeat's event has a taker: a listener of the log, or the shared store. */
  heartbeatsWanted: () => boolean;
} {
  const shared = config.store === 'redis' && config.storeRedisShared;
  const events = new EventLog(
    { events: config.eventLogSize, bytes: config.eventLogBytes },
    clock,
    // Operators sharing a Redis number their events there (operator/store/redis-shared.ts).
    shared ? 0 : clock.now() * 1000,
  );
  let publish: ((draft: Draft) => void) | undefined;
  return {
    events,
    emit: (draft) => {
      if (publish === undefined) void events.append(draft);
      else publish(draft);
    },
    publishTo: (p) => {
      publish = p;
    },
    // A shared store renews leases from heartbeats (redis-shared.ts publish).
    heartbeatsWanted: () => publish !== undefined || events.wantsHeartbeats,
  };
}

/** The store, and the same store when it is shared with other operators (`--store-redis-shared`). */
function createStores(
  config: OperatorConfig,
  logger: Logger,
  prom: PromRegistry,
  { events, clock }: { events: EventLog; clock: Clock },
): { store: RegistryStore; sharedStore: SharedRedisStore | undefined } {
  if (config.store !== 'redis' || !config.storeRedisShared)
    return { store: createStore(config, logger, prom), sharedStore: undefined };
  const sharedStore = new SharedRedisStore({
    url: config.storeRedisUrl,
    prefix: config.storeRedisPrefix,
    renewIntervalMs: config.storeRenewIntervalMs,
    timeoutMs: config.storeRedisTimeoutMs,
    lockMs: config.storeRedisLockMs,
    graceMs: config.removeAfterSeconds * 1000,
    maxEvents: config.eventLogSize,
    maxBytes: config.eventLogBytes,
    events,
    now: () => clock.now(),
    logger: logger.child({ component: 'store' }),
    prom,
  });
  return { store: sharedStore, sharedStore };
}

/** The store `--store` names (standalone mode; kubernetes mode has none: config refuses it). */
function createStore(config: OperatorConfig, logger: Logger, prom: PromRegistry): RegistryStore {
  const storeLogger = logger.child({ component: 'store' });
  if (config.store === 'redis') {
    return new RedisStore({
      url: config.storeRedisUrl,
      prefix: config.storeRedisPrefix,
      renewIntervalMs: config.storeRenewIntervalMs,
      timeoutMs: config.storeRedisTimeoutMs,
      keepEvents: true,
      logger: storeLogger,
      prom,
    });
  }
  if (config.store === 'file') {
    return new FileStore({
      dir: config.storeDir,
      fsync: config.storeFsync,
      fsyncIntervalMs: config.storeFsyncIntervalMs,
      renewIntervalMs: config.storeRenewIntervalMs,
      compactBytes: config.storeCompactBytes,
      keepEvents: true,
      keepConfig: true,
      logger: storeLogger,
      prom,
    });
  }
  return new MemoryStore();
}

/** Metrics of the resource source (Kubernetes mode: the configFrom watcher's). */
function registerSourceMetrics(
  source: KubeSource | undefined,
  prom: PromRegistry,
  injector: Injector | undefined,
): void {
  injector?.registerMetrics(prom);
  source?.registerMetrics(prom);
}
