import { describe, expect, it } from '@jest/globals';
import { performance } from 'node:perf_hooks';
import type { IntentionEntry } from '../policy/intentions.js';
import { intentionSpecSchema, serviceSpecSchema } from '../resources.js';
import { renderMesh } from './index.js';
import { MeshLookup } from './lookup.js';
import { DEFAULT_MESH_OPTIONS, type MeshInput, type MeshService } from './model.js';

function service(namespace: string, name: string, serviceAccount?: string): MeshService {
  return {
    namespace,
    name,
    spec: serviceSpecSchema.parse({
      selector: { app: name },
      ports: [{ name: 'http', port: 8080 }],
      mesh: { istio: true, linkerd: true },
      ...(serviceAccount !== undefined && { serviceAccount }),
    }),
  };
}

function intention(
  namespace: string,
  destination: { name: string; namespace?: string },
  sources: { name: string; namespace?: string }[],
): IntentionEntry {
  return {
    namespace,
    name: `to-${destination.namespace ?? namespace}-${destination.name}`.replace(/\*/g, 'any'),
    spec: intentionSpecSchema.parse({
      destination,
      sources: sources.map((s) => ({ ...s, action: 'allow' })),
    }),
  };
}

const SERVICES = [
  service('shop', 'web', 'web'),
  service('shop', 'cart', 'web'),
  service('shop', 'orders', 'orders'),
  service('pay', 'ledger'),
  service('pay', 'web', 'pay-web'),
];

describe('MeshLookup', () => {
  it.each([
    {
      name: 'an exact destination and an exact source',
      intentions: [intention('shop', { name: 'orders' }, [{ name: 'web' }])],
      destination: 'shop/orders',
      want: { intentions: 1, groups: ['shop/web'] },
    },
    {
      name: 'an intention for another destination decides nothing here',
      intentions: [intention('shop', { name: 'cart' }, [{ name: 'web' }])],
      destination: 'shop/orders',
      want: { intentions: 0, groups: [] },
    },
    {
      name: 'a namespace-wide destination and a namespace-wide source',
      intentions: [intention('shop', { name: '*' }, [{ name: '*', namespace: 'pay' }])],
      destination: 'shop/orders',
      want: { intentions: 1, groups: ['pay/default', 'pay/pay-web'] },
    },
    {
      name: 'a source name in every namespace',
      intentions: [intention('shop', { name: 'orders' }, [{ name: 'web', namespace: '*' }])],
      destination: 'shop/orders',
      want: { intentions: 1, groups: ['pay/pay-web', 'shop/web'] },
    },
    {
      name: 'a wildcard source names every group',
      intentions: [intention('shop', { name: 'orders' }, [{ name: '*', namespace: '*' }])],
      destination: 'shop/orders',
      want: { intentions: 1, groups: ['pay/default', 'pay/pay-web', 'shop/orders', 'shop/web'] },
    },
    {
      name: 'a source naming no declared service names no group',
      intentions: [intention('shop', { name: 'orders' }, [{ name: 'ghost' }])],
      destination: 'shop/orders',
      want: { intentions: 1, groups: [] },
    },
  ])('$name', ({ intentions, destination, want }) => {
    const lookup = new MeshLookup(SERVICES, intentions);
    const [namespace, name] = destination.split('/') as [string, string];
    const relevant = lookup.intentionsFor({ namespace, name });
    expect(relevant).toHaveLength(want.intentions);
    expect(
      lookup
        .groupsNamedBy(relevant)
        .map((g) => `${g.identity.namespace}/${g.identity.serviceAccount}`),
    ).toEqual(want.groups);
  });

  it('groups services by identity in a stable order, with each namespace’s identities', () => {
    const lookup = new MeshLookup(SERVICES, []);
    expect(lookup.groups.map((g) => g.members.map((m) => m.name))).toEqual([
      ['ledger'],
      ['web'],
      ['orders'],
      ['web', 'cart'],
    ]);
    expect([...lookup.namespaces.keys()]).toEqual(['pay', 'shop']);
    expect(lookup.service('shop', 'cart')?.name).toBe('cart');
    expect(lookup.service('shop', 'nope')).toBeUndefined();
  });
});

/**
 * n services in 10 namespaces, each with its own ServiceAccount, and one intention per service
 * allowing the next one to call it: the shape where a scan of all services and all intentions
 * per rendered service made a whole pass O(n²) (O(n³) counting the intentions per caller).
 */
function cluster(n: number): { services: MeshService[]; intentions: IntentionEntry[] } {
  const services = Array.from({ length: n }, (_, i) =>
    service(`ns-${i % 10}`, `svc-${i}`, `sa-${i}`),
  );
  const intentions = services.map((s, i) => {
    const caller = services[(i + 1) % n]!;
    return intention(s.namespace, { name: s.name }, [
      { name: caller.name, namespace: caller.namespace },
    ]);
  });
  return { services, intentions };
}

/** Milliseconds to render every service for both meshes with one lookup (best of three). */
function passMs(n: number): number {
  const { services, intentions } = cluster(n);
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    const lookup = new MeshLookup(services, intentions);
    for (const s of services) {
      const input: MeshInput = {
        service: s,
        services,
        intentions,
        external: [],
        options: { ...DEFAULT_MESH_OPTIONS, intentionDefault: 'deny' },
        lookup,
      };
      renderMesh('istio', input);
      renderMesh('linkerd', input);
    }
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

describe('rendering every service', () => {
  it('renders the same with the pass’s lookup as with one built per render', () => {
    const { services, intentions } = cluster(40);
    const lookup = new MeshLookup(services, intentions);
    for (const s of services.slice(0, 10)) {
      const base = {
        service: s,
        services,
        intentions,
        external: [],
        options: DEFAULT_MESH_OPTIONS,
      };
      for (const mesh of ['istio', 'linkerd'] as const)
        expect(renderMesh(mesh, { ...base, lookup })).toEqual(renderMesh(mesh, base));
    }
  });

  it('reads all services and intentions once per pass, and per service only what concerns it', () => {
    for (const n of [200, 800]) {
      const { services, intentions } = cluster(n);
      let reads = 0;
      /** The array, counting every element read (by index, as iteration does too). */
      const counted = <T extends object>(items: T[]): T[] =>
        new Proxy(items, {
          get(target, key, receiver) {
            if (typeof key === 'string' && /^\d+$/.test(key)) reads += 1;
            return Reflect.get(target, key, receiver) as unknown;
          },
        });
      const allServices = counted(services);
      const allIntentions = counted(intentions);
      const lookup = new MeshLookup(allServices, allIntentions);
      expect(reads).toBeLessThanOrEqual(2 * n + 2);
      reads = 0;
      let looked = 0;
      const intentionsFor = lookup.intentionsFor.bind(lookup);
      const groupsNamedBy = lookup.groupsNamedBy.bind(lookup);
      lookup.intentionsFor = (d) => {
        const out = intentionsFor(d);
        looked += out.length;
        return out;
      };
      lookup.groupsNamedBy = (i) => {
        const out = groupsNamedBy(i);
        looked += out.length;
        return out;
      };
      for (const s of services) {
        const input: MeshInput = {
          service: s,
          services: allServices,
          intentions: allIntentions,
          external: [],
          options: { ...DEFAULT_MESH_OPTIONS, intentionDefault: 'deny' },
          lookup,
        };
        renderMesh('istio', input);
        renderMesh('linkerd', input);
      }
      // No render scanned the services or intentions of the pass...
      expect(reads).toBe(0);
      // ...and what they looked up is a few entries per service (one intention, one caller).
      expect(looked).toBeLessThanOrEqual(4 * 2 * n);
    }
  });

  it('grows linearly: 8× the services take well under 64× (quadratic) the time', () => {
    passMs(200); // warm up the JIT
    // Measured in turns, the best of each, so that load on a shared machine hits both alike.
    let small = Infinity;
    let large = Infinity;
    for (let turn = 0; turn < 2; turn++) {
      small = Math.min(small, passMs(250));
      large = Math.min(large, passMs(2000));
    }
    // Linear is 8×; quadratic would be 64× (and the per-service scans this replaced were
    // cubic with one intention per service). The bound leaves 4× for GC, the JIT and a loaded
    // machine; the test below counts the work instead of timing it.
    expect(large / small).toBeLessThan(32);
  }, 120_000);
});
