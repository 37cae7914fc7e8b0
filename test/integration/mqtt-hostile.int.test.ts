/**
 * Inbound MQTT writes attacked as a hostile tenant would, against a real broker (Debian's
 * mosquitto, test/helpers/mosquitto.ts) and a real operator: malformed payloads of every kind,
 * topics that try to inject levels, wildcards or over-long names, floods of unknown topics,
 * and one user flooding while another keeps its share. Each refusal is answered on the
 * caller's reply topic where it has one (else counted and logged, in bounded lines), and the
 * registry never changes on a refusal.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { startMosquitto } from '../helpers/mosquitto.js';
import type { Mosquitto } from '../helpers/mosquitto.js';
import {
  CART_SERVICE_YAML,
  DEVICES_ACL_YAML,
  bridgeConnected,
  bridgeLogin,
  inboundConfig,
  metricSum,
  mqttClients,
  until,
  writeMqttUsers,
} from '../helpers/mqtt.js';
import { startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const USERS = {
  'maxine-operator': 'op-secret-1d2e',
  dev1: 'dev1-secret-7a7a',
  dev2: 'dev2-secret-8b8b',
  // A broker user whose ACL lets it write any user level (a misconfigured broker).
  wild: 'wild-secret-9c9c',
};

const ACL = `
user maxine-operator
topic readwrite maxine/#
topic readwrite flood/#

user wild
topic write maxine/+/+/register/+

pattern write maxine/+/+/register/%u
pattern write maxine/+/+/heartbeat/%u
pattern write maxine/+/+/deregister/%u
pattern read maxine/replies/%u/#
pattern write flood/+/+/register/%u
pattern read flood/replies/%u/#
`;

let broker: Mosquitto;
let op: TestOperator;
const { client, closeAll } = mqttClients(() => broker, USERS, { ignoreErrors: true });
const metricOf = (name: string, label = ''): Promise<number> => metricSum(op, name, label);

/** Publishes with a reply topic and waits for the answer. */
async function ask(
  c: MqttClient,
  user: string,
  topic: string,
  payload: string | Buffer,
  prefix = 'maxine',
): Promise<any> {
  const correlation = `c${Math.random()}`;
  const answer = new Promise<IPublishPacket>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${topic}`)), 10_000);
    const onMessage = (_t: string, _p: Buffer, packet: IPublishPacket): void => {
      if (packet.properties?.correlationData?.toString() !== correlation) return;
      clearTimeout(timer);
      c.off('message', onMessage);
      resolve(packet);
    };
    c.on('message', onMessage);
  });
  await c.publishAsync(topic, payload, {
    qos: 1,
    properties: {
      responseTopic: `${prefix}/replies/${user}/r`,
      correlationData: Buffer.from(correlation),
    },
  });
  return JSON.parse((await answer).payload.toString());
}

const total = (): number => op.operator.registry.stats().instances.total;

beforeAll(async () => {
  broker = await startMosquitto({ users: USERS, acl: ACL });
  const usersFile = await writeMqttUsers(broker, 'mqtt-users.json', {
    dev1: { user: 'device-1', groups: ['shop-devices'] },
    dev2: { user: 'device-2', groups: ['shop-devices'] },
  });
  op = await startOperator({
    files: { 'cart.yaml': CART_SERVICE_YAML, 'acl.yaml': DEVICES_ACL_YAML },
    config: {
      ...bridgeLogin(broker, USERS['maxine-operator']),
      ...inboundConfig(usersFile),
      podName: 'op-hostile',
      mqttInboundRate: 1000,
      mqttInboundUserRate: 1000,
    },
  });
  await until(() => bridgeConnected(op));
}, 30_000);

afterAll(async () => {
  await closeAll();
  await op?.stop();
  await broker?.destroy();
});

const REGISTER = 'maxine/shop/cart/register/dev1';
const HEARTBEAT = 'maxine/shop/cart/heartbeat/dev1';
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

describe('malformed payloads are answered with their error code and change nothing', () => {
  let dev1: MqttClient;
  beforeAll(async () => {
    dev1 = await client('dev1');
    await dev1.subscribeAsync('maxine/replies/dev1/#', { qos: 1 });
  });

  it.each<[string, string, string | Buffer, string]>([
    ['an empty payload', REGISTER, '', 'MALFORMED_JSON'],
    ['not JSON at all', REGISTER, 'hello, operator', 'MALFORMED_JSON'],
    ['binary garbage', REGISTER, Buffer.from([0x00, 0xff, 0x80, 0x7b]), 'MALFORMED_JSON'],
    ['a JSON array', REGISTER, '[{"host":"10.9.0.1","port":1}]', 'VALIDATION_FAILED'],
    ['JSON null', REGISTER, 'null', 'VALIDATION_FAILED'],
    ['a JSON string', REGISTER, '"10.9.0.1:1"', 'VALIDATION_FAILED'],
    ['a number past int64', REGISTER, '{"host":"10.9.0.1","port":1e400}', 'VALIDATION_FAILED'],
    [
      'a 40-digit port',
      REGISTER,
      '{"host":"10.9.0.1","port":1234567890123456789012345678901234567890}',
      'VALIDATION_FAILED',
    ],
    [
      'a huge TTL',
      REGISTER,
      '{"host":"10.9.0.1","port":1,"ttlSeconds":1e308}',
      'VALIDATION_FAILED',
    ],
    ['a fractional port', REGISTER, '{"host":"10.9.0.1","port":80.5}', 'VALIDATION_FAILED'],
    ['a port as a string', REGISTER, '{"host":"10.9.0.1","port":"80"}', 'VALIDATION_FAILED'],
    [
      'deep nesting in metadata',
      REGISTER,
      `{"host":"10.9.0.1","port":1,"metadata":{"a":${nested(5000)}}}`,
      'VALIDATION_FAILED',
    ],
    ['deep nesting as the whole payload', REGISTER, nested(7000), 'VALIDATION_FAILED'],
    [
      'a __proto__ key',
      REGISTER,
      '{"host":"10.9.0.1","port":1,"__proto__":{"admin":true}}',
      'VALIDATION_FAILED',
    ],
    [
      'a constructor key in metadata',
      REGISTER,
      '{"host":"10.9.0.1","port":1,"metadata":{"constructor":{"prototype":{"x":1}}}}',
      'VALIDATION_FAILED',
    ],
    [
      'a duplicate key whose last value is bad',
      REGISTER,
      '{"host":"10.9.0.1","port":1,"port":70000}',
      'VALIDATION_FAILED',
    ],
    [
      'another namespace in the payload',
      REGISTER,
      '{"namespace":"kube-system","host":"10.9.0.1","port":1}',
      'VALIDATION_FAILED',
    ],
    ['a heartbeat with deep nesting', HEARTBEAT, `{"id":${nested(5000)}}`, 'VALIDATION_FAILED'],
    ['a heartbeat with an object id', HEARTBEAT, '{"id":{"$ne":null}}', 'VALIDATION_FAILED'],
    [
      'a deregistration with extra fields',
      'maxine/shop/cart/deregister/dev1',
      '{"id":"cart-x","all":true}',
      'VALIDATION_FAILED',
    ],
  ])('%s', async (_name, topic, payload, code) => {
    const before = total();
    const answer = await ask(dev1, 'dev1', topic, payload);
    expect(answer.error.code).toBe(code);
    expect(total()).toBe(before);
    // The prototype of every object is untouched.
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('a payload over --mqtt-inbound-max-bytes is BODY_TOO_LARGE, also when deeply nested', async () => {
    const answer = await ask(dev1, 'dev1', REGISTER, nested(20_000));
    expect(answer.error.code).toBe('BODY_TOO_LARGE');
    expect(total()).toBe(0);
  });
});

describe('topics', () => {
  it('wildcards and NUL are refused by the broker and never reach the operator', async () => {
    const before = await metricOf('maxine_mqtt_inbound_total');
    for (const topic of [
      'maxine/shop/+/register/dev1',
      'maxine/shop/cart/register/#',
      'maxine/shop/cart/register/dev1\u0000',
    ]) {
      const c = await client('dev1');
      // The broker drops the connection: the publish is never acknowledged.
      await Promise.race([
        c
          .publishAsync(topic, JSON.stringify({ host: '10.9.1.1', port: 1 }), { qos: 1 })
          .catch(() => undefined),
        new Promise((r) => setTimeout(r, 1000)),
      ]);
      await c.endAsync(true).catch(() => undefined);
    }
    // A message after them is handled: the refused ones would have been seen before it.
    const dev1 = await client('dev1');
    await dev1.subscribeAsync('maxine/replies/dev1/#', { qos: 1 });
    await ask(dev1, 'dev1', HEARTBEAT, JSON.stringify({ id: 'nope' }));
    expect(await metricOf('maxine_mqtt_inbound_total')).toBe(before + 1);
    expect(total()).toBe(0);
  });

  it('an over-long user level is an unknown topic: counted, logged truncated, no registration', async () => {
    const wild = await client('wild');
    const before = await metricOf('maxine_mqtt_inbound_total', 'result="UNKNOWN_TOPIC"');
    const logsBefore = op.logs.length;
    await wild.publishAsync(
      `maxine/shop/cart/register/${'ü'.repeat(5000)}`,
      JSON.stringify({ host: '10.9.2.1', port: 1 }),
      { qos: 1 },
    );
    await until(
      async () =>
        (await metricOf('maxine_mqtt_inbound_total', 'result="UNKNOWN_TOPIC"')) === before + 1,
    );
    expect(total()).toBe(0);
    for (const line of op.logs.slice(logsBefore))
      expect(JSON.stringify(line).length).toBeLessThan(2048);
  });

  it('a flood on unknown topics is counted in full and logged in a bounded number of lines', async () => {
    const dev1 = await client('dev1');
    const before = await metricOf('maxine_mqtt_inbound_total', 'result="UNKNOWN_TOPIC"');
    const logsBefore = op.logs.length;
    for (let i = 0; i < 300; i++)
      dev1.publish(`maxine/Shop-${i}/cart/register/dev1`, '{}', { qos: 0 });
    await until(
      async () =>
        (await metricOf('maxine_mqtt_inbound_total', 'result="UNKNOWN_TOPIC"')) === before + 300,
    );
    const lines = op.logs
      .slice(logsBefore)
      .filter((l) => l.msg === 'MQTT message on an unknown topic ignored');
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(total()).toBe(0);
  });
});

describe('a flood from one broker user', () => {
  it("is refused past that user's rate while another user keeps its share", async () => {
    // An operator of its own (on a prefix of its own), with a per-user rate far below the total one.
    const usersFile = await writeMqttUsers(broker, 'mqtt-users-flood.json', {
      dev1: { user: 'device-1', groups: ['shop-devices'] },
      dev2: { user: 'device-2', groups: ['shop-devices'] },
    });
    const flood = await startOperator({
      files: { 'cart.yaml': CART_SERVICE_YAML, 'acl.yaml': DEVICES_ACL_YAML },
      config: {
        ...bridgeLogin(broker, USERS['maxine-operator']),
        ...inboundConfig(usersFile),
        podName: 'op-flood',
        mqttTopicPrefix: 'flood',
        mqttInboundRate: 20,
        mqttInboundUserRate: 3,
      },
    });
    const metric = (name: string, label: string): Promise<number> => metricSum(flood, name, label);
    try {
      await until(() => bridgeConnected(flood));
      const dev1 = await client('dev1');
      const answers: any[] = [];
      dev1.on('message', (_t, p) => answers.push(JSON.parse(p.toString())));
      await dev1.subscribeAsync('flood/replies/dev1/#', { qos: 1 });
      for (let i = 0; i < 40; i++)
        dev1.publish(
          'flood/shop/cart/register/dev1',
          JSON.stringify({ host: `10.9.3.${i}`, port: 1 }),
          { qos: 1, properties: { responseTopic: 'flood/replies/dev1/flood' } },
          () => undefined,
        );
      await until(() => answers.length >= 40);
      const ok = answers.filter((a) => a.instance !== undefined).length;
      expect(ok).toBeLessThanOrEqual(4);
      expect(answers.filter((a) => a.error?.code === 'RATE_LIMITED').length).toBe(40 - ok);
      expect(flood.operator.registry.instancesOf('shop', 'cart')).toHaveLength(ok);
      expect(await metric('maxine_mqtt_inbound_throttled_total', 'scope="user"')).toBe(40 - ok);
      // dev2 was quiet: its registration goes through.
      const dev2 = await client('dev2');
      await dev2.subscribeAsync('flood/replies/dev2/#', { qos: 1 });
      const mine = await ask(
        dev2,
        'dev2',
        'flood/shop/cart/register/dev2',
        JSON.stringify({ host: '10.9.4.1', port: 1 }),
        'flood',
      );
      expect(mine.instance).toMatchObject({ host: '10.9.4.1' });
      const warned = flood.logs.filter((l) => String(l.msg).startsWith('MQTT inbound messages'));
      expect(warned.length).toBeGreaterThanOrEqual(1);
      expect(warned.length).toBeLessThanOrEqual(2);
      expect(warned[0]).toMatchObject({ brokerUser: 'dev1', scope: 'user' });
      // Not one line per refused message.
      expect(
        flood.logs.filter(
          (l) => l.msg === 'MQTT inbound message refused' && l.code === 'RATE_LIMITED',
        ),
      ).toHaveLength(0);
    } finally {
      await flood.stop();
    }
  }, 30_000);
});

describe('oversized messages', () => {
  const huge = JSON.stringify({
    host: '10.9.5.1',
    port: 1,
    metadata: { a: 'x'.repeat(200_000) },
  });

  it('far past the bound, without a broker bound: the broker takes it, the operator never sees it, no answer', async () => {
    const dev1 = await client('dev1');
    await dev1.subscribeAsync('maxine/replies/dev1/#', { qos: 1 });
    const answers: IPublishPacket[] = [];
    dev1.on('message', (_t, _p, packet) => answers.push(packet));
    const before = await metricOf('maxine_mqtt_inbound_total');
    await dev1.publishAsync(REGISTER, huge, {
      qos: 1,
      properties: { responseTopic: 'maxine/replies/dev1/huge' },
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(answers).toHaveLength(0);
    expect(await metricOf('maxine_mqtt_inbound_total')).toBe(before);
    expect(total()).toBe(0);
  });

  it("with mosquitto's max_packet_size (the documented setting) it is refused at the device at once", async () => {
    // The documented broker setting (docs/events.md "Inbound writes").
    const bounded = await startMosquitto({
      users: USERS,
      acl: ACL,
      extraConfig: ['max_packet_size 65536'],
    });
    const devices = mqttClients(() => bounded, USERS, { ignoreErrors: true });
    try {
      const c = await devices.client('dev1');
      const outcome = await Promise.race([
        c.publishAsync(REGISTER, huge, { qos: 1 }).then(
          () => 'accepted',
          (err: Error) => `refused: ${err.message}`,
        ),
        new Promise<string>((r) => c.once('close', () => r('disconnected'))),
        new Promise<string>((r) => setTimeout(() => r('silence'), 5000).unref()),
      ]);
      expect(outcome).not.toBe('accepted');
      expect(outcome).not.toBe('silence');
      // A message within the bound still goes through.
      const ok = await devices.client('dev1');
      await ok.publishAsync(REGISTER, JSON.stringify({ host: '10.9.5.2', port: 1 }), { qos: 1 });
      await ok.endAsync(true);
      await c.endAsync(true);
    } finally {
      await devices.closeAll();
      await bounded.destroy();
    }
  }, 30_000);
});
