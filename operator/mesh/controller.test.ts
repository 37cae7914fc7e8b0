/**
 * What the mesh controller asks the API server per sync, counted on a fake CustomObjectsApi
 * (the real API's behaviour is covered by e2e/mesh.e2e.test.ts): a full sync checks each kind
 * once and lists our objects in pages; a sync on a change lists nothing (only kinds found
 * missing are looked for again) and still prunes what is no longer rendered.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry as PromRegistry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { MeshLookup } from '../../common/mesh/lookup.js';
import { DEFAULT_MESH_OPTIONS, type MeshService } from '../../common/mesh/model.js';
import { serviceSpecSchema } from '../../common/resources.js';
import type { MaxineEvent } from '../../common/wire.js';
import type { MaxineResource } from '../../common/resources.js';
import { MESH_KINDS, MeshController, type MeshObjectsApi } from './controller.js';
import type { ListedMeta } from './owned.js';

type Params = Record<string, unknown>;

class ApiError extends Error {
  constructor(readonly code: number) {
    super(`HTTP-Code: ${code}`);
  }
}

/** An in-memory API server for mesh objects that counts the calls it gets. */
class FakeApi {
  readonly calls: { method: string; params: Params }[] = [];
  /** Kinds (`plural.group`) whose CRD is not installed. */
  readonly missing = new Set<string>();
  /** Objects by `plural/namespace/name`. */
  readonly objects = new Map<string, { plural: string; metadata: ListedMeta }>();
  /** Fail the next continued list with 410 (its continue token expired). */
  expireNextContinue = false;

  lists(): Params[] {
    return this.calls.filter((c) => c.method === 'list').map((c) => c.params);
  }

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }

  reset(): void {
    this.calls.length = 0;
  }

  readonly api = {
    listClusterCustomObject: (params: Params) => {
      this.calls.push({ method: 'list', params });
      const plural = params.plural as string;
      if (this.missing.has(`${plural}.${String(params.group)}`))
        return Promise.reject(new ApiError(404));
      if (params._continue !== undefined && this.expireNextContinue) {
        this.expireNextContinue = false;
        return Promise.reject(new ApiError(410));
      }
      const all = [...this.objects.values()]
        .filter((o) => o.plural === plural)
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      const limit = params.limit as number;
      const from = Number(params._continue ?? 0);
      const items = all.slice(from, from + limit).map((o) => ({ metadata: o.metadata }));
      const next = from + limit < all.length ? String(from + limit) : undefined;
      return Promise.resolve({ items, metadata: next === undefined ? {} : { continue: next } });
    },
    getNamespacedCustomObject: (params: Params) => {
      this.calls.push({ method: 'get', params });
      const held = this.objects.get(
        `${String(params.plural)}/${String(params.namespace)}/${String(params.name)}`,
      );
      return held === undefined ? Promise.reject(new ApiError(404)) : Promise.resolve(held);
    },
    patchNamespacedCustomObject: (params: Params) => {
      this.calls.push({ method: 'patch', params });
      const body = params.body as { metadata: ListedMeta };
      const plural = params.plural as string;
      if (this.missing.has(`${plural}.${String(params.group)}`))
        return Promise.reject(new ApiError(404));
      this.objects.set(`${plural}/${body.metadata.namespace}/${body.metadata.name}`, {
        plural,
        metadata: body.metadata,
      });
      return Promise.resolve(body);
    },
    deleteNamespacedCustomObject: (params: Params) => {
      this.calls.push({ method: 'delete', params });
      const key = `${String(params.plural)}/${String(params.namespace)}/${String(params.name)}`;
      if (!this.objects.delete(key)) return Promise.reject(new ApiError(404));
      return Promise.resolve({});
    },
  } as unknown as MeshObjectsApi;
}

function meshService(name: string): MeshService {
  return {
    namespace: 'shop',
    name,
    spec: serviceSpecSchema.parse({
      selector: { app: name },
      ports: [{ name: 'http', port: 8080 }],
      serviceAccount: name,
      mesh: { istio: true, linkerd: true },
    }),
  };
}

const KIND_COUNT = MESH_KINDS.istio.length + MESH_KINDS.linkerd.length;
const running: MeshController[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

/** A controller over `services` (mutable: tests add and remove) and the fake API. */
function setup(fake: FakeApi, services: MeshService[], listPageSize = 500) {
  let listener: ((event: MaxineEvent) => void) | undefined;
  const prom = new PromRegistry();
  const controller = new MeshController({
    kubeConfig: new KubeConfig(),
    api: fake.api,
    listPageSize,
    reconciler: {
      setMeshReport: () => false,
      resourceOf: (key: string) =>
        ({ metadata: { uid: `uid-${key}` } }) as unknown as MaxineResource,
    },
    renderer: {
      pass: () => new MeshLookup([...services], []),
      input: (namespace, name, lookup) => {
        const pass = lookup ?? new MeshLookup([...services], []);
        const service = pass.service(namespace, name)!;
        return {
          service,
          services: pass.services,
          intentions: pass.intentions,
          external: [],
          options: DEFAULT_MESH_OPTIONS,
          lookup: pass,
        };
      },
    },
    events: {
      subscribe: (l) => {
        listener = l;
        return () => undefined;
      },
    },
    logger: createLogger('silent'),
    isLeader: () => true,
    statusChanged: () => undefined,
    resyncMs: 3_600_000,
    debounceMs: 0,
    prom,
  });
  running.push(controller);
  const syncs = async () =>
    (await prom.getSingleMetric('maxine_mesh_syncs_total')!.get()).values.reduce(
      (n, v) => n + v.value,
      0,
    );
  /** Sends a change event and waits for the sync it triggers to finish. */
  const change = async () => {
    const before = await syncs();
    listener!({
      seq: 1,
      type: 'service_updated',
      time: new Date().toISOString(),
      service: { namespace: 'shop', name: 'x' },
    } as MaxineEvent);
    for (let i = 0; i < 500 && (await syncs()) === before; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(await syncs()).toBe(before + 1);
  };
  return { controller, change };
}

describe('MeshController API calls per sync', () => {
  it('a full sync checks each kind once and lists our objects in pages; a change lists nothing', async () => {
    const fake = new FakeApi();
    const services = Array.from({ length: 30 }, (_, i) => meshService(`svc-${i}`));
    const { controller, change } = setup(fake, services, 10);
    controller.start();
    await controller.syncNow();
    const detections = fake.lists().filter((p) => p.limit === 1 && p.labelSelector === undefined);
    expect(detections).toHaveLength(KIND_COUNT);
    const pages = fake.lists().filter((p) => p.labelSelector !== undefined);
    // Every page asks for at most 10 objects; the 30 DestinationRules take 3 pages (+ 1 empty
    // page after the third says no more), the continue token carried from page to page.
    expect(pages.every((p) => p.limit === 10)).toBe(true);
    const drPages = pages.filter((p) => p.plural === 'destinationrules');
    expect(drPages.length).toBeGreaterThanOrEqual(3);
    expect(drPages.slice(1).every((p) => typeof p._continue === 'string')).toBe(true);

    fake.reset();
    await change();
    expect(fake.lists()).toHaveLength(0);
    // Nothing changed in the renders: nothing written either.
    expect(fake.count('patch')).toBe(0);
    expect(fake.count('delete')).toBe(0);
  });

  it('a sync on a change still prunes what is no longer rendered, without listing', async () => {
    const fake = new FakeApi();
    const services = [meshService('a'), meshService('b')];
    const { controller, change } = setup(fake, services);
    controller.start();
    await controller.syncNow();
    const ofB = () => [...fake.objects.values()].filter((o) => o.metadata.name.startsWith('b'));
    expect(ofB().length).toBeGreaterThan(0);
    fake.reset();
    services.splice(1, 1);
    await change();
    expect(fake.lists()).toHaveLength(0);
    expect(ofB()).toHaveLength(0);
    expect(fake.count('delete')).toBeGreaterThan(0);
  });

  it('a full sync prunes objects it did not apply itself (left by another leader)', async () => {
    const fake = new FakeApi();
    const services = [meshService('a')];
    const { controller } = setup(fake, services);
    controller.start();
    await controller.syncNow();
    const stale = [...fake.objects.entries()].find(([, o]) => o.plural === 'destinationrules')!;
    fake.objects.set('destinationrules/shop/gone', {
      plural: 'destinationrules',
      metadata: { ...stale[1].metadata, name: 'gone' },
    });
    await controller.syncNow();
    expect(fake.objects.has('destinationrules/shop/gone')).toBe(false);
  });

  it('kinds found missing are looked for again on each change, present ones are not', async () => {
    const fake = new FakeApi();
    for (const k of MESH_KINDS.linkerd) fake.missing.add(`${k.plural}.${k.group}`);
    const { controller, change } = setup(fake, [meshService('a')]);
    controller.start();
    await controller.syncNow();
    fake.reset();
    await change();
    expect(fake.lists().map((p) => p.plural)).toEqual(MESH_KINDS.linkerd.map((k) => k.plural));
    // The CRDs get installed: the next change applies the Linkerd objects.
    fake.missing.clear();
    fake.reset();
    await change();
    expect(fake.lists()).toHaveLength(MESH_KINDS.linkerd.length);
    expect(
      fake.calls.some((c) => c.method === 'patch' && c.params.group === 'policy.linkerd.io'),
    ).toBe(true);
    fake.reset();
    await change();
    expect(fake.lists()).toHaveLength(0);
  });

  it('an expired continue token starts the list again', async () => {
    const fake = new FakeApi();
    const { controller } = setup(fake, [meshService('a'), meshService('b'), meshService('c')], 1);
    controller.start();
    await controller.syncNow();
    const before = fake.objects.size;
    fake.expireNextContinue = true;
    fake.reset();
    await controller.syncNow();
    expect(fake.objects.size).toBe(before);
    const fresh = fake.lists().filter((p) => p.labelSelector !== undefined && !p._continue);
    // One list per kind from the start, plus the one that started again after the 410.
    expect(fresh).toHaveLength(KIND_COUNT + 1);
  });
});
