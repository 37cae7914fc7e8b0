/**
 * configFrom in standalone mode, over real sockets: ConfigMap documents in the resource folder
 * are the sources a MaxineService names; editing the file gives a new config version and a
 * `config_changed` event with the changed keys; a Secret reference resolves to nothing there
 * (ConfigIncomplete, the inline config in force). docs/resources.md, decision 0023.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventClient, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

let op: TestOperator;
let events: EventClient;

const web = `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  config: { mode: inline }
  configFrom:
    - configMap: web-settings
`;
const settings = (greeting: string) => `apiVersion: v1
kind: ConfigMap
metadata: { name: web-settings, namespace: shop }
data: { greeting: ${greeting}, mode: from-configmap }
`;

const serviceConfig = async () =>
  (
    (await (await fetch(`${op.url}/api/v1/services/shop/web`)).json()) as {
      spec: { config?: Record<string, string> };
    }
  ).spec.config;

interface ConfigEvent {
  type: string;
  data?: { version?: number; changes?: unknown };
}

beforeAll(async () => {
  op = await startOperator({ files: { 'web.yaml': web, 'settings.yaml': settings('hello') } });
  events = await EventClient.connect(`${op.wsUrl}/api/v1/events`);
});

afterAll(async () => {
  await events?.close();
  await op?.stop();
});

describe('configFrom in standalone mode', () => {
  it('merges a ConfigMap document of the folder under the inline config', async () => {
    expect(await serviceConfig()).toEqual({ greeting: 'hello', mode: 'inline' });
  });

  it('editing the ConfigMap file gives the next version with the changed key', async () => {
    await op.write('settings.yaml', settings('bonjour'));
    const got = await events.until((list) =>
      (list as ConfigEvent[]).some((e) => e.type === 'config_changed'),
    );
    const changed = (got as ConfigEvent[]).filter((e) => e.type === 'config_changed');
    expect(changed.map((e) => e.data?.changes)).toEqual([
      { added: [], changed: ['greeting'], removed: [] },
    ]);
    expect(await serviceConfig()).toEqual({ greeting: 'bonjour', mode: 'inline' });
  });

  it('a Secret reference is never resolved: the last complete config stays, ConfigIncomplete says why', async () => {
    await op.write(
      'web.yaml',
      web.replace(
        '    - configMap: web-settings\n',
        '    - configMap: web-settings\n    - secret: db\n',
      ),
    );
    await eventually(
      async () => {
        const res = (await (await fetch(`${op.url}/api/v1/resources`)).json()) as {
          items: { name: string; status: { conditions?: { type: string; message: string }[] } }[];
        };
        const conditions = res.items.find((i) => i.name === 'web')?.status.conditions ?? [];
        return conditions.some(
          (c) => c.type === 'ConfigIncomplete' && c.message.includes('Secret db'),
        );
      },
      3000,
      'ConfigIncomplete naming Secret db',
    );
    expect(await serviceConfig()).toEqual({ greeting: 'bonjour', mode: 'inline' });
  });
});
