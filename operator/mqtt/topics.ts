/**
 * The MQTT bridge's pure core: topic names, the retained state message, inbound topic
 * parsing and the reconnect back-off. No sockets here (operator/mqtt/bridge.ts owns them).
 *
 * Topics (docs/events.md "MQTT"):
 *   {prefix}/{namespace}/{service}/{type}           every event, QoS 1
 *   {prefix}/{namespace}/{service}/state            retained: the healthy instances
 *   {prefix}/{namespace}/{service}/{verb}/{user}    inbound (register, heartbeat, deregister)
 *   {prefix}/bridge/{operator id}/status            retained `online` / `offline` (last will)
 */
import { discoverable, discoveredOf } from '../../common/discovery.js';
import type { DiscoveredInstance, Instance, MaxineEvent } from '../../common/wire.js';

/** Policy events name wildcards (`*`) or no service at all: both get a topic segment of their own. */
export const ANY_SEGMENT = '_all';
export const NO_SERVICE_SEGMENT = '_cluster';

/** A topic segment for a namespace or service name: MQTT wildcards and separators never pass. */
export function segment(value: string | undefined): string {
  if (value === undefined) return NO_SERVICE_SEGMENT;
  if (value === '*') return ANY_SEGMENT;
  // Names are DNS labels (common/wire.ts); anything else is escaped rather than trusted.
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(value)
    ? value
    : encodeURIComponent(value).replace(/\*/g, '%2A');
}

export function eventTopic(prefix: string, event: MaxineEvent): string {
  const service = 'service' in event ? event.service : undefined;
  return `${prefix}/${segment(service?.namespace)}/${segment(service?.name)}/${event.type}`;
}

export function stateTopic(prefix: string, namespace: string, name: string): string {
  return `${prefix}/${segment(namespace)}/${segment(name)}/state`;
}

export function statusTopic(prefix: string, operatorId: string): string {
  return `${prefix}/bridge/${segment(operatorId)}/status`;
}

/**
 * The service whose retained state an event may change, or undefined (policy events, a
 * wildcard, heartbeats, which never change membership or health by themselves).
 */
export function stateKeyOf(event: MaxineEvent): string | undefined {
  if (event.type === 'service_heartbeat') return undefined;
  const service = 'service' in event ? event.service : undefined;
  if (service === undefined || service.namespace === '*' || service.name === '*') return undefined;
  return `${service.namespace}/${service.name}`;
}

export interface StateMessage {
  service: { namespace: string; name: string };
  /** The last event sequence the state reflects. */
  seq: number;
  time: string;
  instances: DiscoveredInstance[];
  /** Discovery of the service is blocked (`spec.blocked.discovery`): no instances are shown. */
  blocked?: { reason: string };
}

/** What the registry holds of a service, as the state message needs it. */
export interface ServiceState {
  instances: readonly Instance[];
  /** Set when the service's discovery is blocked, with the spec's reason. */
  discoveryBlocked?: string | undefined;
}

/**
 * The retained state: the instances discovery would hand out (non-critical, in id order),
 * none while discovery is blocked (as REST answers 403 then), or undefined when the service
 * is gone, which clears the retained message.
 */
export function stateMessage(
  service: { namespace: string; name: string },
  current: ServiceState | undefined,
  seq: number,
  time: string,
): StateMessage | undefined {
  if (current === undefined) return undefined;
  if (current.discoveryBlocked !== undefined)
    return { service, seq, time, instances: [], blocked: { reason: current.discoveryBlocked } };
  const healthy = discoverable(current.instances, (i) => i.health.status).map(discoveredOf);
  return { service, seq, time, instances: healthy };
}

export const INBOUND_VERBS = ['register', 'heartbeat', 'deregister'] as const;
export type InboundVerb = (typeof INBOUND_VERBS)[number];

export interface InboundTopic {
  namespace: string;
  service: string;
  verb: InboundVerb;
  /** The broker user the topic names; the broker's ACL lets only that user write it. */
  user: string;
}

/**
 * The subscriptions of inbound mode: one per verb, the user as the last level. Shared
 * (MQTT 5 `$share`): with several operator replicas each message reaches one of them, so a
 * registration is handled and answered once.
 */
export function inboundFilters(prefix: string): string[] {
  return INBOUND_VERBS.map((verb) => `$share/maxine-inbound/${prefix}/+/+/${verb}/+`);
}

/** Parses an inbound topic; undefined for anything that is not exactly one of ours. */
export function parseInboundTopic(prefix: string, topic: string): InboundTopic | undefined {
  if (!topic.startsWith(`${prefix}/`)) return undefined;
  const parts = topic.slice(prefix.length + 1).split('/');
  if (parts.length !== 4) return undefined;
  const [namespace, service, verb, user] = parts as [string, string, string, string];
  if (!(INBOUND_VERBS as readonly string[]).includes(verb)) return undefined;
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  // The user is a broker user name of the users file (at most 256 characters there).
  if (!label.test(namespace) || !label.test(service) || user === '' || user.length > 256)
    return undefined;
  return { namespace, service, verb: verb as InboundVerb, user };
}

/**
 * Reconnect back-off: doubling from `minMs`, capped at `maxMs`, with up to a quarter of
 * jitter (`random` in [0, 1)) so a fleet of operators does not reconnect in step.
 */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - 0.25 * random));
}
