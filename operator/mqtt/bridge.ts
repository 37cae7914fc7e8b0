/**
 * The MQTT bridge (`--mqtt-url`): every registry event published to a broker as
 * `{prefix}/{namespace}/{service}/{type}` (QoS 1, the event stream's JSON, serialized once by
 * the event log), and a retained `{prefix}/{namespace}/{service}/state` with the service's
 * healthy instances, coalesced per service. A bounded queue holds what the broker cannot take
 * yet; the connection is retried with back-off; a retained last will announces the bridge
 * offline. Optional inbound writes are handled by operator/mqtt/inbound.ts.
 *
 * The bridge never holds the registry up: publishing is fire-and-forget from the event log's
 * listener, and a broker that is away only grows the bounded queue.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { MaxineEvent } from '../../common/wire.js';
import type { EventLog } from '../events/log.js';
import type { Registry } from '../registry/registry.js';
import { PublishQueue } from './queue.js';
import type { Publication } from './queue.js';
import {
  backoffMs,
  eventTopic,
  stateKeyOf,
  stateMessage,
  stateTopic,
  statusTopic,
} from './topics.js';

export interface MqttBridgeOptions {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  clientId: string;
  /** Names the bridge in its status topic (the operator's pod or host name). */
  operatorId: string;
  prefix: string;
  queue: { messages: number; bytes: number };
  /** QoS-1 messages handed to the client and not yet acknowledged, at most. */
  inflight: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** State messages of a service are published at most this often. */
  stateCoalesceMs: number;
  events: EventLog;
  registry: Registry;
  logger: Logger;
  prom: PromRegistry;
  /**
   * Whether this replica leads (Kubernetes mode with several replicas): only the leader
   * publishes and takes inbound writes, so subscribers get each change once and writes go
   * where registry writes go. Default: always (standalone, one replica).
   */
  isLeader?: () => boolean;
  /** Inbound messages (operator/mqtt/inbound.ts), with the topics to subscribe. */
  inbound?: {
    filters: string[];
    handle: (packet: IPublishPacket, client: MqttClient) => void;
    /** Packets larger than this are not delivered by the broker at all (MQTT 5 maximum packet size). */
    maxPacketBytes: number;
  };
}

export interface MqttBridgeStatus {
  connected: boolean;
  /** Why the last connection attempt failed, for people (never holds the password). */
  lastError?: string;
}

export class MqttBridge {
  private client: MqttClient | undefined;
  private readonly queue: PublishQueue;
  private inflight = 0;
  /**
   * Messages the client gave back unacknowledged when its connection closed (mqtt.js fails
   * the callbacks of a clean session's in-flight messages): sent again first, in order, on
   * the next connection. At most `inflight` of them.
   */
  private retry: Publication[] = [];
  private connected = false;
  private lastError: string | undefined;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stateTimer: NodeJS.Timeout | undefined;
  private readonly dirty = new Set<string>();
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  private readonly metrics;

  constructor(private readonly opts: MqttBridgeOptions) {
    this.queue = new PublishQueue(opts.queue);
    const registers = [opts.prom];
    this.metrics = {
      published: new Counter({
        name: 'maxine_mqtt_published_total',
        help: 'Messages the MQTT broker acknowledged (QoS 1), by kind (event, state, status)',
        labelNames: ['kind'] as const,
        registers,
      }),
      dropped: new Counter({
        name: 'maxine_mqtt_dropped_total',
        help: 'Messages the MQTT bridge dropped because its publish queue was full',
        registers,
      }),
      refused: new Counter({
        name: 'maxine_mqtt_refused_total',
        help: 'Messages the MQTT broker refused (a PUBACK reason code, such as not authorized by its ACL)',
        registers,
      }),
    };
    // Read at scrape time: the queue and the connection are the source of truth.
    const queue = this.queue;
    const isConnected = (): boolean => this.connected;
    const queued = new Gauge({
      name: 'maxine_mqtt_queued',
      help: 'Messages waiting in the MQTT publish queue',
      registers,
      collect: () => {
        queued.set(queue.size + this.retry.length);
      },
    });
    new Gauge({
      name: 'maxine_mqtt_queued_bytes',
      help: 'Bytes waiting in the MQTT publish queue',
      registers,
      collect() {
        this.set(queue.bytes);
      },
    });
    new Gauge({
      name: 'maxine_mqtt_connected',
      help: '1 while the MQTT bridge is connected to its broker',
      registers,
      collect() {
        this.set(isConnected() ? 1 : 0);
      },
    });
  }

  status(): MqttBridgeStatus {
    return {
      connected: this.connected,
      ...(this.lastError !== undefined && { lastError: this.lastError }),
    };
  }

  start(): void {
    this.unsubscribe = this.opts.events.subscribe((event) => this.onEvent(event), {
      heartbeats: false, // never published (onEvent)
    });
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stateTimer);
    const client = this.client;
    if (client === undefined) return;
    // A clean goodbye: the status says offline (the will is only sent on an unclean loss).
    if (this.connected) {
      await new Promise<void>((resolve) => {
        client.publish(this.statusTopic(), 'offline', { qos: 1, retain: true }, () => resolve());
        setTimeout(resolve, 1000).unref();
      });
    }
    // A normal DISCONNECT (no will: the status says offline already), forced if it hangs.
    const ended = client.endAsync(false).catch(() => undefined);
    const timeout = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), 2000).unref(),
    );
    if ((await Promise.race([ended, timeout])) === 'timeout')
      await client.endAsync(true).catch(() => undefined);
  }

  private statusTopic(): string {
    return statusTopic(this.opts.prefix, this.opts.operatorId);
  }

  private leads(): boolean {
    return this.opts.isLeader?.() ?? true;
  }

  /**
   * This replica started or stopped leading: a new leader publishes every service's state
   * (what a follower did not publish may have changed) and takes the inbound subscription;
   * a replica that stops leading gives the subscription up.
   */
  leadershipChanged(leading: boolean): void {
    const client = this.client;
    if (client === undefined || !this.connected) return;
    if (leading) {
      this.subscribeInbound(client);
      for (const ref of this.opts.registry.serviceRefs())
        this.dirty.add(`${ref.namespace}/${ref.name}`);
      this.flushStates();
    } else if (this.opts.inbound !== undefined) {
      client.unsubscribe(this.opts.inbound.filters, () => undefined);
    }
  }

  private onEvent(event: MaxineEvent): void {
    // Heartbeats are the hot write path and worthless on a topic (as on WebSocket by default).
    if (event.type === 'service_heartbeat') return;
    // A follower's registry sees the same changes: the leader alone publishes them.
    if (!this.leads()) return;
    this.enqueue({
      topic: eventTopic(this.opts.prefix, event),
      payload: this.opts.events.serialized(event),
      retain: false,
    });
    const key = stateKeyOf(event);
    if (key !== undefined) this.markDirty(key);
  }

  private markDirty(key: string): void {
    this.dirty.add(key);
    this.stateTimer ??= setTimeout(() => {
      this.stateTimer = undefined;
      this.flushStates();
    }, this.opts.stateCoalesceMs);
  }

  private flushStates(): void {
    if (!this.leads()) {
      this.dirty.clear();
      return;
    }
    const seq = this.opts.events.lastSeq;
    const time = new Date().toISOString();
    for (const key of this.dirty) {
      const [namespace, name] = key.split('/') as [string, string];
      const found = this.opts.registry.getService(namespace, name);
      const blocked = found?.spec?.blocked;
      const message = stateMessage(
        { namespace, name },
        found && {
          instances: found.items,
          discoveryBlocked: blocked?.discovery === true ? blocked.reason : undefined,
        },
        seq,
        time,
      );
      this.enqueue({
        topic: stateTopic(this.opts.prefix, namespace, name),
        // An empty retained message clears the retained state: the service is gone.
        payload: message === undefined ? '' : JSON.stringify(message),
        retain: true,
      });
    }
    this.dirty.clear();
  }

  private enqueue(p: Publication): void {
    const dropped = this.queue.push(p);
    if (dropped > 0) {
      this.metrics.dropped.inc(dropped);
      this.noteDrop(() =>
        this.opts.logger.warn(
          {
            droppedTotal: this.queue.dropped,
            queued: this.queue.size,
            queuedBytes: this.queue.bytes,
            connected: this.connected,
          },
          'MQTT publish queue full: oldest messages dropped',
        ),
      );
    }
    this.drain();
  }

  private refused(p: Publication, err: Error): void {
    this.metrics.refused.inc();
    this.noteDrop(() =>
      this.opts.logger.warn(
        { topic: p.topic, error: err.message, refusedSinceLastLine: this.sinceLastLine },
        'MQTT broker refused a message (check its ACL for the bridge user)',
      ),
    );
  }

  /** Drop and refusal lines: the first at once, then at most one every 10 s (with the count). */
  private lastLine = 0;
  private sinceLastLine = 0;
  private noteDrop(log: () => void): void {
    this.sinceLastLine += 1;
    const now = Date.now();
    if (now - this.lastLine < 10_000) return;
    log();
    this.lastLine = now;
    this.sinceLastLine = 0;
  }

  private drain(): void {
    const client = this.client;
    if (client === undefined || !this.connected) return;
    while (this.inflight < this.opts.inflight) {
      const p = this.retry.shift() ?? this.queue.shift();
      if (p === undefined) return;
      this.inflight += 1;
      const kind = p.retain ? 'state' : 'event';
      client.publish(p.topic, p.payload, { qos: 1, retain: p.retain }, (err) => {
        this.inflight = Math.max(0, this.inflight - 1);
        if (err === undefined || err === null) this.metrics.published.inc({ kind });
        // Refused by the broker (its ACL, a quota): sending it again would be refused again.
        else if (typeof (err as { code?: unknown }).code === 'number') this.refused(p, err);
        // Not acknowledged (the connection closed): sent again after the reconnect.
        else this.retry.push(p);
        this.drain();
      });
    }
  }

  private clientOptions(): IClientOptions {
    const o = this.opts;
    return {
      clientId: o.clientId,
      protocolVersion: 5,
      clean: true,
      // The bridge retries itself, with back-off (mqtt.js only knows a fixed period).
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...(o.username !== undefined && { username: o.username }),
      ...(o.password !== undefined && { password: o.password }),
      ...(o.caFile !== undefined && { ca: readFileSync(o.caFile) }),
      ...(o.certFile !== undefined && { cert: readFileSync(o.certFile) }),
      ...(o.keyFile !== undefined && { key: readFileSync(o.keyFile) }),
      rejectUnauthorized: true,
      will: { topic: this.statusTopic(), payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(o.inbound !== undefined && {
        properties: { maximumPacketSize: o.inbound.maxPacketBytes },
      }),
    };
  }

  private connect(): void {
    if (this.stopped) return;
    const client = connect(this.opts.url, this.clientOptions());
    this.client = client;
    client.on('connect', () => this.onConnect(client));
    client.on('error', (err: Error & { code?: number | string }) => {
      this.lastError = describeError(err);
      this.opts.logger.error(
        { url: redactedUrl(this.opts.url), error: this.lastError, code: err.code },
        'MQTT bridge cannot reach its broker',
      );
    });
    client.on('close', () => this.onClose(client));
    if (this.opts.inbound !== undefined) {
      const inbound = this.opts.inbound;
      client.on('message', (_topic, _payload, packet) => inbound.handle(packet, client));
    }
  }

  private onConnect(client: MqttClient): void {
    this.connected = true;
    this.attempt = 0;
    this.lastError = undefined;
    this.opts.logger.info(
      { url: redactedUrl(this.opts.url), clientId: this.opts.clientId, queued: this.queue.size },
      'MQTT bridge connected',
    );
    client.publish(this.statusTopic(), 'online', { qos: 1, retain: true }, (err) => {
      if (err === undefined || err === null) this.metrics.published.inc({ kind: 'status' });
    });
    if (this.leads()) this.subscribeInbound(client);
    // A broker that lost its retained messages (restarted without persistence) gets every
    // service's state again; coalesced with whatever is queued for the same service.
    for (const ref of this.opts.registry.serviceRefs())
      this.dirty.add(`${ref.namespace}/${ref.name}`);
    this.flushStates();
  }

  private subscribeInbound(client: MqttClient): void {
    if (this.opts.inbound === undefined) return;
    client.subscribe(this.opts.inbound.filters, { qos: 1 }, (err) => {
      if (err)
        this.opts.logger.error({ error: err.message }, 'MQTT bridge cannot subscribe to inbound');
    });
  }

  private onClose(client: MqttClient): void {
    if (this.client !== client) return;
    const wasConnected = this.connected;
    this.connected = false;
    if (wasConnected)
      this.opts.logger.warn(
        { url: redactedUrl(this.opts.url), queued: this.queue.size },
        'MQTT bridge lost its broker; queueing',
      );
    if (this.stopped) return;
    const delay = backoffMs(
      this.attempt,
      this.opts.reconnectMinMs,
      this.opts.reconnectMaxMs,
      Math.random(),
    );
    this.attempt += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (this.stopped) return;
      // Keep the client's stores: mqtt.js resends the unacknowledged QoS-1 messages they hold
      // on connect (a plain reconnect() would start with empty stores and lose them).
      client.reconnect({
        incomingStore: client.incomingStore,
        outgoingStore: client.outgoingStore,
      });
    }, delay);
    this.reconnectTimer.unref();
  }
}

/** The URL without credentials, for logs. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparsable url)';
  }
}

/** A connection failure in words a person can act on. */
export function describeError(err: Error & { code?: number | string }): string {
  switch (err.code) {
    case 134:
    case 4:
      return 'the broker refused the user name or password (MQTT reason 0x86): check the user name and password';
    case 135:
    case 5:
      // mosquitto answers a wrong password with this one too
      return 'the broker refused the connection as not authorized (MQTT reason 0x87): check the user name and password, and the client id the broker allows';
    default:
      return err.message;
  }
}
