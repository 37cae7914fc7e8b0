/**
 * `spec.configFrom` on a real control plane: a MaxineService takes keys from a ConfigMap and a
 * Secret of its namespace, merged under its inline `config`. The operator runs with its own
 * RBAC (manifests/rbac.yaml), its log captured at debug level and its audit log on; the pod's
 * sidecar runs as a process with the webhook's environment, reads the Secret with its pod's
 * ServiceAccount token (granted by a Role, as docs/resources.md tells a user to) and writes the
 * config files.
 *
 * Shown: `kubectl edit` of the ConfigMap reaches the sidecar's long-poll and files within 2 s
 * and runs the reload action once; the Secret's value reaches the files, and never the event
 * stream, the operator's log, its audit records or its GET answers, even when it is rotated.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { ensureBinaries, startControlPlane } from './controlplane/cluster.js';
import type { ControlPlane } from './controlplane/cluster.js';
import type { Operator } from '../operator/operator.js';
import { installCrds, kubectl as kubectlIn } from './operator-identity.js';
import {
  applyDeployment,
  podsWithIps,
  startInjectingOperator,
  startSidecar,
  untilInjects,
} from './injection.js';
import type { Pod, SidecarProcess } from './injection.js';
import { eventually } from '../test/helpers/operator.js';

const execFileP = promisify(execFile);

let cp: ControlPlane;
let op: { operator: Operator; base: string; admin: { authorization: string } };
let work: string;
let app: Server;
let reloads = 0;
let pod: Pod;
let sidecar: SidecarProcess;
const operatorLog: string[] = [];
const streamed: string[] = [];
let ws: WebSocket | undefined;
// Values nobody could guess or find elsewhere: if one shows up, it came from the Secret.
const SECRET_1 = `s3cret-${randomBytes(12).toString('hex')}`;
const SECRET_2 = `rotated-${randomBytes(12).toString('hex')}`;
const configDir = () => join(work, 'config');
const auditDir = () => join(work, 'audit');

const kubectl = (args: string[], input?: string): Promise<string> => kubectlIn(cp, args, input);

/** A map as JSON with its keys sorted, to compare maps whatever their key order. */
const sorted = (m: Record<string, string> | undefined): string =>
  JSON.stringify(Object.entries(m ?? {}).sort(([a], [b]) => a.localeCompare(b)));

/** Every key of the file set `..data` points at, as an application reads it. */
async function readSet(dir: string): Promise<Record<string, string>> {
  const target = await readlink(join(dir, '..data'));
  const out: Record<string, string> = {};
  for (const key of await readdir(join(dir, target)))
    out[key] = await readFile(join(dir, target, key), 'utf8');
  return out;
}

interface ConfigAnswer {
  status: number;
  version: number;
  config?: Record<string, string>;
}

async function sidecarConfig(query = ''): Promise<ConfigAnswer> {
  const res = await fetch(`${sidecar.url}/v1/config${query}`);
  const version = Number(res.headers.get('x-maxine-config-version'));
  if (res.status !== 200) return { status: res.status, version };
  const body = (await res.json()) as { config: Record<string, string> };
  return { status: res.status, version, config: body.config };
}

/** Everything an operator user or log reader could see, as one string. */
async function operatorSurface(): Promise<string> {
  const get = async (path: string) =>
    `${path}: ${await (await fetch(`${op.base}${path}`, { headers: op.admin })).text()}`;
  const audit: string[] = [];
  for (const file of await readdir(auditDir()).catch(() => [] as string[]))
    audit.push(await readFile(join(auditDir(), file), 'utf8'));
  return [
    await get('/api/v1/services/shop/web'),
    await get('/api/v1/services'),
    await get('/api/v1/resources'),
    await get('/api/v1/discover/shop/web?all=true'),
    ...streamed,
    ...operatorLog,
    ...audit,
  ].join('\n');
}

beforeAll(async () => {
  await ensureBinaries();
  cp = await startControlPlane({ workloads: true });
  work = await mkdtemp(join(tmpdir(), 'maxine-config-from-e2e-'));
  app = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/reload') reloads += 1;
    res.end('ok');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  await installCrds(cp);
  await kubectl(['create', 'namespace', 'shop']);
  await kubectl(['label', 'namespace', 'shop', 'maxine.io/injection=enabled']);
  const sink = new Writable({
    write: (chunk: Buffer, _e, done) => {
      operatorLog.push(chunk.toString());
      done();
    },
  });
  op = await startInjectingOperator(
    cp,
    'shop',
    { logLevel: 'debug', auditDir: auditDir() },
    { level: 'debug', sink },
  );
  await eventually(async () => Promise.resolve(op.operator.isLeader()), 30_000, 'a leader');
  ws = new WebSocket(`${op.base.replace('http', 'ws')}/api/v1/events`, { headers: op.admin });
  ws.on('message', (d: Buffer) => streamed.push(d.toString()));
  await new Promise((resolve, reject) => {
    ws?.once('open', resolve);
    ws?.once('error', reject);
  });
  await kubectl([
    'create',
    'configmap',
    'web-settings',
    '-n',
    'shop',
    '--from-literal=greeting=hello',
    '--from-literal=mode=from-configmap',
  ]);
  await kubectl([
    'create',
    'secret',
    'generic',
    'web-db',
    '-n',
    'shop',
    `--from-literal=password=${SECRET_1}`,
  ]);
  // What docs/resources.md tells a user to grant: the pod reads this one Secret, nothing else;
  // the operator watches Secrets of this namespace only.
  await kubectl(
    ['apply', '-f', '-'],
    `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: web-config-secrets, namespace: shop }
rules:
  - apiGroups: ['']
    resources: [secrets]
    resourceNames: [web-db]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: web-config-secrets, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: web-config-secrets }
subjects:
  - { kind: ServiceAccount, name: default, namespace: shop }
---
# The operator may watch Secrets of this namespace (it reads none by default).
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: maxine-operator-config-secrets, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: maxine-operator-config-secrets }
subjects:
  - { kind: ServiceAccount, name: maxine-operator, namespace: maxine-system }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 8080 }]
  config: { mode: inline }
  configFrom:
    - configMap: web-settings
    - secret: web-db
      prefix: db.
`,
  );
  await untilInjects(cp, 'shop', { app: 'web' });
  await applyDeployment(cp, 'shop', 'web', {
    replicas: 1,
    annotations: { 'maxine.io/config-reload': 'http:POST:/reload' },
  });
  pod = (await podsWithIps(cp, 'shop', 'web', 1))[0] as Pod;
  // The pod's ServiceAccount token for the API server (kubelet mounts it in a real pod).
  const kubeToken = join(work, 'kube.token');
  await writeFile(
    kubeToken,
    await kubectl([
      'create',
      'token',
      'default',
      '-n',
      'shop',
      '--bound-object-kind=Pod',
      `--bound-object-name=${pod.metadata.name}`,
      `--bound-object-uid=${pod.metadata.uid}`,
    ]),
    { mode: 0o600 },
  );
  sidecar = await startSidecar(cp, pod, work, {
    MAXINE_CONFIG_DIR: configDir(),
    MAXINE_APP_PORT: String((app.address() as { port: number }).port),
    MAXINE_KUBE_API_URL: cp.server,
    MAXINE_KUBE_CA_FILE: join(cp.dir, 'pki', 'ca.crt'),
    MAXINE_KUBE_TOKEN_FILE: kubeToken,
  });
}, 30 * 60_000);

afterAll(async () => {
  ws?.close();
  sidecar?.proc.kill('SIGKILL');
  await op?.operator.stop();
  await cp?.stop();
  if (app) await new Promise((r) => app.close(r));
  if (work) await rm(work, { recursive: true, force: true });
});

describe('configFrom on a real control plane', () => {
  it('the sidecar serves and writes inline, ConfigMap and Secret keys by precedence', async () => {
    const expected = { greeting: 'hello', mode: 'inline', 'db.password': SECRET_1 };
    await eventually(
      async () =>
        sorted((await sidecarConfig().catch(() => undefined))?.config) === sorted(expected),
      30_000,
      'the merged config on the sidecar',
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${sidecar.log.join('')}`);
    });
    await eventually(
      async () =>
        sorted(await readSet(configDir()).catch((): Record<string, string> => ({}))) ===
        sorted(expected),
      3000,
      'the merged config in the files',
    );
    const service = (await (
      await fetch(`${op.base}/api/v1/services/shop/web`, { headers: op.admin })
    ).json()) as { spec: { config: Record<string, string> }; configSecrets: unknown };
    expect(service.spec.config).toEqual({ greeting: 'hello', mode: 'inline' });
    expect(service.configSecrets).toEqual({
      'db.password': {
        secret: 'web-db',
        key: 'password',
        digest: expect.stringMatching(/^hmac-sha256:[0-9a-f]{64}$/) as unknown as string,
      },
    });
  });

  it('kubectl edit of the ConfigMap answers the long-poll and rewrites the files within 2 s, reload run once', async () => {
    const before = await sidecarConfig();
    const reloadsBefore = reloads;
    const poll = fetch(`${sidecar.url}/v1/config?wait=30s&version=${before.version}`);
    await new Promise((r) => setTimeout(r, 200)); // the long-poll is waiting
    const editor = join(work, 'editor.sh');
    await writeFile(
      editor,
      `#!/bin/sh\nsed -i 's/^  greeting: hello$/  greeting: bonjour/' "$1"\n`,
    );
    await chmod(editor, 0o755);
    await execFileP(
      join(cp.binDir, 'kubectl'),
      [`--kubeconfig=${cp.kubeconfig}`, 'edit', 'configmap', 'web-settings', '-n', 'shop'],
      { env: { ...process.env, KUBE_EDITOR: editor, EDITOR: editor } },
    );
    const edited = Date.now();
    const res = await poll;
    const answeredMs = Date.now() - edited;
    const body = (await res.json()) as { config: Record<string, string> };
    expect(body.config).toEqual({ greeting: 'bonjour', mode: 'inline', 'db.password': SECRET_1 });
    expect(Number(res.headers.get('x-maxine-config-version'))).toBeGreaterThan(before.version);
    process.stdout.write(
      `configFrom: kubectl edit → sidecar long-poll answered in ${answeredMs} ms\n`,
    );
    expect(answeredMs).toBeLessThan(2000);
    await eventually(
      async () =>
        (await readSet(configDir()).catch((): Record<string, string> => ({}))).greeting ===
        'bonjour',
      2000 - answeredMs,
      'the files',
    );
    await eventually(async () => Promise.resolve(reloads === reloadsBefore + 1), 2000, 'a reload');
    await new Promise((r) => setTimeout(r, 1500));
    expect(reloads).toBe(reloadsBefore + 1);
    const changed = streamed
      .map((m) => JSON.parse(m) as { type: string; data?: { changes?: unknown } })
      .filter((e) => e.type === 'config_changed')
      .at(-1);
    expect(changed?.data?.changes).toEqual({ added: [], changed: ['greeting'], removed: [] });
  });

  it("a rotated Secret reaches the files, and its values never the operator's stream, log, audit or answers", async () => {
    const before = await sidecarConfig();
    await kubectl([
      'patch',
      'secret',
      'web-db',
      '-n',
      'shop',
      '-p',
      JSON.stringify({ stringData: { password: SECRET_2 } }),
    ]);
    const res = await fetch(`${sidecar.url}/v1/config?wait=30s&version=${before.version}`);
    const body = (await res.json()) as { config: Record<string, string> };
    expect(body.config['db.password']).toBe(SECRET_2);
    await eventually(
      // A set switched while being read is read again (its old directory goes with the switch).
      async () =>
        (await readSet(configDir()).catch((): Record<string, string> => ({})))['db.password'] ===
        SECRET_2,
      3000,
      'the rotated value in the files',
    );
    const rotated = streamed
      .map((m) => JSON.parse(m) as { type: string; data?: { changes?: unknown } })
      .filter((e) => e.type === 'config_changed')
      .at(-1);
    expect(rotated?.data?.changes).toEqual({ added: [], changed: ['db.password'], removed: [] });
    // A snapshot subscriber sees the same (keys and digests only).
    const snapshot = new WebSocket(`${op.base.replace('http', 'ws')}/api/v1/events?snapshot=true`, {
      headers: op.admin,
    });
    const frames: string[] = [];
    snapshot.on('message', (d: Buffer) => frames.push(d.toString()));
    await eventually(
      async () => Promise.resolve(frames.some((f) => f.includes('"resync_end"'))),
      5000,
      'a snapshot',
    );
    snapshot.close();
    streamed.push(...frames);
    const surface = await operatorSurface();
    expect(surface).toContain('db.password'); // the key is told...
    expect(operatorLog.join('').length).toBeGreaterThan(0);
    expect(surface).not.toContain(SECRET_1); // ...its values never are
    expect(surface).not.toContain(SECRET_2);
    for (const value of [SECRET_1, SECRET_2])
      expect(surface).not.toContain(Buffer.from(value).toString('base64'));
    // The audit log was written (the GETs above), so its absence of values means something.
    expect((await readdir(auditDir())).length).toBeGreaterThan(0);
  });
});
