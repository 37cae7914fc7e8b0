/**
 * Config versions kept by the `file` store across kill -9, with real operator processes: the
 * version a `config_changed` event announced is on disk before the event leaves, so an
 * operator killed right after announcing it never hands that number out again for other
 * content (operator/store/config-file.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import WebSocket from 'ws';
import { configHash } from '../../common/config-version.js';
import { spawnListening } from '../helpers/spawn.js';
import { exited, operatorProcesses, until } from '../helpers/stream-subscriber.js';

const { children, sockets, root, resources } = operatorProcesses('maxine-config-kill9-');

const writeCart = (config: Record<string, string>): Promise<void> =>
  writeFile(
    join(resources, 'cart.yaml'),
    `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec:
  config: ${JSON.stringify(config)}
`,
  );

async function start(dir: string, fsync: 'always' | 'interval') {
  const started = await spawnListening(
    [
      ...['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', resources],
      ...['--store', 'file', '--store-dir', dir, '--store-fsync', fsync],
      ...['--log-level', 'info', '--address-rate-limit', '0'],
    ],
    { env: { ...process.env } },
  );
  children.push(started.proc);
  return { ...started, base: `http://127.0.0.1:${started.port}` };
}

interface ConfigChanged {
  type: string;
  service: { namespace: string; name: string };
  data: { version: number; hash: string };
}

/** Subscribes to config events; `onChanged` runs synchronously as each arrives. */
async function onConfigChanged(base: string, onChanged: (e: ConfigChanged) => void) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/api/v1/events?types=config_changed`);
  sockets.push(ws);
  ws.on('message', (data: Buffer) => {
    const event = JSON.parse(data.toString()) as ConfigChanged;
    if (event.type === 'config_changed') onChanged(event);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

async function history(base: string) {
  const res = await fetch(`${base}/api/v1/services/shop/cart/config/history`);
  expect(res.status).toBe(200);
  return (await res.json()) as { version: number; entries: { version: number; hash: string }[] };
}

describe('config versions and kill -9 (real processes, file store)', () => {
  it.each(['interval', 'always'] as const)(
    'a version announced just before SIGKILL is never reused after a restart (--store-fsync %s)',
    async (fsync) => {
      const dir = join(root, `store-${fsync}`);
      /** Every version ever announced, with the content hash it was announced for. */
      const announced = new Map<number, string>();
      await writeCart({ A: 'start' });
      let op = await start(dir, fsync);
      for (let round = 1; round <= 2; round++) {
        const proc = op.proc;
        let killedAt: number | undefined;
        await onConfigChanged(op.base, (e) => {
          if (killedAt !== undefined || e.service.name !== 'cart') return;
          // Killed as the event arrives: nothing after the announcement gets to run.
          proc.kill('SIGKILL');
          killedAt = e.data.version;
          announced.set(e.data.version, e.data.hash);
        });
        await writeCart({ A: `changed-${round}` });
        await until(() => killedAt !== undefined, 15_000, `config_changed of round ${round}`);
        await exited(proc);
        expect(proc.signalCode).toBe('SIGKILL');

        // Changed again while down: the restarted operator must number it above what it said.
        const content = { A: `while-down-${round}` };
        await writeCart(content);
        op = await start(dir, fsync);
        const after = await history(op.base);
        expect(after.version).toBeGreaterThan(killedAt!);
        expect(after.entries[0]).toMatchObject({
          version: after.version,
          hash: configHash(content),
        });
        for (const entry of after.entries) {
          const said = announced.get(entry.version);
          if (said !== undefined) expect(entry.hash).toBe(said);
        }
        announced.set(after.version, configHash(content));
      }
      const text = await readFile(join(dir, 'config-history.jsonl'), 'utf8');
      expect(text.length).toBeGreaterThan(0);
      op.proc.kill('SIGTERM');
      await exited(op.proc);
    },
    180_000,
  );
});
