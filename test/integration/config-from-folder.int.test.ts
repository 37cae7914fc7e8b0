/**
 * configFrom in standalone mode, over real sockets: ConfigMap documents in the resource folder
 * are the sources a MaxineService names; editing the file gives a new config version and a
 * `config_changed` event with the changed keys; a Secret reference resolves to nothing there
 * (ConfigIncomplete, the inline config in force). docs/resources.md, decision 0023.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
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

  it('a second document declaring the same ConfigMap is reported (log + problems); the first file by name wins', async () => {
    const before = await serviceConfig();
    await op.write('z-copy.yaml', settings('from-the-copy'));
    await eventually(
      async () => {
        const res = (await (await fetch(`${op.url}/api/v1/resources`)).json()) as {
          problems: { file: string; issues: { object?: string; message: string }[] }[];
        };
        return res.problems.some(
          (p) =>
            p.file === join(op.dir, 'z-copy.yaml') &&
            p.issues.some(
              (i) =>
                i.object === 'ConfigMap/shop/web-settings' &&
                i.message.includes('already declared in') &&
                i.message.includes(join(op.dir, 'settings.yaml')),
            ),
        );
      },
      3000,
      'the duplicate ConfigMap listed in problems',
    );
    const logged = op.logs.find(
      (l) => l.object === 'ConfigMap/shop/web-settings' && l.file === 'z-copy.yaml',
    );
    expect(logged).toMatchObject({ level: 'warn', field: 'metadata.name' });
    // settings.yaml sorts first: it stays the source, whatever order the files were read in.
    expect(await serviceConfig()).toEqual(before);
    await rm(join(op.dir, 'z-copy.yaml'));
  });
});
