/**
 * What the MQTT bridge's tests share around a test broker (test/helpers/mosquitto.ts): the
 * broker users' clients (closed together at the end), the operator's settings for the bridge
 * and its inbound writes, the users file that maps broker users to Maxine users, the bridge's
 * connection as /readyz tells it, a metric's sum, and the resources of the `shop/cart` tests.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Mosquitto } from './mosquitto.js';
import { eventually } from './operator.js';
import type { TestOperator } from './operator.js';

/** The broker user the operator's bridge logs in as (its ACL lines are the test's). */
export const OPERATOR_USER = 'maxine-operator';

/**
 * Connects broker users (MQTT 5, no reconnect) to `broker()` with their passwords from `users`,
 * and closes them all at once. `ignoreErrors` gives each client an `error` listener, for tests
 * whose clients are refused on purpose.
 */
export function mqttClients<U extends string>(
  broker: () => Mosquitto,
  users: Record<U, string>,
  options: { ignoreErrors?: boolean } = {},
): {
  client: (user: U, extra?: IClientOptions) => Promise<MqttClient>;
  closeAll: () => Promise<void>;
} {
  const open: MqttClient[] = [];
  return {
    client: async (user, extra = {}) => {
      const c = await connectAsync(broker().url, {
        username: user,
        password: users[user],
        protocolVersion: 5,
        reconnectPeriod: 0,
        ...extra,
      });
      if (options.ignoreErrors === true) c.on('error', () => undefined);
      open.push(c);
      return c;
    },
    closeAll: async () => {
      for (const c of open) await c.endAsync(true).catch(() => undefined);
    },
  };
}

/** The operator's settings to log its bridge in to `broker` as OPERATOR_USER. */
export function bridgeLogin(broker: Mosquitto, password: string): Record<string, unknown> {
  return { mqttUrl: broker.url, mqttUsername: OPERATOR_USER, mqttPassword: password };
}

/** The settings that turn inbound writes on, for the users of `usersFile`, deny by default. */
export function inboundConfig(usersFile: string): Record<string, unknown> {
  return { mqttInbound: true, mqttUsersFile: usersFile, anonymous: false, aclDefault: 'deny' };
}

/** Writes the bridge's users file (broker user → Maxine user and groups) in the broker's folder. */
export async function writeMqttUsers(
  broker: Mosquitto,
  name: string,
  users: Record<string, { user: string; groups?: string[] }>,
): Promise<string> {
  const file = join(broker.dir, name);
  await writeFile(file, JSON.stringify({ users }));
  return file;
}

/** Whether the operator's /readyz says its bridge is connected. */
export async function bridgeConnected(op: TestOperator): Promise<boolean> {
  const r = await fetch(`${op.url}/readyz`);
  return ((await r.json()) as { mqtt?: { connected: boolean } }).mqtt?.connected === true;
}

/** Polls `cond` until it holds, or fails after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  await eventually(async () => await cond(), ms);
}

/** The sum of a metric's samples whose line includes `label` (all of them with none). */
export async function metricSum(op: TestOperator, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${op.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/** The MaxineService `shop/cart` the bridge's tests register into. */
export const CART_SERVICE_YAML = `
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec: {}
`;

/** A MaxineACL that lets the group `shop-devices` register into `shop/cart`. */
export const DEVICES_ACL_YAML = `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: devices, namespace: shop }
spec:
  subjects:
    - { kind: Group, name: shop-devices }
  rules:
    - services: ['shop/cart']
      verbs: [register]
`;
