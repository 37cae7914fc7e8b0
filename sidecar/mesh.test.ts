import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { MeshName } from '../common/mesh/model.js';
import { createLogger } from '../common/logger.js';
import { fileAction, MeshConfigCache, namesService, parseMeshAnswer } from './mesh.js';
import type { MeshAnswer } from './mesh.js';

const object = (kind: string, name: string) => ({
  apiVersion: 'networking.istio.io/v1',
  kind,
  metadata: { name, namespace: 'shop', labels: { 'maxine.io/service': 'web' } },
  spec: { host: 'web.shop.svc.cluster.local' },
});

const body = (mesh: MeshName, enabled: boolean, objects = [object('DestinationRule', 'web')]) => ({
  mesh,
  enabled,
  objects,
  differences: [{ subject: 'spec.x', message: 'not exact' }],
});

const answer = (mesh: MeshName, enabled: boolean, objects?: ReturnType<typeof object>[]) =>
  parseMeshAnswer(mesh, 200, body(mesh, enabled, objects));

function logs(): {
  lines: { level: string; msg: string }[];
  logger: ReturnType<typeof createLogger>;
} {
  const lines: { level: string; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, logger: createLogger('info', sink, 'sidecar') };
}

describe('parseMeshAnswer', () => {
  it('reads a render, serializing its JSON and YAML once', () => {
    const a = answer('istio', true);
    expect(a.kind).toBe('render');
    if (a.kind !== 'render') return;
    expect(a.enabled).toBe(true);
    expect(JSON.parse(a.json)).toEqual(body('istio', true));
    expect(a.yaml).toMatch(
      /^# istio: 1 objects rendered by Maxine\n# difference: spec\.x: not exact\n---\napiVersion: networking\.istio\.io\/v1\nkind: DestinationRule\n/,
    );
  });

  it('keeps fields of objects it does not know', () => {
    const a = parseMeshAnswer('istio', 200, {
      ...body('istio', false),
      objects: [{ ...object('Sidecar', 'web'), extra: 1 }],
    });
    expect(a.kind === 'render' && JSON.parse(a.json).objects[0].extra).toBe(1);
  });

  it('a 404 SERVICE_NOT_FOUND means the service is not declared', () => {
    expect(
      parseMeshAnswer('linkerd', 404, { error: { code: 'SERVICE_NOT_FOUND', message: 'x' } }),
    ).toEqual({ kind: 'undeclared' });
  });

  it.each([
    [
      403,
      { error: { code: 'FORBIDDEN', message: 'Not allowed' } },
      'HTTP 403 FORBIDDEN: Not allowed',
    ],
    [404, { error: { code: 'ROUTE_NOT_FOUND', message: 'no' } }, 'HTTP 404 ROUTE_NOT_FOUND'],
    [502, undefined, 'mesh istio: HTTP 502'],
    [200, { mesh: 'istio', objects: 'no' }, 'not a istio render'],
    [200, body('linkerd', true), 'not a istio render'],
  ])('refuses status %s %j', (status, b, message) => {
    expect(() => parseMeshAnswer('istio', status, b)).toThrow(message);
  });
});

describe('fileAction', () => {
  const enabled = answer('istio', true);
  const yaml = enabled.kind === 'render' ? enabled.yaml : '';
  it('writes an enabled mesh whose YAML differs from what was written', () => {
    expect(fileAction(enabled, undefined)).toEqual({ write: yaml });
    expect(fileAction(enabled, null)).toEqual({ write: yaml });
    expect(fileAction(enabled, 'old')).toEqual({ write: yaml });
    expect(fileAction(enabled, yaml)).toBeUndefined();
  });
  it('removes a disabled or undeclared mesh unless known absent', () => {
    for (const a of [answer('istio', false), { kind: 'undeclared' } as const]) {
      expect(fileAction(a, yaml)).toBe('remove');
      expect(fileAction(a, undefined)).toBe('remove');
      expect(fileAction(a, null)).toBeUndefined();
    }
  });
});

describe('namesService', () => {
  const own = { namespace: 'shop', name: 'web' };
  it.each([
    [{ namespace: 'shop', name: 'web' }, true],
    [{ namespace: 'shop', name: '*' }, true],
    [{ namespace: '*', name: '*' }, true],
    [{ namespace: 'shop', name: 'orders' }, false],
    [{ namespace: 'bank', name: 'web' }, false],
  ])('%j → %s', (ref, expected) => expect(namesService(ref, own)).toBe(expected));
});

describe('MeshConfigCache', () => {
  let dir: string;
  let caches: MeshConfigCache[];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'maxine-mesh-'));
    caches = [];
  });
  afterEach(async () => {
    for (const c of caches) await c.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A cache over a scripted operator: `answers[mesh]` is returned, or thrown when an Error. */
  function cache(
    answers: Record<MeshName, MeshAnswer | Error>,
    opts: { dir?: string; calls?: MeshName[] } = {},
  ) {
    const { lines, logger } = logs();
    const c = new MeshConfigCache({
      fetch: (mesh) => {
        opts.calls?.push(mesh);
        const a = answers[mesh];
        return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
      },
      logger,
      refreshMs: 0,
      retryBaseMs: 60_000,
      ...(opts.dir !== undefined && { dir: opts.dir }),
    });
    caches.push(c);
    return { c, lines };
  }

  it('has nothing before the first fetch, then the answers', async () => {
    const istio = answer('istio', true);
    const { c } = cache({ istio, linkerd: answer('linkerd', false) });
    expect(c.get('istio')).toBeUndefined();
    expect(c.status().ready).toBe(false);
    await c.refresh();
    expect(c.get('istio')).toBe(istio);
    expect(c.status()).toMatchObject({ ready: true, failures: 0 });
  });

  it('keeps the last good answer through failures, logging once per streak', async () => {
    const answers: Record<MeshName, MeshAnswer | Error> = {
      istio: answer('istio', true),
      linkerd: answer('linkerd', false),
    };
    const { c, lines } = cache(answers);
    await c.refresh();
    const good = c.get('istio');
    answers.istio = new Error('connect ECONNREFUSED');
    answers.linkerd = new Error('connect ECONNREFUSED');
    for (let i = 0; i < 4; i++) await c.refresh();
    expect(c.get('istio')).toBe(good);
    expect(c.status()).toMatchObject({ failures: 4, lastError: expect.stringContaining('ECONN') });
    const warned = lines.filter((l) => l.level === 'warn');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ meshes: ['istio', 'linkerd'] });
    answers.istio = answer('istio', true, [object('DestinationRule', 'web-2')]);
    answers.linkerd = answer('linkerd', false);
    await c.refresh();
    expect(c.status()).toMatchObject({ failures: 0 });
    expect(c.status().lastError).toBeUndefined();
    expect(lines.some((l) => l.msg === 'mesh configuration fetched again')).toBe(true);
    const latest = c.get('istio');
    expect(latest?.kind === 'render' && latest.render.objects[0]?.metadata.name).toBe('web-2');
  });

  it('a refresh asked for during one runs once more after it', async () => {
    const calls: MeshName[] = [];
    const { c } = cache(
      { istio: answer('istio', false), linkerd: answer('linkerd', false) },
      { calls },
    );
    await Promise.all([c.refresh(), c.refresh(), c.refresh()]);
    expect(calls).toEqual(['istio', 'linkerd', 'istio', 'linkerd']);
  });

  it('invalidations in a burst make one fetch', async () => {
    const calls: MeshName[] = [];
    const { c } = cache(
      { istio: answer('istio', false), linkerd: answer('linkerd', false) },
      { calls },
    );
    c.start();
    await new Promise((r) => setTimeout(r, 50));
    calls.length = 0;
    for (let i = 0; i < 5; i++) c.invalidate();
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toEqual(['istio', 'linkerd']);
  });

  it('writes enabled meshes atomically, rewrites on change only, removes disabled ones', async () => {
    const folder = join(dir, 'mesh', 'nested');
    await rm(folder, { recursive: true, force: true });
    const answers: Record<MeshName, MeshAnswer | Error> = {
      istio: answer('istio', true),
      linkerd: answer('linkerd', false),
    };
    const { c } = cache(answers, { dir: folder });
    await c.refresh();
    const first = answers.istio as Extract<MeshAnswer, { kind: 'render' }>;
    expect(await readdir(folder)).toEqual(['istio.yaml']);
    expect(await readFile(join(folder, 'istio.yaml'), 'utf8')).toBe(first.yaml);

    // Unchanged: not written again (a file changed by hand stays as it is).
    await writeFile(join(folder, 'istio.yaml'), 'by hand');
    await c.refresh();
    expect(await readFile(join(folder, 'istio.yaml'), 'utf8')).toBe('by hand');

    // Changed, and linkerd enabled.
    answers.istio = answer('istio', true, [object('DestinationRule', 'web-2')]);
    answers.linkerd = answer('linkerd', true);
    await c.refresh();
    expect((await readdir(folder)).sort()).toEqual(['istio.yaml', 'linkerd.yaml']);
    expect(await readFile(join(folder, 'istio.yaml'), 'utf8')).toContain('name: web-2');

    // A failure leaves the files as they were.
    answers.istio = new Error('down');
    await c.refresh();
    expect(await readFile(join(folder, 'istio.yaml'), 'utf8')).toContain('name: web-2');

    // Disabled, and the service no longer declared: files gone.
    answers.istio = answer('istio', false);
    answers.linkerd = { kind: 'undeclared' };
    await c.refresh();
    expect(await readdir(folder)).toEqual([]);
    expect(c.get('linkerd')).toEqual({ kind: 'undeclared' });
  });

  it('removes a stale file from an earlier run at the first fetch', async () => {
    await writeFile(join(dir, 'linkerd.yaml'), 'stale');
    const { c } = cache(
      { istio: answer('istio', true), linkerd: answer('linkerd', false) },
      { dir },
    );
    await c.refresh();
    expect(await readdir(dir)).toEqual(['istio.yaml']);
  });

  it('a folder it cannot write is logged once and retried with the next fetch', async () => {
    const blocker = join(dir, 'file');
    await writeFile(blocker, 'not a directory');
    const folder = join(blocker, 'mesh');
    const { c, lines } = cache(
      { istio: answer('istio', true), linkerd: answer('linkerd', false) },
      { dir: folder },
    );
    await c.refresh();
    await c.refresh();
    expect(lines.filter((l) => l.msg === 'cannot write the mesh folder; retrying')).toHaveLength(1);
    // Answers are served regardless.
    expect(c.get('istio')?.kind).toBe('render');
    await rm(blocker);
    await c.refresh();
    expect(await readdir(folder)).toEqual(['istio.yaml']);
    expect(lines.some((l) => l.msg === 'mesh folder written again')).toBe(true);
  });
});
