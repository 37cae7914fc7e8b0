/** Builds the MQTT bridge a configuration asks for (`--mqtt-url`), or nothing. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { OperatorConfig } from '../config.js';
import type { EventLog } from '../events/log.js';
import type { AccessControl } from '../policy/access.js';
import type { Registry } from '../registry/registry.js';
import { MqttBridge } from './bridge.js';
import { loadMqttUsers, MqttInbound } from './inbound.js';

export interface MqttSetupDeps {
  config: OperatorConfig;
  events: EventLog;
  registry: Registry;
  access: AccessControl;
  logger: Logger;
  prom: PromRegistry;
  /** Whether this replica leads: only the leader publishes and takes inbound writes. */
  isLeader: () => boolean;
}

export function createMqttBridge(deps: MqttSetupDeps): MqttBridge | undefined {
  const { config: c } = deps;
  if (c.mqttUrl === undefined) return undefined;
  const logger = deps.logger.child({ component: 'mqtt' });
  const operatorId = c.podName ?? hostname();
  const password =
    c.mqttPasswordFile !== undefined
      ? readFileSync(c.mqttPasswordFile, 'utf8').replace(/\r?\n$/, '')
      : c.mqttPassword;
  const inbound = c.mqttInbound
    ? new MqttInbound({
        prefix: c.mqttTopicPrefix,
        // config refuses --mqtt-inbound without a users file
        users: loadMqttUsers(c.mqttUsersFile ?? ''),
        registry: deps.registry,
        access: deps.access,
        logger,
        prom: deps.prom,
        ratePerSecond: c.mqttInboundRate,
        userRatePerSecond: c.mqttInboundUserRate,
        maxBytes: c.mqttInboundMaxBytes,
      })
    : undefined;
  return new MqttBridge({
    url: c.mqttUrl,
    username: c.mqttUsername,
    password,
    caFile: c.mqttCaFile,
    certFile: c.mqttCertFile,
    keyFile: c.mqttKeyFile,
    // With the pid: two operators on one host must not take each other's session over.
    clientId: c.mqttClientId ?? `maxine-${operatorId}-${process.pid}`.slice(0, 128),
    operatorId,
    prefix: c.mqttTopicPrefix,
    queue: { messages: c.mqttQueueMessages, bytes: c.mqttQueueBytes },
    inflight: c.mqttInflight,
    reconnectMinMs: c.mqttReconnectMinMs,
    reconnectMaxMs: c.mqttReconnectMaxMs,
    stateCoalesceMs: c.mqttStateCoalesceMs,
    events: deps.events,
    isLeader: deps.isLeader,
    registry: deps.registry,
    logger,
    prom: deps.prom,
    ...(inbound && {
      inbound: {
        filters: inbound.filters,
        handle: (packet, client) => inbound.handle(packet, client),
        // Larger than the bound, so an oversized message is answered with BODY_TOO_LARGE;
        // far larger ones never reach this process.
        maxPacketBytes: Math.max(4 * c.mqttInboundMaxBytes, 65_536) + 1024,
      },
    }),
  });
}
