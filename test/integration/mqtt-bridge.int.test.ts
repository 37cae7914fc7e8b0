/**
 * The MQTT bridge against a real broker (Debian's mosquitto with a password file, an ACL file
 * and a TLS listener, test/helpers/mosquitto.ts) and a real client (the `mqtt` package):
 * topics and envelopes, the retained state for a late subscriber, clear errors for a wrong
 * password or CA (and a registry that keeps working), a broker restart survived with the
 * bounded queue drained and the drops counted, the last will on kill -9, and inbound writes
 * checked by the REST schemas and MaxineACLs.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { registryEventSchema } from '../../common/wire.js';
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
import { api, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';
import { spawnListening } from '../helpers/spawn.js';
import { Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { MqttBridge } from '../../operator/mqtt/bridge.js';

const USERS = {
  'maxine-operator': 'op-secret-7c1e',
  tester: 'tester-secret-91aa',
  dev1: 'dev1-secret-3b2f',
  dev2: 'dev2-secret-44d0',
  dev3: 'dev3-secret-5e61',
};

// The trust model of docs/security.md: each device writes only topics ending in its own name.
const ACL = `
user maxine-operator
topic readwrite maxine/#

user tester
topic read maxine/#
topic write maxine/+/+/register/dev2

pattern write maxine/+/+/register/%u
pattern write maxine/+/+/heartbeat/%u
pattern write maxine/+/+/deregister/%u
pattern read maxine/replies/%u/#
pattern read maxine/+/+/state
`;

let broker: Mosquitto;
const { client, closeAll } = mqttClients(() => broker, USERS);

beforeAll(async () => {
  broker = await startMosquitto({ users: USERS, acl: ACL });
}, 30_000);

afterAll(async () => {
  await closeAll();
  await broker.destroy();
});

/** Collects what a client receives, and waits for what a test expects. */
function inbox(c: MqttClient): {
  messages: IPublishPacket[];
  waitFor(pred: (p: IPublishPacket) => boolean, ms?: number): Promise<IPublishPacket>;
} {
  const messages: IPublishPacket[] = [];
  const waiters: { pred: (p: IPublishPacket) => boolean; resolve: (p: IPublishPacket) => void }[] =
    [];
  c.on('message', (_t, _p, packet) => {
    messages.push(packet);
    for (const w of [...waiters]) {
      if (w.pred(packet)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(packet);
      }
    }
  });
  return {
    messages,
    waitFor(pred, ms = 10_000) {
      const seen = messages.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no such MQTT message in time')), ms);
        waiters.push({
          pred,
          resolve: (p) => {
            clearTimeout(timer);
            resolve(p);
          },
        });
      });
    },
  };
}

function bridgeConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...bridgeLogin(broker, USERS['maxine-operator']),
    mqttReconnectMinMs: 50,
    mqttReconnectMaxMs: 300,
    mqttStateCoalesceMs: 20,
    podName: 'op-test',
    ...extra,
  };
}

async function metric(op: TestOperator, name: string): Promise<number> {
  const text = await (await fetch(`${op.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? NaN : Number(line.split(' ').pop());
}

const json = (p: IPublishPacket): any => JSON.parse(p.payload.toString());

describe('events and retained state', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({ files: { 'cart.yaml': CART_SERVICE_YAML }, config: bridgeConfig() });
    await until(() => op.operator.registry !== undefined && bridgeConnected(op));
  }, 30_000);
  afterAll(() => op.stop());

  it('publishes each event on maxine/{namespace}/{service}/{type} with the stream envelope, QoS 1', async () => {
    const sub = await client('tester');
    const box = inbox(sub);
    await sub.subscribeAsync('maxine/shop/cart/+', { qos: 1 });
    const reg = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'cart',
      namespace: 'shop',
      host: '10.0.0.1',
      port: 8080,
    });
    expect(reg.status).toBe(201);
    const got = await box.waitFor((p) => p.topic === 'maxine/shop/cart/service_registered');
    expect(got.qos).toBe(1);
    const event = registryEventSchema.parse(json(got));
    expect(event).toMatchObject({
      type: 'service_registered',
      service: { namespace: 'shop', name: 'cart' },
      instance: { id: reg.body.instance.id, host: '10.0.0.1', port: 8080 },
    });
    // The same bytes a WebSocket subscriber gets: the event log's one serialization.
    const logged = op.operator.events.since(event.seq - 1)?.[0];
    expect(got.payload.toString()).toBe(JSON.stringify(logged));
  });

  it('keeps a retained state of the healthy instances for a late subscriber, cleared when the service goes', async () => {
    await api(op.url, 'POST', '/api/v1/instances', {
      service: 'cart',
      namespace: 'shop',
      host: '10.0.0.2',
      port: 8080,
    });
    // A subscriber that connects after the fact gets the state at once.
    await until(async () => {
      const late = await client('tester');
      const box = inbox(late);
      await late.subscribeAsync('maxine/shop/cart/state', { qos: 1 });
      const p = await box.waitFor(() => true, 2000).catch(() => undefined);
      await late.endAsync();
      return p !== undefined && p.retain && json(p).instances.length === 2;
    });
    const late = await client('tester');
    const box = inbox(late);
    await late.subscribeAsync('maxine/shop/cart/state', { qos: 1 });
    const state = json(await box.waitFor(() => true));
    expect(state.service).toEqual({ namespace: 'shop', name: 'cart' });
    expect(state.instances.map((i: { host: string }) => i.host).sort()).toEqual([
      '10.0.0.1',
      '10.0.0.2',
    ]);
    expect(state.instances[0]).toMatchObject({ health: 'passing', port: 8080 });
    // The service goes away (its MaxineService deleted, its instances deregistered): the
    // retained state is cleared.
    await unlink(join(op.dir, 'cart.yaml'));
    for (const i of op.operator.registry.instancesOf('shop', 'cart'))
      expect((await api(op.url, 'DELETE', `/api/v1/instances/${i.id}`)).status).toBe(204);
    await until(() => op.operator.registry.counts('shop', 'cart') === undefined);
    const cleared = await box.waitFor((p) => p.payload.length === 0);
    expect(cleared.topic).toBe('maxine/shop/cart/state');
    const later = await client('tester');
    const laterBox = inbox(later);
    await later.subscribeAsync('maxine/shop/cart/state', { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(laterBox.messages).toHaveLength(0);
  });

  it('says online on its retained status topic and counts what it published', async () => {
    const sub = await client('tester');
    const box = inbox(sub);
    await sub.subscribeAsync('maxine/bridge/+/status', { qos: 1 });
    const status = await box.waitFor((p) => p.topic === 'maxine/bridge/op-test/status');
    expect(status.payload.toString()).toBe('online');
    expect(await metric(op, 'maxine_mqtt_connected')).toBe(1);
    expect(await metric(op, 'maxine_mqtt_published_total')).toBeGreaterThan(0);
  });
});

describe('several replicas', () => {
  let op: TestOperator;
  beforeAll(async () => {
    op = await startOperator({ files: { 'cart.yaml': CART_SERVICE_YAML }, config: bridgeConfig() });
    await until(() => bridgeConnected(op));
  }, 30_000);
  afterAll(() => op.stop());

  it('publishes only while its replica leads, and sends every state when it starts leading', async () => {
    // A follower replica's bridge over the same registry and log, on its own prefix so that
    // what it publishes is told apart from the leading operator's own bridge.
    let leading = false;
    const follower = new MqttBridge({
      url: broker.url,
      username: 'maxine-operator',
      password: USERS['maxine-operator'],
      clientId: 'maxine-follower-test',
      operatorId: 'follower',
      prefix: 'maxine/ha',
      queue: { messages: 100, bytes: 1 << 20 },
      inflight: 10,
      reconnectMinMs: 50,
      reconnectMaxMs: 300,
      stateCoalesceMs: 20,
      events: op.operator.events,
      registry: op.operator.registry,
      logger: createLogger('silent'),
      prom: new PromRegistry(),
      isLeader: () => leading,
    });
    follower.start();
    try {
      await until(() => follower.status().connected);
      const sub = await client('tester');
      const box = inbox(sub);
      await sub.subscribeAsync('maxine/ha/#', { qos: 1 });
      const reg = await api(op.url, 'POST', '/api/v1/instances', {
        service: 'cart',
        namespace: 'shop',
        host: '10.0.9.1',
        port: 8080,
      });
      expect(reg.status).toBe(201);
      // The leading operator's bridge published it; the follower's did not.
      await new Promise((r) => setTimeout(r, 500));
      expect(box.messages.filter((m) => m.topic.startsWith('maxine/ha/shop/'))).toHaveLength(0);
      // Leading now: every service's state at once, then the events.
      leading = true;
      follower.leadershipChanged(true);
      const state = await box.waitFor((p) => p.topic === 'maxine/ha/shop/cart/state');
      expect(json(state).instances.map((i: { host: string }) => i.host)).toContain('10.0.9.1');
      await api(op.url, 'DELETE', `/api/v1/instances/${reg.body.instance.id}`);
      await box.waitFor((p) => p.topic === 'maxine/ha/shop/cart/service_deregistered');
    } finally {
      await follower.stop();
    }
  });
});

async function readyz(op: TestOperator): Promise<{ status: number; body: any }> {
  const r = await fetch(`${op.url}/readyz`);
  return { status: r.status, body: await r.json() };
}

describe('connection failures are clear and harmless', () => {
  it.each([
    [
      'a wrong password',
      () => bridgeConfig({ mqttPassword: 'not-the-password' }),
      /check the user name and password/,
    ],
    [
      'a CA that did not sign the broker',
      () => bridgeConfig({ mqttUrl: broker.tlsUrl, mqttCaFile: broker.otherCaFile }),
      /certificate/,
    ],
  ])(
    '%s: readiness and metrics say the bridge is down, the registry works',
    async (_n, config, error) => {
      const op = await startOperator({ config: config() });
      try {
        await until(() => op.logs.some((l) => l.msg === 'MQTT bridge cannot reach its broker'));
        const logged = op.logs.find((l) => l.msg === 'MQTT bridge cannot reach its broker');
        expect(String(logged?.error)).toMatch(error);
        const ready = await readyz(op);
        expect(ready.status).toBe(200);
        expect(ready.body.mqtt.connected).toBe(false);
        expect(ready.body.mqtt.lastError).toMatch(error);
        expect(await metric(op, 'maxine_mqtt_connected')).toBe(0);
        const reg = await api(op.url, 'POST', '/api/v1/instances', {
          service: 'a',
          host: '10.0.0.9',
          port: 1,
        });
        expect(reg.status).toBe(201);
        // The password is never in a log line.
        expect(JSON.stringify(op.logs)).not.toContain('not-the-password');
        expect(JSON.stringify(op.logs)).not.toContain(USERS['maxine-operator']);
      } finally {
        await op.stop();
      }
    },
  );

  it('counts what the broker refuses (its ACL) and does not send it again', async () => {
    const op = await startOperator({
      config: bridgeConfig({ mqttTopicPrefix: 'not-ours', podName: 'op-refused' }),
    });
    try {
      await until(() => bridgeConnected(op));
      const seqBefore = op.operator.events.lastSeq;
      const reg = await api(op.url, 'POST', '/api/v1/instances', {
        service: 'refused',
        host: '10.6.0.1',
        port: 1,
      });
      expect(reg.status).toBe(201);
      // The events and the service's state: each refused, none retried in a loop.
      const expected = op.operator.events.lastSeq - seqBefore + 1;
      await until(async () => (await metric(op, 'maxine_mqtt_refused_total')) >= expected);
      await new Promise((r) => setTimeout(r, 300));
      const settled = await metric(op, 'maxine_mqtt_refused_total');
      await new Promise((r) => setTimeout(r, 500));
      expect(await metric(op, 'maxine_mqtt_refused_total')).toBe(settled);
      expect(settled).toBeLessThanOrEqual(expected + 1);
      expect(await metric(op, 'maxine_mqtt_queued')).toBe(0);
      expect(op.logs.some((l) => String(l.msg).startsWith('MQTT broker refused a message'))).toBe(
        true,
      );
    } finally {
      await op.stop();
    }
  });

  it('connects over TLS with the right CA and a password file, and says offline on a clean stop', async () => {
    const passwordFile = join(broker.dir, 'operator-password');
    await writeFile(passwordFile, `${USERS['maxine-operator']}\n`);
    const sub = await client('tester');
    const box = inbox(sub);
    await sub.subscribeAsync('maxine/bridge/op-tls/status', { qos: 1 });
    const op = await startOperator({
      config: bridgeConfig({
        mqttUrl: broker.tlsUrl,
        mqttCaFile: broker.caFile,
        mqttPassword: undefined,
        mqttPasswordFile: passwordFile,
        podName: 'op-tls',
      }),
    });
    try {
      await until(() => bridgeConnected(op));
      await box.waitFor((p) => p.payload.toString() === 'online');
    } finally {
      await op.stop();
    }
    await box.waitFor((p) => p.payload.toString() === 'offline');
  });
});

describe('broker restart', () => {
  it('reconnects, drains the bounded queue and counts what it dropped past the bound', async () => {
    const op = await startOperator({
      // One state message for the whole burst: with the usual 20 ms a slow machine can flush a
      // state mid-burst, which later events push out of the queue (one more drop).
      config: bridgeConfig({
        mqttQueueMessages: 5,
        mqttStateCoalesceMs: 3000,
        podName: 'op-restart',
      }),
    });
    try {
      await until(() => bridgeConnected(op));
      // A persistent session: what is published while it reconnects waits for it at the broker.
      const sub = await client('tester', {
        clientId: 'tester-persistent',
        clean: false,
        properties: { sessionExpiryInterval: 300 },
        reconnectPeriod: 100,
      });
      const box = inbox(sub);
      await sub.subscribeAsync('maxine/default/burst/service_registered', { qos: 1 });
      await broker.stop('SIGTERM');
      await until(async () => (await metric(op, 'maxine_mqtt_connected')) === 0);
      const seqBefore = op.operator.events.lastSeq;
      for (let i = 1; i <= 8; i++) {
        const r = await api(op.url, 'POST', '/api/v1/instances', {
          service: 'burst',
          host: `10.1.0.${i}`,
          port: 80,
        });
        expect(r.status).toBe(201);
      }
      // The events (8 registrations and the undeclared service's creation) and the service's
      // state (coalesced into one) in a queue of 5: the oldest go.
      const emitted = op.operator.events.lastSeq - seqBefore;
      expect(emitted).toBeGreaterThanOrEqual(8);
      // The state message is coalesced (3 s) after the events: the queue is full of events
      // before it comes and pushes out one more.
      await until(async () => (await metric(op, 'maxine_mqtt_queued')) === 5);
      await until(
        async () => (await metric(op, 'maxine_mqtt_dropped_total')) >= emitted + 1 - 5,
      ).catch(() => undefined);
      expect(await metric(op, 'maxine_mqtt_dropped_total')).toBe(emitted + 1 - 5);
      expect(
        op.logs.some((l) => l.msg === 'MQTT publish queue full: oldest messages dropped'),
      ).toBe(true);
      await broker.start();
      await until(() => bridgeConnected(op), 15_000);
      // The newest 4 events arrive, in order; the dropped oldest do not.
      await until(() => box.messages.length >= 4, 15_000);
      const hosts = box.messages.map((p) => json(p).instance.host);
      expect(hosts).toEqual(['10.1.0.5', '10.1.0.6', '10.1.0.7', '10.1.0.8']);
      await until(async () => (await metric(op, 'maxine_mqtt_queued')) === 0);
    } finally {
      // Whatever happened, the broker runs for the tests after this one.
      const proc = broker.proc();
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null)
        await broker.start();
      await op.stop();
    }
  }, 60_000);
});

describe('broker killed with messages in flight', () => {
  it('sends again what the broker never acknowledged, once it is back', async () => {
    // The bridge waits 2 s before reconnecting: the test's subscriber is back (and subscribed
    // again) first, so what it receives is what the bridge sent after the restart.
    const op = await startOperator({
      config: bridgeConfig({
        mqttReconnectMinMs: 2000,
        mqttReconnectMaxMs: 2000,
        podName: 'op-inflight',
      }),
    });
    try {
      await until(() => bridgeConnected(op));
      const sub = await client('tester', { reconnectPeriod: 100 });
      const box = inbox(sub);
      await sub.subscribeAsync('maxine/default/inflight/service_registered', { qos: 1 });
      // A frozen broker never takes the messages off the socket: they stay in flight.
      broker.proc()?.kill('SIGSTOP');
      for (let i = 1; i <= 3; i++) {
        const r = await api(op.url, 'POST', '/api/v1/instances', {
          service: 'inflight',
          host: `10.3.0.${i}`,
          port: 80,
        });
        expect(r.status).toBe(201);
      }
      await until(async () => (await metric(op, 'maxine_mqtt_queued')) === 0);
      await broker.stop('SIGKILL');
      await until(async () => (await metric(op, 'maxine_mqtt_connected')) === 0);
      await broker.start();
      await until(() => sub.connected);
      await until(() => box.messages.length >= 3, 15_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(box.messages.map((p) => json(p).instance.host)).toEqual([
        '10.3.0.1',
        '10.3.0.2',
        '10.3.0.3',
      ]);
      expect(await metric(op, 'maxine_mqtt_dropped_total')).toBe(0);
    } finally {
      // Whatever happened, the broker runs for the tests after this one.
      const proc = broker.proc();
      if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGCONT');
      } else {
        await broker.start();
      }
      await op.stop();
    }
  }, 60_000);
});

describe('last will', () => {
  it('announces the bridge offline (retained) when the operator dies with kill -9', async () => {
    const sub = await client('tester');
    const box = inbox(sub);
    await sub.subscribeAsync('maxine/bridge/op-kill9/status', { qos: 1 });
    const { proc, lines } = await spawnListening(
      [
        '--import',
        'tsx',
        'operator/main.ts',
        '--port',
        '0',
        '--pod-name',
        'op-kill9',
        '--mqtt-url',
        broker.url,
        '--mqtt-username',
        'maxine-operator',
      ],
      { env: { ...process.env, MAXINE_MQTT_PASSWORD: USERS['maxine-operator'] } },
    );
    try {
      await box.waitFor((p) => p.payload.toString() === 'online', 15_000);
      proc.kill('SIGKILL');
      const will = await box.waitFor((p) => p.payload.toString() === 'offline', 15_000);
      expect(will.topic).toBe('maxine/bridge/op-kill9/status');
      // Retained: a later subscriber learns it too.
      const later = await client('tester');
      const laterBox = inbox(later);
      await later.subscribeAsync('maxine/bridge/op-kill9/status', { qos: 1 });
      const seen = await laterBox.waitFor(() => true);
      expect(seen.retain).toBe(true);
      expect(seen.payload.toString()).toBe('offline');
      expect(JSON.stringify(lines)).not.toContain(USERS['maxine-operator']);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  }, 60_000);
});

describe('inbound writes', () => {
  let op: TestOperator;
  let dev1: MqttClient;
  let replies: ReturnType<typeof inbox>;
  let n = 0;

  beforeAll(async () => {
    const usersFile = await writeMqttUsers(broker, 'mqtt-users.json', {
      dev1: { user: 'device-1', groups: ['shop-devices'] },
      dev2: { user: 'device-2' },
    });
    op = await startOperator({
      files: { 'cart.yaml': CART_SERVICE_YAML, 'acl.yaml': DEVICES_ACL_YAML },
      config: bridgeConfig({
        ...inboundConfig(usersFile),
        mqttInboundMaxBytes: 2048,
      }),
    });
    await until(() => bridgeConnected(op));
    dev1 = await client('dev1');
    replies = inbox(dev1);
    await dev1.subscribeAsync('maxine/replies/dev1/#', { qos: 1 });
  }, 30_000);
  afterAll(() => op.stop());

  async function ask(
    c: MqttClient,
    topic: string,
    payload: string | Buffer,
    user = 'dev1',
  ): Promise<any> {
    const correlation = `c${++n}`;
    const box = c === dev1 ? replies : inbox(c);
    if (c !== dev1) await c.subscribeAsync(`maxine/replies/${user}/#`, { qos: 1 });
    await c.publishAsync(topic, payload, {
      qos: 1,
      properties: {
        responseTopic: `maxine/replies/${user}/r`,
        correlationData: Buffer.from(correlation),
      },
    });
    const p = await box.waitFor((m) => m.properties?.correlationData?.toString() === correlation);
    return json(p);
  }

  const instances = (): number => op.operator.registry.instancesOf('shop', 'cart').length;

  it('registers, heartbeats and deregisters with answers on the response topic', async () => {
    const reg = await ask(
      dev1,
      'maxine/shop/cart/register/dev1',
      JSON.stringify({ host: '10.2.0.1', port: 9000 }),
    );
    expect(reg.instance).toMatchObject({
      service: { namespace: 'shop', name: 'cart' },
      host: '10.2.0.1',
      port: 9000,
    });
    const id = reg.instance.id as string;
    expect(op.operator.registry.getInstance(id)).toBeDefined();
    const hb = await ask(
      dev1,
      'maxine/shop/cart/heartbeat/dev1',
      JSON.stringify({ id, status: 'warning' }),
    );
    expect(hb.instance.health.status).toBe('warning');
    const gone = await ask(dev1, 'maxine/shop/cart/deregister/dev1', JSON.stringify({ id }));
    expect(gone.instance.id).toBe(id);
    expect(op.operator.registry.getInstance(id)).toBeUndefined();
  });

  it.each([
    ['malformed JSON', 'maxine/shop/cart/register/dev1', '{"host": ', 'MALFORMED_JSON'],
    [
      'a schema violation',
      'maxine/shop/cart/register/dev1',
      JSON.stringify({ host: '10.2.0.1', port: 70000 }),
      'VALIDATION_FAILED',
    ],
    [
      'an unknown field',
      'maxine/shop/cart/register/dev1',
      JSON.stringify({ host: '10.2.0.1', port: 1, admin: true }),
      'VALIDATION_FAILED',
    ],
    [
      'another service in the payload',
      'maxine/shop/cart/register/dev1',
      JSON.stringify({ service: 'ledger', host: '10.2.0.1', port: 1 }),
      'VALIDATION_FAILED',
    ],
    [
      'an oversized message',
      'maxine/shop/cart/register/dev1',
      JSON.stringify({ host: '10.2.0.1', port: 1, metadata: { a: 'x'.repeat(3000) } }),
      'BODY_TOO_LARGE',
    ],
    [
      "another endpoint's computed id",
      'maxine/shop/cart/register/dev1',
      JSON.stringify({ id: 'cart-0123456789abcdef', host: '10.2.0.1', port: 1 }),
      'VALIDATION_FAILED',
    ],
    [
      'a heartbeat of an unknown instance',
      'maxine/shop/cart/heartbeat/dev1',
      JSON.stringify({ id: 'nope' }),
      'INSTANCE_NOT_FOUND',
    ],
    [
      'a bad health status',
      'maxine/shop/cart/heartbeat/dev1',
      JSON.stringify({ id: 'nope', status: 'great' }),
      'VALIDATION_FAILED',
    ],
    [
      'a service the ACL does not grant',
      'maxine/shop/orders/register/dev1',
      JSON.stringify({ host: '10.2.0.1', port: 1 }),
      'FORBIDDEN',
    ],
  ])(
    '%s is answered on the reply topic with its error code, and changes nothing',
    async (_name, topic, payload, code) => {
      const before = op.operator.registry.stats().instances.total;
      const answer = await ask(dev1, topic, payload);
      expect(answer.error.code).toBe(code);
      expect(op.operator.registry.stats().instances.total).toBe(before);
    },
  );

  it('never receives a message far past the size bound (the broker holds it back)', async () => {
    const before = await metricSum(op, 'maxine_mqtt_inbound_total');
    const huge = JSON.stringify({
      host: '10.2.0.6',
      port: 1,
      metadata: { a: 'x'.repeat(200_000) },
    });
    await dev1.publishAsync('maxine/shop/cart/register/dev1', huge, { qos: 1 });
    // A message after it is answered: the huge one would have been handled first.
    await ask(dev1, 'maxine/shop/cart/heartbeat/dev1', JSON.stringify({ id: 'nope' }));
    expect(await metricSum(op, 'maxine_mqtt_inbound_total')).toBe(before + 1);
    expect(op.operator.registry.stats().instances.total).toBe(0);
  });

  it('ignores and counts a message on a topic that is not one of ours', async () => {
    const before = await metricSum(op, 'maxine_mqtt_inbound_total', 'result="UNKNOWN_TOPIC"');
    await dev1.publishAsync(
      'maxine/Shop/cart/register/dev1',
      JSON.stringify({ host: '10.2.0.5', port: 1 }),
      { qos: 1 },
    );
    await until(
      async () =>
        (await metricSum(op, 'maxine_mqtt_inbound_total', 'result="UNKNOWN_TOPIC"')) === before + 1,
    );
    expect(op.operator.registry.stats().instances.total).toBe(0);
  });

  it("answers only under the caller's own reply topics, never where a client asks", async () => {
    const watcher = await client('tester');
    const watched = inbox(watcher);
    await watcher.subscribeAsync('maxine/shop/cart/forged', { qos: 1 });
    await dev1.publishAsync('maxine/shop/cart/register/dev1', '{"not json', {
      qos: 1,
      properties: { responseTopic: 'maxine/shop/cart/forged' },
    });
    await until(
      async () =>
        (await metricSum(op, 'maxine_mqtt_inbound_total', 'result="REPLY_TOPIC_REFUSED"')) === 1,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(watched.messages).toHaveLength(0);
  });

  it('refuses a broker user without ACL rights, and one missing from the users file', async () => {
    const dev2 = await client('dev2');
    expect(
      (
        await ask(
          dev2,
          'maxine/shop/cart/register/dev2',
          JSON.stringify({ host: '10.2.0.2', port: 1 }),
          'dev2',
        )
      ).error.code,
    ).toBe('FORBIDDEN');
    const dev3 = await client('dev3');
    const refused = await ask(
      dev3,
      'maxine/shop/cart/register/dev3',
      JSON.stringify({ host: '10.2.0.3', port: 1 }),
      'dev3',
    );
    expect(refused.error).toMatchObject({
      code: 'FORBIDDEN',
      message: expect.stringMatching(/users file/),
    });
    expect(instances()).toBe(0);
  });

  it("never sees a write a user makes in another user's name (the broker ACL refuses it)", async () => {
    const before = await metricSum(op, 'maxine_mqtt_inbound_total');
    await dev1
      .publishAsync(
        'maxine/shop/cart/register/dev2',
        JSON.stringify({ host: '10.2.0.4', port: 1 }),
        { qos: 1 },
      )
      .catch(() => undefined);
    // A write the ACL allows, after it: once its answer is back, the refused one would have been seen.
    await ask(dev1, 'maxine/shop/cart/heartbeat/dev1', JSON.stringify({ id: 'nope' }));
    expect(instances()).toBe(0);
    expect(op.operator.registry.stats().instances.total).toBe(0);
    // Only the heartbeat reached the operator.
    expect(await metricSum(op, 'maxine_mqtt_inbound_total')).toBe(before + 1);
  });
});

describe('inbound bounds', () => {
  it('with two operators, each message is handled and answered by one of them (shared subscription)', async () => {
    const usersFile = await writeMqttUsers(broker, 'mqtt-users-share.json', {
      dev1: { user: 'device-1', groups: ['shop-devices'] },
    });
    const config = (podName: string) =>
      bridgeConfig({
        ...inboundConfig(usersFile),
        podName,
      });
    const files = { 'cart.yaml': CART_SERVICE_YAML, 'acl.yaml': DEVICES_ACL_YAML };
    const a = await startOperator({ files, config: config('op-a') });
    const b = await startOperator({ files, config: config('op-b') });
    try {
      await until(async () => (await bridgeConnected(a)) && (await bridgeConnected(b)));
      const dev = await client('dev1');
      const box = inbox(dev);
      await dev.subscribeAsync('maxine/replies/dev1/#', { qos: 1 });
      for (let i = 1; i <= 6; i++) {
        await dev.publishAsync(
          'maxine/shop/cart/register/dev1',
          JSON.stringify({ host: `10.5.0.${i}`, port: 1 }),
          { qos: 1, properties: { responseTopic: 'maxine/replies/dev1/share' } },
        );
      }
      await until(() => box.messages.length >= 6);
      await new Promise((r) => setTimeout(r, 300));
      expect(box.messages).toHaveLength(6);
      const handled =
        (await metricSum(a, 'maxine_mqtt_inbound_total')) +
        (await metricSum(b, 'maxine_mqtt_inbound_total'));
      expect(handled).toBe(6);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('refuses past the inbound rate, with RATE_LIMITED on the reply topic', async () => {
    const usersFile = await writeMqttUsers(broker, 'mqtt-users-rate.json', {
      dev1: { user: 'device-1', groups: ['shop-devices'] },
    });
    const op = await startOperator({
      files: { 'cart.yaml': CART_SERVICE_YAML, 'acl.yaml': DEVICES_ACL_YAML },
      config: bridgeConfig({
        ...inboundConfig(usersFile),
        mqttInboundRate: 1,
        podName: 'op-rate',
      }),
    });
    try {
      await until(() => bridgeConnected(op));
      const dev = await client('dev1');
      const box = inbox(dev);
      await dev.subscribeAsync('maxine/replies/dev1/#', { qos: 1 });
      for (let i = 1; i <= 5; i++) {
        await dev.publishAsync(
          'maxine/shop/cart/register/dev1',
          JSON.stringify({ host: `10.4.0.${i}`, port: 1 }),
          {
            qos: 1,
            properties: {
              responseTopic: 'maxine/replies/dev1/rate',
              correlationData: Buffer.from(String(i)),
            },
          },
        );
      }
      await until(() => box.messages.length >= 5);
      const codes = box.messages.map((p) => json(p).error?.code ?? 'ok');
      expect(codes.filter((c) => c === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(3);
      expect(op.operator.registry.instancesOf('shop', 'cart')).toHaveLength(
        codes.filter((c) => c === 'ok').length,
      );
      expect(await metricSum(op, 'maxine_mqtt_inbound_total', 'result="RATE_LIMITED"')).toBe(
        codes.filter((c) => c === 'RATE_LIMITED').length,
      );
    } finally {
      await op.stop();
    }
  });
});
