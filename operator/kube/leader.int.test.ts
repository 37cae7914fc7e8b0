/**
 * Leader election against an API server (a real HTTP server on port 0 answering as
 * kube-apiserver does) whose lease namespace does not exist: one line saying what is missing
 * and how to fix it, not a client-node dump on every renewal; leading once it exists.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { createLogger } from '../../common/logger.js';
import { LEADER_URL_ANNOTATION, LeaderElector, leaderElectionProblem } from './leader.js';
import { logSink } from '../../test/helpers/operator.js';

let server: Server | undefined;
let elector: LeaderElector | undefined;
let other: LeaderElector | undefined;

afterEach(async () => {
  await other?.stop();
  other = undefined;
  await elector?.stop();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

const notFound = (what: string, name: string) => ({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  message: `${what} "${name}" not found`,
  reason: 'NotFound',
  details: { name, kind: what },
  code: 404,
});

/** A fake API server holding at most one Lease, in a namespace that exists once `create()`d. */
async function fakeApiServer(): Promise<{
  kubeConfig: KubeConfig;
  createNamespace: () => void;
  /** From now on every request fails with 503 (the API server is away), or again not. */
  fail: (failing: boolean) => void;
}> {
  let namespaceExists = false;
  let failing = false;
  let lease: unknown;
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const send = (code: number, json: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json', 'audit-id': 'c0ffee' });
        res.end(JSON.stringify(json));
      };
      if (failing)
        return send(503, {
          kind: 'Status',
          status: 'Failure',
          reason: 'ServiceUnavailable',
          code: 503,
        });
      if (req.method === 'GET')
        return lease === undefined
          ? send(404, notFound('leases.coordination.k8s.io', 'maxine-operator'))
          : send(200, lease);
      if (req.method === 'POST' && !namespaceExists)
        return send(404, notFound('namespaces', 'maxine-system'));
      const parsed = JSON.parse(body) as { metadata: Record<string, unknown> };
      lease = { ...parsed, metadata: { ...parsed.metadata, resourceVersion: '1' } };
      return send(req.method === 'POST' ? 201 : 200, lease);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  return {
    kubeConfig,
    createNamespace: () => (namespaceExists = true),
    fail: (f) => (failing = f),
  };
}

const until = async (check: () => boolean, ms: number): Promise<void> => {
  for (const started = Date.now(); !check(); await new Promise((r) => setTimeout(r, 10)))
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
};

describe('leader election without its namespace', () => {
  it('says once what is missing and how to fix it, then leads when the namespace appears', async () => {
    const { kubeConfig, createNamespace } = await fakeApiServer();
    const { sink, logs: lines } = logSink();
    let attempts = 0;
    elector = new LeaderElector({
      kubeConfig,
      namespace: 'maxine-system',
      name: 'maxine-operator',
      identity: 'replica-1',
      leaseDurationSeconds: 15,
      renewSeconds: 0.02,
      repeatLogMs: 60_000,
      logger: createLogger('debug', sink),
    });
    server!.on('request', (req) => {
      if (req.method === 'POST') attempts += 1;
    });
    elector.start();
    await until(() => attempts >= 10, 5000);
    expect(elector.isLeader).toBe(false);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      lease: 'maxine-system/maxine-operator',
      error: { status: 404, reason: 'NotFound', message: 'namespaces "maxine-system" not found' },
    });
    expect(warnings[0]!.msg).toContain('the lease namespace maxine-system does not exist');
    expect(warnings[0]!.msg).toContain('kubectl apply -k manifests/');
    expect(warnings[0]!.msg).toContain('--lease-namespace');
    // No dump: neither client-node's exception text nor the response headers.
    expect(JSON.stringify(lines)).not.toMatch(/HTTP-Code|Headers|c0ffee|details/);

    createNamespace();
    await until(() => elector!.isLeader, 5000);
    expect(lines.some((l) => l.msg === 'became leader')).toBe(true);
  });
});

describe('the leader advertises where writes go', () => {
  it('writes its --advertise-url on the Lease; a follower reads it; releasing the Lease drops it', async () => {
    const { kubeConfig, createNamespace } = await fakeApiServer();
    createNamespace();
    const { sink, logs: lines } = logSink();
    const options = {
      kubeConfig,
      namespace: 'maxine-system',
      name: 'maxine-operator',
      leaseDurationSeconds: 15,
      renewSeconds: 0.02,
      logger: createLogger('info', sink),
    };
    elector = new LeaderElector({
      ...options,
      identity: 'replica-a',
      advertiseUrl: 'http://10.0.0.1:7710',
    });
    elector.start();
    await until(() => elector!.isLeader, 5000);
    expect(elector.leader).toEqual({ leading: true });

    other = new LeaderElector({
      ...options,
      identity: 'replica-b',
      advertiseUrl: 'http://10.0.0.2:7710',
    });
    other.start();
    await until(() => other!.leader.url !== undefined, 5000);
    expect(other.leader).toEqual({
      leading: false,
      identity: 'replica-a',
      url: 'http://10.0.0.1:7710',
    });
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'another replica leads: writes here are forwarded to it',
        leader: 'replica-a',
        leaderUrl: 'http://10.0.0.1:7710',
      }),
    );

    // The leader lets go: the annotation goes with it, and the other one takes over and
    // advertises its own address.
    await elector.stop();
    await until(() => other!.isLeader, 5000);
    const lease = (await (
      await fetch(
        `${kubeConfig.getCurrentCluster()!.server}/apis/coordination.k8s.io/v1/namespaces/maxine-system/leases/maxine-operator`,
      )
    ).json()) as {
      metadata: { annotations?: Record<string, string> };
      spec: { holderIdentity: string };
    };
    expect(lease.spec.holderIdentity).toBe('replica-b');
    expect(lease.metadata.annotations?.[LEADER_URL_ANNOTATION]).toBe('http://10.0.0.2:7710');
  });

  it('a follower that cannot read the Lease keeps naming the leader for one lease duration, then no more', async () => {
    const { kubeConfig, createNamespace, fail } = await fakeApiServer();
    createNamespace();
    const options = {
      kubeConfig,
      namespace: 'maxine-system',
      name: 'maxine-operator',
      leaseDurationSeconds: 2,
      renewSeconds: 0.05,
      logger: createLogger('error', logSink().sink),
    };
    elector = new LeaderElector({
      ...options,
      identity: 'replica-a',
      advertiseUrl: 'http://a:7710',
    });
    elector.start();
    await until(() => elector!.isLeader, 5000);
    other = new LeaderElector({ ...options, identity: 'replica-b' });
    other.start();
    await until(() => other!.leader.url !== undefined, 5000);
    const lost = Date.now();
    fail(true);
    await new Promise((r) => setTimeout(r, 1000));
    expect(other.leader.url).toBe('http://a:7710');
    await until(() => other!.leader.url === undefined, 5000);
    expect(Date.now() - lost).toBeGreaterThanOrEqual(1900);
    expect(other.leader).toEqual({ leading: false });
  });

  it('a replica without --advertise-url leads without the annotation; a follower then knows no address', async () => {
    const { kubeConfig, createNamespace } = await fakeApiServer();
    createNamespace();
    const options = {
      kubeConfig,
      namespace: 'maxine-system',
      name: 'maxine-operator',
      leaseDurationSeconds: 15,
      renewSeconds: 0.02,
      logger: createLogger('warn', logSink().sink),
    };
    elector = new LeaderElector({ ...options, identity: 'replica-a' });
    elector.start();
    await until(() => elector!.isLeader, 5000);
    other = new LeaderElector({ ...options, identity: 'replica-b' });
    other.start();
    await until(() => other!.leader.identity !== undefined, 5000);
    expect(other.leader).toEqual({ leading: false, identity: 'replica-a' });
  });
});

describe('leaderElectionProblem', () => {
  const lease = { namespace: 'ops', name: 'maxine-operator' };
  const apiError = (code: number, reason: string, message: string) => ({
    code,
    body: JSON.stringify({ kind: 'Status', code, reason, message }),
  });
  it.each<[string, unknown, string[]]>([
    [
      'a missing namespace of its own',
      apiError(404, 'NotFound', 'namespaces "ops" not found'),
      ['lease namespace ops does not exist', 'kubectl create namespace ops', '--lease-namespace'],
    ],
    [
      'a missing maxine-system, which manifests/ and examples/ create',
      apiError(404, 'NotFound', 'namespaces "maxine-system" not found'),
      ['kubectl apply -k manifests/', 'kubectl apply -f examples/', '--lease-namespace'],
    ],
    [
      'a missing RBAC rule',
      apiError(403, 'Forbidden', 'leases.coordination.k8s.io "maxine-operator" is forbidden'),
      ['not allowed to read and write the Lease ops/maxine-operator', 'manifests/rbac.yaml'],
    ],
    [
      'anything else',
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      ['leader election request for the Lease ops/maxine-operator failed'],
    ],
  ])('%s', (_what, err, says) => {
    const problem = leaderElectionProblem(err, lease);
    for (const text of says) expect(problem.message).toContain(text);
  });
});
