/**
 * The client examples of docs/events.md ("Client examples"), run as written against a real
 * operator: the TypeScript WebSocket subscriber as a script (tsx), the Python standard-library
 * state query (python3), and the mosquitto_sub / mosquitto_rr / mosquitto_pub commands against
 * a real mosquitto with the bridge publishing and inbound writes on. The code is read from the
 * page, so the page cannot drift from what works. (websocat and Python's `websockets` are not
 * on the test machines.) The Python Server-Sent Events follower runs too.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startMosquitto } from '../helpers/mosquitto.js';
import type { Mosquitto } from '../helpers/mosquitto.js';
import {
  CART_SERVICE_YAML,
  bridgeConnected,
  bridgeLogin,
  inboundConfig,
  writeMqttUsers,
} from '../helpers/mqtt.js';
import { api, eventually, startOperator } from '../helpers/operator.js';
import type { TestOperator } from '../helpers/operator.js';

const execFileP = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

/** The code blocks of one language in the "Client examples" section of docs/events.md. */
async function examples(lang: string): Promise<string[]> {
  const doc = await readFile(join(ROOT, 'docs/events.md'), 'utf8');
  const start = doc.indexOf('\n## Client examples');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map(
    (m) => m[1] ?? '',
  );
}

/** The commands of a console block: `$ ` lines with their `\` continuations, joined. */
function commands(block: string): string[] {
  const out: string[] = [];
  let current: string | undefined;
  for (const line of block.split('\n')) {
    if (current === undefined && !line.startsWith('$ ')) continue;
    const text = current === undefined ? line.slice(2) : line.trim();
    current = current === undefined ? text : `${current} ${text}`;
    if (current.endsWith('\\')) current = current.slice(0, -1).trimEnd();
    else {
      out.push(current);
      current = undefined;
    }
  }
  return out;
}

describe('TypeScript WebSocket subscriber', () => {
  let op: TestOperator;
  let work: string;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    op = await startOperator({ files: { 'cart.yaml': CART_SERVICE_YAML } });
    work = await mkdtemp(join(tmpdir(), 'maxine-ts-client-'));
    // The script imports `ws` and runs with tsx, as from a project that installed them.
    await symlink(join(ROOT, 'node_modules'), join(work, 'node_modules'));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await op.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('gets the snapshot, then the events of the services it asked for', async () => {
    const [script] = await examples('ts');
    expect(script).toContain('// watch-events.ts');
    await writeFile(join(work, 'watch-events.ts'), script!);
    child = spawn(process.execPath, ['--import', 'tsx', 'watch-events.ts', op.wsUrl, 'shop/*'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(
      () => Promise.resolve(/snapshot at \d+: 0 instances/.test(out)),
      20_000,
      `the snapshot line, got: ${out}`,
    );
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'cart',
      namespace: 'shop',
      host: '10.0.0.7',
      port: 8080,
    });
    expect(r.status).toBe(201);
    await eventually(
      () => Promise.resolve(/\d+ service_registered shop\/cart 10\.0\.0\.7:8080/.test(out)),
      10_000,
      `the event line, got: ${out}`,
    );
    // An event it must not see (another namespace).
    await api(op.url, 'POST', '/api/v1/instances', { service: 'x', host: '10.0.0.8', port: 1 });
    await api(op.url, 'DELETE', `/api/v1/instances/${r.body.instance.id}`);
    await eventually(
      () => Promise.resolve(/\d+ service_deregistered shop\/cart 10\.0\.0\.7:8080/.test(out)),
      10_000,
      `the deregistration line, got: ${out}`,
    );
    expect(out).not.toContain('10.0.0.8');
  }, 40_000);
});

describe('Python, standard library', () => {
  let op: TestOperator;
  let work: string;
  beforeAll(async () => {
    op = await startOperator({ files: { 'cart.yaml': CART_SERVICE_YAML } });
    work = await mkdtemp(join(tmpdir(), 'maxine-py-client-'));
  });
  afterAll(async () => {
    await op.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('state.py prints the healthy instances, and the error code when there are none', async () => {
    const script = (await examples('python')).find((b) => b.startsWith('# state.py'));
    expect(script).toBeDefined();
    await writeFile(join(work, 'state.py'), script!);
    const none = await execFileP('python3', ['state.py', op.url, 'shop', 'cart'], { cwd: work });
    expect(none.stdout).toMatch(/^404 [A-Z_]+\n$/);
    const r = await api(op.url, 'POST', '/api/v1/instances', {
      service: 'cart',
      namespace: 'shop',
      host: '10.0.0.9',
      port: 9090,
    });
    expect(r.status).toBe(201);
    const { stdout } = await execFileP('python3', ['state.py', op.url, 'shop', 'cart'], {
      cwd: work,
    });
    expect(stdout).toBe(`${r.body.instance.id} 10.0.0.9:9090 passing\n`);
  });

  it('follow.py (Server-Sent Events, urllib) prints the snapshot, then the events as they come', async () => {
    const script = (await examples('python')).find((b) => b.startsWith('# follow.py'));
    expect(script).toBeDefined();
    await writeFile(join(work, 'follow.py'), script!);
    const child = spawn('python3', ['follow.py', op.url, 'shop/*'], { cwd: work });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    try {
      await eventually(() => Promise.resolve(/ resync_end /.test(out)), 10_000, 'the snapshot');
      const r = await api(op.url, 'POST', '/api/v1/instances', {
        service: 'cart',
        namespace: 'shop',
        host: '10.0.0.10',
        port: 9091,
      });
      expect(r.status).toBe(201);
      await eventually(
        () => Promise.resolve(/^\d+ service_registered shop cart$/m.test(out)),
        10_000,
        'the registration printed',
      );
      const types = out.split('\n').map((l) => l.split(' ')[1]);
      expect(types.indexOf('resync_begin')).toBeLessThan(types.indexOf('resync_end'));
      expect(types.indexOf('resync_end')).toBeLessThan(types.indexOf('service_registered'));
      expect(out).not.toContain('reconnecting');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('the shell: mosquitto_sub, mosquitto_rr, mosquitto_pub', () => {
  const USERS = {
    'maxine-operator': 'op-secret-5150',
    viewer: 'viewer-secret-2112',
    dev1: 'dev1-secret-1984',
  };
  const ACL = `
user maxine-operator
topic readwrite maxine/#

user viewer
topic read maxine/#

pattern write maxine/+/+/register/%u
pattern write maxine/+/+/heartbeat/%u
pattern read maxine/replies/%u/#
`;
  const ACL_YAML = `
apiVersion: maxine.io/v1alpha1
kind: MaxineACL
metadata: { name: devices, namespace: shop }
spec:
  subjects:
    - { kind: User, name: device-1 }
  rules:
    - services: ['shop/cart']
      verbs: [register]
`;
  let broker: Mosquitto;
  let op: TestOperator;

  beforeAll(async () => {
    broker = await startMosquitto({ users: USERS, acl: ACL });
    const usersFile = await writeMqttUsers(broker, 'users.json', { dev1: { user: 'device-1' } });
    op = await startOperator({
      files: { 'cart.yaml': CART_SERVICE_YAML, 'acl.yaml': ACL_YAML },
      config: {
        ...bridgeLogin(broker, USERS['maxine-operator']),
        ...inboundConfig(usersFile),
        mqttStateCoalesceMs: 20,
      },
    });
    await eventually(() => bridgeConnected(op), 10_000, 'the bridge connected');
  }, 30_000);
  afterAll(async () => {
    await op?.stop();
    await broker?.destroy();
  });

  /** A documented command, pointed at the test broker (its TLS listener and CA). */
  function run(command: string, extra = ''): Promise<{ stdout: string; stderr: string }> {
    const user = /-u (\S+)/.exec(command)?.[1] as keyof typeof USERS;
    const line = command
      .replace('-h broker', '-h localhost')
      .replace('-p 8883', `-p ${broker.tlsPort}`)
      .replace('--cafile ca.crt', `--cafile ${broker.caFile}`);
    return execFileP('bash', ['-c', `${line} ${extra}`], {
      env: { ...process.env, PASSWORD: USERS[user] },
      timeout: 20_000,
    });
  }

  it('mosquitto_sub shows the retained state and the events; mosquitto_rr registers; mosquitto_pub heartbeats', async () => {
    const blocks = (await examples('console')).filter((b) => b.includes('mosquitto_'));
    const [sub, rr, pub] = blocks.flatMap(commands);
    expect(sub).toMatch(/^mosquitto_sub /);
    expect(rr).toMatch(/^mosquitto_rr /);
    expect(pub).toMatch(/^mosquitto_pub /);

    // The subscriber gets the retained state at once, then what the registration changes.
    const watching = run(sub!, '-C 3 -W 15');
    await new Promise((r) => setTimeout(r, 500));
    const registered = await run(rr!, '-W 10');
    const answer = JSON.parse(registered.stdout) as { instance: { id: string; host: string } };
    expect(answer.instance).toMatchObject({ host: '10.2.0.1' });
    expect(op.operator.registry.getInstance(answer.instance.id)).toBeDefined();

    const lines = (await watching).stdout.trim().split('\n');
    const topics = lines.map((l) => l.split(' ')[0]);
    expect(topics[0]).toBe('maxine/shop/cart/state');
    expect(topics).toContain('maxine/shop/cart/service_registered');
    const states = lines
      .filter((l) => l.startsWith('maxine/shop/cart/state '))
      .map(
        (l) => JSON.parse(l.slice('maxine/shop/cart/state '.length)) as { instances: unknown[] },
      );
    expect(states[0]).toMatchObject({ service: { namespace: 'shop', name: 'cart' } });

    // The heartbeat names the instance the registration answered with.
    const before = op.operator.registry.getInstance(answer.instance.id)!.lastHeartbeat;
    await new Promise((r) => setTimeout(r, 20));
    await run(pub!.replace('cart-…', answer.instance.id));
    await eventually(
      () =>
        Promise.resolve(
          op.operator.registry.getInstance(answer.instance.id)!.lastHeartbeat !== before,
        ),
      10_000,
      'the heartbeat applied',
    );
  }, 60_000);
});
