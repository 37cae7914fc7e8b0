/**
 * Inbound writes over MQTT (`--mqtt-inbound`): registrations, heartbeats and deregistrations
 * published to `{prefix}/{namespace}/{service}/{verb}/{broker user}`.
 *
 * Trust model (docs/security.md "MQTT inbound"): the operator cannot see who published a
 * message; MQTT does not carry the publisher's identity. The broker's ACL does: it lets each
 * user write only topics ending in its own user name (mosquitto: `pattern write
 * maxine/+/+/register/%u`). The last topic level therefore names the publisher, and the users
 * file maps it to the Maxine user whose MaxineACLs decide. A user missing from the file is
 * refused. Without that broker ACL anyone could write as anyone: the docs show it.
 *
 * Every payload is parsed with the same zod schemas as REST (common/wire.ts); answers (the
 * instance, or the catalog error) go to the MQTT 5 response topic when it is the caller's own
 * reply space `{prefix}/replies/{user}/...`, never elsewhere (the operator would otherwise
 * publish wherever a client asked, with its own rights).
 */
import { readFileSync } from 'node:fs';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { Counter } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { z } from 'zod';
import { MaxineError, validationError } from '../../common/errors.js';
import type { ErrorBody } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import {
  heartbeatRequestSchema,
  instanceIdSchema,
  registerRequestSchema,
} from '../../common/wire.js';
import { userPrincipal } from '../auth/authenticator.js';
import type { Principal } from '../auth/authenticator.js';
import type { AccessControl, Caller } from '../policy/access.js';
import type { Registry } from '../registry/registry.js';
import { refuseForeignId } from '../http/instances.js';
import { inboundFilters, parseInboundTopic } from './topics.js';
import type { InboundTopic } from './topics.js';

/** The users file: broker user name → the Maxine user (and groups) its messages act as. */
export const mqttUsersFileSchema = z.strictObject({
  users: z
    .record(
      z.string().min(1).max(256),
      z.strictObject({
        user: z.string().min(1).max(256),
        groups: z.array(z.string().min(1).max(256)).max(64).default([]),
      }),
    )
    .refine((u) => Object.keys(u).length <= 100_000, 'at most 100,000 users'),
});

export function loadMqttUsers(path: string): Map<string, Principal> {
  const parsed = mqttUsersFileSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw validationError(`MQTT users file ${path}`, parsed.error);
  const users = new Map<string, Principal>();
  for (const [brokerUser, who] of Object.entries(parsed.data.users))
    users.set(
      brokerUser,
      userPrincipal({ kind: 'User', name: who.user, groups: who.groups }, { kind: 'token' }),
    );
  return users;
}

export interface InboundOptions {
  prefix: string;
  users: ReadonlyMap<string, Principal>;
  registry: Registry;
  access: AccessControl;
  logger: Logger;
  prom: PromRegistry;
  /** Messages per second (all users together) and the largest payload. */
  ratePerSecond: number;
  /**
   * Messages per second from one broker user, so one flooding device cannot spend the others'
   * share; users missing from the users file share one allowance. Default: `ratePerSecond`.
   */
  userRatePerSecond?: number;
  maxBytes: number;
  now?: () => number;
}

const heartbeatMessageSchema = z.object({ id: instanceIdSchema }).passthrough();
const deregisterMessageSchema = z.strictObject({ id: instanceIdSchema });

/** A token bucket: `rate` per second, bursts up to `rate`. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** A log line that may repeat at message rate: the first at once, then one per 10 s with a count. */
class ThrottledLine {
  private last = -Infinity;
  private since = 0;
  constructor(private readonly now: () => number) {}

  note(log: (suppressed: number) => void): void {
    this.since += 1;
    const now = this.now();
    if (now - this.last < 10_000) return;
    log(this.since - 1);
    this.last = now;
    this.since = 0;
  }
}

/** The per-user allowance of broker users missing from the users file (they share one). */
const UNLISTED = '';

export class MqttInbound {
  readonly filters: string[];
  private readonly all: TokenBucket;
  /** One bucket per broker user of the users file (bounded by it), and one for the rest. */
  private readonly perUser = new Map<string, TokenBucket>();
  private readonly now: () => number;
  private readonly handled: Counter<'verb' | 'result'>;
  private readonly throttled: Counter<'scope'>;
  private readonly unknownTopicLine: ThrottledLine;
  private readonly throttledLine: ThrottledLine;

  constructor(private readonly opts: InboundOptions) {
    this.filters = inboundFilters(opts.prefix);
    this.now = opts.now ?? Date.now;
    this.all = new TokenBucket(opts.ratePerSecond, this.now());
    this.unknownTopicLine = new ThrottledLine(this.now);
    this.throttledLine = new ThrottledLine(this.now);
    this.handled = new Counter({
      name: 'maxine_mqtt_inbound_total',
      help: 'Inbound MQTT messages by verb and result (ok, or the error code)',
      labelNames: ['verb', 'result'] as const,
      registers: [opts.prom],
    });
    this.throttled = new Counter({
      name: 'maxine_mqtt_inbound_throttled_total',
      help: 'Inbound MQTT messages refused as RATE_LIMITED, by the allowance spent (user: one broker user, all: every user together)',
      labelNames: ['scope'] as const,
      registers: [opts.prom],
    });
    this.throttled.inc({ scope: 'user' }, 0);
    this.throttled.inc({ scope: 'all' }, 0);
  }

  /** Handles one message; never throws (a bad message is answered and counted). */
  handle(packet: IPublishPacket, client: MqttClient): void {
    const topic = parseInboundTopic(this.opts.prefix, packet.topic);
    if (topic === undefined) {
      this.handled.inc({ verb: 'unknown', result: 'UNKNOWN_TOPIC' });
      // A client can send these as fast as the broker takes them: not one line each.
      this.unknownTopicLine.note((suppressed) =>
        this.opts.logger.info(
          { topic: packet.topic.slice(0, 256), ignoredSinceLastLine: suppressed },
          'MQTT message on an unknown topic ignored',
        ),
      );
      return;
    }
    let answer: { instance?: unknown } | ErrorBody;
    try {
      answer = this.answer(topic, packet);
      this.handled.inc({ verb: topic.verb, result: 'ok' });
    } catch (err) {
      const e = err instanceof MaxineError ? err : new MaxineError('INTERNAL');
      if (!(err instanceof MaxineError))
        this.opts.logger.error({ err, topic: packet.topic }, 'MQTT inbound message failed');
      this.handled.inc({ verb: topic.verb, result: e.code });
      // Refusals past the rate are logged by admit(), in bounded lines; the rest are at most
      // as many as the rate lets through.
      if (e.code !== 'RATE_LIMITED')
        this.opts.logger.info(
          {
            verb: topic.verb,
            kind: 'MaxineService',
            namespace: topic.namespace,
            name: topic.service,
            brokerUser: topic.user,
            code: e.code,
          },
          'MQTT inbound message refused',
        );
      answer = e.toBody();
    }
    this.reply(topic, packet, client, answer);
  }

  private answer(topic: InboundTopic, packet: IPublishPacket): { instance?: unknown } {
    this.admit(topic.user);
    const payload = packet.payload;
    if (payload.length > this.opts.maxBytes)
      throw new MaxineError(
        'BODY_TOO_LARGE',
        `The message is larger than ${this.opts.maxBytes} bytes`,
      );
    const principal = this.opts.users.get(topic.user);
    if (principal === undefined)
      throw new MaxineError('FORBIDDEN', 'This broker user is not in the MQTT users file');
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new MaxineError('MALFORMED_JSON', 'The message is not valid JSON');
    }
    const caller: Caller = {
      principal,
      requestId: `mqtt-${packet.messageId ?? 0}-${this.now()}`,
      address: 'mqtt',
    };
    const service = { namespace: topic.namespace, name: topic.service };
    switch (topic.verb) {
      case 'register':
        return this.register(caller, service, body);
      case 'heartbeat':
        return this.heartbeat(caller, service, body);
      case 'deregister':
        return this.deregister(caller, service, body);
    }
  }

  private register(
    caller: Caller,
    service: { namespace: string; name: string },
    body: unknown,
  ): { instance: unknown } {
    // The topic names the service: the payload may repeat it, never name another.
    const withService =
      typeof body === 'object' && body !== null && !Array.isArray(body)
        ? { namespace: service.namespace, service: service.name, ...body }
        : body;
    const parsed = registerRequestSchema.safeParse(withService);
    if (!parsed.success) throw validationError('registration', parsed.error);
    if (parsed.data.namespace !== service.namespace || parsed.data.service !== service.name)
      throw new MaxineError(
        'VALIDATION_FAILED',
        'The message names another service than its topic',
      );
    const { instance } = this.opts.access.audited(caller, { action: 'register', service }, () => {
      this.opts.access.authorizeRegistration(caller, service, false);
      // The REST rule for explicit ids: no squatting another service's (or endpoint's) id.
      refuseForeignId(this.opts, caller, parsed.data);
      return this.opts.registry.register(parsed.data, caller.principal.who);
    });
    this.opts.logger.info(
      {
        instance: instance.id,
        kind: 'MaxineService',
        namespace: service.namespace,
        name: service.name,
        by: caller.principal.who,
      },
      'instance registered over MQTT',
    );
    return { instance };
  }

  private heartbeat(
    caller: Caller,
    service: { namespace: string; name: string },
    body: unknown,
  ): { instance: unknown } {
    const parsed = heartbeatMessageSchema.safeParse(body);
    if (!parsed.success) throw validationError('heartbeat', parsed.error);
    const { id, ...rest } = parsed.data;
    const hb = heartbeatRequestSchema.safeParse(rest);
    if (!hb.success) throw validationError('heartbeat', hb.error);
    // Authorized first: who may not write the service learns nothing of its instances.
    this.opts.access.authorizeRegistration(caller, service, false);
    this.sameService(id, service);
    return { instance: this.opts.registry.heartbeat(id, hb.data) };
  }

  private deregister(
    caller: Caller,
    service: { namespace: string; name: string },
    body: unknown,
  ): { instance: unknown } {
    const parsed = deregisterMessageSchema.safeParse(body);
    if (!parsed.success) throw validationError('deregistration', parsed.error);
    this.opts.access.audited(caller, { action: 'deregister', service }, () => {
      this.opts.access.authorizeRegistration(caller, service, false);
      this.sameService(parsed.data.id, service);
      this.opts.registry.deregister(parsed.data.id);
    });
    return { instance: { id: parsed.data.id } };
  }

  /** An instance of the topic's service; another service's is answered as unknown. */
  private sameService(id: string, service: { namespace: string; name: string }): void {
    const instance = this.opts.registry.getInstance(id);
    if (
      instance === undefined ||
      instance.service.namespace !== service.namespace ||
      instance.service.name !== service.name
    )
      throw new MaxineError(
        'INSTANCE_NOT_FOUND',
        `No instance ${id} in ${service.namespace}/${service.name}`,
      );
  }

  /** Spends the broker user's allowance, then everyone's; throws RATE_LIMITED when either is out. */
  private admit(user: string): void {
    const now = this.now();
    const key = this.opts.users.has(user) ? user : UNLISTED;
    let bucket = this.perUser.get(key);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.opts.userRatePerSecond ?? this.opts.ratePerSecond, now);
      this.perUser.set(key, bucket);
    }
    const scope = !bucket.take(now) ? 'user' : !this.all.take(now) ? 'all' : undefined;
    if (scope === undefined) return;
    this.throttled.inc({ scope });
    this.throttledLine.note((suppressed) =>
      this.opts.logger.warn(
        {
          brokerUser: user,
          scope,
          userRatePerSecond: this.opts.userRatePerSecond ?? this.opts.ratePerSecond,
          ratePerSecond: this.opts.ratePerSecond,
          throttledSinceLastLine: suppressed,
        },
        'MQTT inbound messages over their rate refused (RATE_LIMITED)',
      ),
    );
    throw new MaxineError(
      'RATE_LIMITED',
      scope === 'user'
        ? 'Too many inbound MQTT messages from this broker user'
        : 'Too many inbound MQTT messages',
    );
  }

  private reply(
    topic: InboundTopic,
    packet: IPublishPacket,
    client: MqttClient,
    answer: unknown,
  ): void {
    const responseTopic = packet.properties?.responseTopic;
    if (responseTopic === undefined) return;
    const own = `${this.opts.prefix}/replies/${topic.user}/`;
    if (!responseTopic.startsWith(own) || /[+#]/.test(responseTopic)) {
      this.handled.inc({ verb: topic.verb, result: 'REPLY_TOPIC_REFUSED' });
      return;
    }
    const correlationData = packet.properties?.correlationData;
    client.publish(
      responseTopic,
      JSON.stringify(answer),
      { qos: 1, ...(correlationData !== undefined && { properties: { correlationData } }) },
      () => undefined,
    );
  }
}
