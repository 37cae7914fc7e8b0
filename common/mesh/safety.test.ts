/**
 * The mesh renderers are never more permissive than Maxine: for every golden case and a set of
 * generated ones, every caller identity and a corpus of requests, a request the rendered Istio
 * or Linkerd objects admit (simulate.ts) is one `evaluateIntentions` allows. How often the
 * meshes are stricter than Maxine is measured and printed.
 *
 * Linkerd is checked twice: with a NetworkAuthentication admitting plaintext clients only (the
 * asserted model) and as the proxy does it, admitting every client of its networks, mTLS ones
 * too (printed only). `SAFETY_DUMP=<case name>` prints a case's input and renders.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import {
  evaluateIntentions,
  type IntentionEntry,
  type Permission,
  type ServiceRef,
} from '../policy/intentions.js';
import { intentionSpecSchema, serviceSpecSchema } from '../resources.js';
import { GOLDEN_CASES, type GoldenCase } from './golden-cases.js';
import { renderIstio, renderLinkerd } from './index.js';
import {
  DEFAULT_MESH_OPTIONS,
  type MeshInput,
  type MeshRender,
  type MeshService,
} from './model.js';
import {
  istioAllows,
  istioPolicies,
  linkerdServers,
  linkerdVerdicts,
  type LinkerdSemantics,
  type SimRequest,
} from './simulate.js';

// ---------------------------------------------------------------- callers

interface Caller {
  label: string;
  /** Istio principal; undefined: plaintext. */
  principal?: string;
  /** Linkerd identity; undefined: plaintext. */
  identity?: string;
  /** The Maxine sources the mesh cannot tell apart behind this identity (undefined: unknown). */
  sources: (ServiceRef | undefined)[];
}

function caller(input: MeshInput, ns: string, sa: string, sources: Caller['sources']): Caller {
  const { trustDomain, linkerdIdentityDomain } = input.options;
  return {
    label: `${ns}/${sa}`,
    principal: `${trustDomain}/ns/${ns}/sa/${sa}`,
    identity: `${sa}.${ns}.serviceaccount.identity.linkerd.${linkerdIdentityDomain}`,
    sources,
  };
}

function callersOf(input: MeshInput): Caller[] {
  const groups = new Map<string, { ns: string; sa: string; sources: Caller['sources'] }>();
  for (const s of input.services) {
    const sa = s.spec.serviceAccount ?? 'default';
    const key = `${s.namespace}/${sa}`;
    const g = groups.get(key) ?? { ns: s.namespace, sa, sources: [] };
    g.sources.push({ namespace: s.namespace, name: s.name });
    // An implicit identity may be shared by pods Maxine does not know.
    if (s.spec.serviceAccount === undefined && !g.sources.includes(undefined))
      g.sources.push(undefined);
    groups.set(key, g);
  }
  const out = [...groups.values()].map((g) => caller(input, g.ns, g.sa, g.sources));
  const namespaces = [...new Set(input.services.map((s) => s.namespace)), 'elsewhere'];
  for (const ns of namespaces) {
    for (const sa of ['unknown-sa', 'default']) {
      if (!groups.has(`${ns}/${sa}`)) out.push(caller(input, ns, sa, [undefined]));
    }
  }
  out.push({ label: 'plaintext', sources: [undefined] });
  return out;
}

// ---------------------------------------------------------------- request corpus

type Header = NonNullable<Permission['http']['headers']>[number];

function permissionsOf(input: MeshInput): Permission[] {
  return input.intentions.flatMap((i) => i.spec.sources.flatMap((s) => s.permissions ?? []));
}

/** A string the regex fully matches, when the crude substitution finds one. */
function regexSample(pattern: string): string | undefined {
  const sample = pattern
    .replace(/\[0-9\]\+/g, '42')
    .replace(/\.\*/g, 'x')
    .replace(/\.\+/g, 'x')
    .replace(/\\(.)/g, '$1');
  try {
    return new RegExp(`^(?:${pattern})$`).test(sample) ? sample : undefined;
  } catch {
    return undefined;
  }
}

function pathsOf(perms: readonly Permission[]): string[] {
  const paths = new Set(['/', '/other', '/other?q=1']);
  for (const { http } of perms) {
    if (http.pathExact !== undefined) paths.add(http.pathExact).add(`${http.pathExact}?a=b`);
    if (http.pathPrefix !== undefined) {
      const p = http.pathPrefix;
      paths.add(p).add(`${p}x`).add(`${p}/x`);
    }
    if (http.pathRegex !== undefined) {
      const sample = regexSample(http.pathRegex);
      if (sample !== undefined) paths.add(sample);
    }
  }
  return [...paths].sort();
}

function headerValues(h: Header): string[] {
  const values = ['nomatch'];
  if (h.exact !== undefined) values.push(h.exact, `${h.exact}z`);
  if (h.prefix !== undefined) values.push(`${h.prefix}z`);
  if (h.suffix !== undefined) values.push(`z${h.suffix}`);
  if (h.contains !== undefined) values.push(`z${h.contains}z`);
  if (h.regex !== undefined) {
    const sample = regexSample(h.regex);
    if (sample !== undefined) values.push(sample);
  }
  return values;
}

const MAX_HEADER_SETS = 64;

function headerSetsOf(perms: readonly Permission[]): Record<string, string | undefined>[] {
  const byName = new Map<string, Set<string | undefined>>();
  for (const h of perms.flatMap((p) => p.http.headers ?? [])) {
    const name = h.name.toLowerCase();
    const set = byName.get(name) ?? new Set<string | undefined>([undefined]);
    for (const v of headerValues(h)) set.add(v);
    byName.set(name, set);
  }
  let sets: Record<string, string | undefined>[] = [{}];
  for (const [name, values] of [...byName.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    sets = sets.flatMap((s) => [...values].map((v) => ({ ...s, [name]: v })));
    if (sets.length > MAX_HEADER_SETS) sets = sets.filter((_, i) => i % 2 === 0);
  }
  return sets.map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)));
}

function requestsOf(input: MeshInput): SimRequest[] {
  const perms = permissionsOf(input);
  const methods = new Set(['GET', 'POST', 'DELETE']);
  for (const p of perms) for (const m of p.http.methods ?? []) methods.add(m);
  const headerSets = headerSetsOf(perms);
  const out: SimRequest[] = [];
  for (const path of pathsOf(perms))
    for (const method of methods)
      for (const headers of headerSets) out.push({ method, path, headers });
  return out;
}

// ---------------------------------------------------------------- checking

interface Tally {
  checks: number;
  /** Maxine allows (for every source behind the identity). */
  maxineAllows: number;
  /** Mesh denies where Maxine allows. */
  stricter: number;
  /** Mesh allows where Maxine denies. */
  unsafe: number;
  /** Cases with an unsafe verdict. */
  cases: Set<string>;
  violations: string[];
}

const newTally = (): Tally => ({
  checks: 0,
  maxineAllows: 0,
  stricter: 0,
  unsafe: 0,
  cases: new Set(),
  violations: [],
});
const TALLIES = {
  istio: newTally(),
  linkerd: newTally(),
  linkerdRealNetworkAuth: newTally(),
};
const COUNTS = { cases: 0, skipped: 0, callers: 0, requests: 0 };
const MAX_VIOLATIONS_PER_CASE = 2;

function record(t: Tally, mesh: boolean, maxine: boolean, describe: () => string): void {
  t.checks++;
  if (maxine) t.maxineAllows++;
  if (maxine && !mesh) t.stricter++;
  if (mesh && !maxine) {
    t.unsafe++;
    const text = describe();
    const name = text.slice(0, text.indexOf(' '));
    t.cases.add(name);
    if (t.violations.filter((v) => v.startsWith(`${name} `)).length < MAX_VIOLATIONS_PER_CASE)
      t.violations.push(text);
  }
}

/** Maxine's verdict for a caller: allowed only if allowed for every source behind it. */
function maxineVerdict(input: MeshInput, c: Caller, req: SimRequest): boolean {
  const destination = { namespace: input.service.namespace, name: input.service.name };
  return c.sources.every(
    (source) =>
      evaluateIntentions(
        input.intentions,
        { source, destination, http: req },
        input.options.intentionDefault,
      ).allowed,
  );
}

function describeCheck(name: string, c: Caller, req: SimRequest, extra = ''): string {
  const sources = c.sources.map((s) =>
    s === undefined ? '(unknown)' : `${s.namespace}/${s.name}`,
  );
  return `${name}: caller ${c.label} [${sources.join(', ')}] ${req.method} ${req.path} ${JSON.stringify(req.headers)}: mesh allows, Maxine denies${extra}`;
}

/** A render without the objects that carry authorization must say why. */
function declined(render: MeshRender, kinds: string[]): boolean {
  const subjects = render.differences.map((d) => d.subject);
  return kinds.some((k) => subjects.includes(k));
}

const REAL: LinkerdSemantics = { networkAdmitsMeshed: true };
const PLAINTEXT_ONLY: LinkerdSemantics = { networkAdmitsMeshed: false };

interface CaseResult {
  istioExact: boolean;
}

function checkCase(c: GoldenCase): CaseResult {
  const { input } = c;
  const istio = renderIstio(input);
  const linkerd = renderLinkerd(input);
  const policies = istioPolicies(istio.objects);
  const servers = linkerdServers(linkerd.objects);
  if (process.env.SAFETY_DUMP === c.name)
    console.log(JSON.stringify({ input, istio, linkerd }, null, 1));
  const selector = input.service.spec.selector ?? {};
  const istioDeclined = Object.keys(selector).length === 0;
  if (istioDeclined) expect(declined(istio, ['spec.selector'])).toBe(true);
  if (servers.length === 0) expect(declined(linkerd, ['spec.selector', 'spec.ports'])).toBe(true);
  if (istioDeclined && servers.length === 0) {
    COUNTS.skipped++;
    return { istioExact: true };
  }
  COUNTS.cases++;
  const callers = callersOf(input);
  const requests = requestsOf(input);
  COUNTS.callers += callers.length;
  COUNTS.requests += requests.length;
  let istioExact = true;
  for (const who of callers) {
    for (const req of requests) {
      const maxine = maxineVerdict(input, who, req);
      if (!istioDeclined) {
        const mesh = istioAllows(policies, { ...req, principal: who.principal });
        if (mesh !== maxine) istioExact = false;
        record(TALLIES.istio, mesh, maxine, () => describeCheck(`${c.name} (istio)`, who, req));
      }
      if (servers.length > 0) checkLinkerd(c, who, req, maxine, linkerd);
    }
  }
  return { istioExact };
}

function checkLinkerd(
  c: GoldenCase,
  who: Caller,
  req: SimRequest,
  maxine: boolean,
  render: MeshRender,
): void {
  const lreq = { ...req, identity: who.identity };
  for (const [semantics, tally] of [
    [PLAINTEXT_ONLY, TALLIES.linkerd],
    [REAL, TALLIES.linkerdRealNetworkAuth],
  ] as const) {
    for (const v of linkerdVerdicts(render.objects, lreq, semantics)) {
      record(tally, v.allowed, maxine, () =>
        describeCheck(
          `${c.name} (linkerd${semantics.networkAdmitsMeshed ? ', NetworkAuthentication admits mTLS clients' : ''})`,
          who,
          req,
          ` (Server ${v.server}, route(s) ${v.routes.join(', ')})`,
        ),
      );
    }
  }
}

// ---------------------------------------------------------------- generated cases

/** mulberry32: a small seeded PRNG, so the generated cases are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rand, p: number) => r() < p;

const NAMESPACES = ['shop', 'finance', 'ops'];
const NAMES = ['web', 'admin', 'api', 'batch', 'legacy', 'reports'];
const EXACT_PATHS = ['/orders', '/admin', '/api/v1', '/'];
const PREFIXES = ['/api', '/api/', '/admin', '/', '/orders'];
const REGEXES = ['/reports/[0-9]+', '/internal/.*', '/api/.*', '/orders'];
const METHODS = ['GET', 'POST', 'DELETE', 'HEAD'];
const HEADERS: Header[] = [
  { name: 'x-tenant', exact: 'acme' },
  { name: 'x-tenant', prefix: 'ac' },
  { name: 'x-tenant', suffix: 'me' },
  { name: 'x-tenant', contains: 'cm' },
  { name: 'x-tenant', regex: 'a[a-z]+' },
  { name: 'x-admin', present: true },
  { name: 'x-admin' },
  { name: 'x-admin', present: false },
  { name: 'x-debug', exact: '1', invert: true },
  { name: 'X-Debug', exact: '1' },
  { name: 'x-admin', present: true, invert: true },
];

function genHttp(r: Rand): Permission['http'] {
  const http: Record<string, unknown> = {};
  const path = r();
  if (path < 0.3) http.pathExact = pick(r, EXACT_PATHS);
  else if (path < 0.6) http.pathPrefix = pick(r, PREFIXES);
  else if (path < 0.75) http.pathRegex = pick(r, REGEXES);
  if (chance(r, 0.4)) http.methods = [...new Set([pick(r, METHODS), pick(r, METHODS)])];
  const headers = Math.floor(r() * 3) - (chance(r, 0.4) ? 1 : 0);
  if (headers > 0) http.headers = Array.from({ length: headers }, () => ({ ...pick(r, HEADERS) }));
  return http;
}

function genSource(r: Rand): Record<string, unknown> {
  const kind = r();
  const source: Record<string, unknown> =
    kind < 0.55
      ? { name: pick(r, NAMES) }
      : kind < 0.7
        ? { name: pick(r, NAMES), namespace: pick(r, NAMESPACES) }
        : kind < 0.85
          ? { name: '*' }
          : { name: '*', namespace: '*' };
  if (chance(r, 0.45)) {
    source.action = chance(r, 0.5) ? 'allow' : 'deny';
  } else {
    source.permissions = Array.from({ length: 1 + Math.floor(r() * 4) }, () => ({
      action: chance(r, 0.6) ? 'allow' : 'deny',
      http: genHttp(r),
    }));
  }
  return source;
}

function genIntention(r: Rand, dest: MeshService, index: number): IntentionEntry | undefined {
  const where = r();
  const namespace = where < 0.8 ? dest.namespace : pick(r, NAMESPACES);
  const destination =
    where < 0.6
      ? { name: dest.name }
      : where < 0.8
        ? { name: '*' }
        : { name: chance(r, 0.5) ? dest.name : '*', namespace: dest.namespace };
  const sources = Array.from({ length: 1 + Math.floor(r() * 4) }, () => genSource(r));
  const parsed = intentionSpecSchema.safeParse({ destination, sources });
  return parsed.success ? { namespace, name: `gen-${index}`, spec: parsed.data } : undefined;
}

function genService(r: Rand, namespace: string, name: string): MeshService {
  const sa = r();
  const spec: Record<string, unknown> = { selector: { app: name } };
  if (sa < 0.35) spec.serviceAccount = name;
  else if (sa < 0.55) spec.serviceAccount = 'shared';
  else if (sa < 0.65) spec.serviceAccount = 'default';
  return { namespace, name, spec: serviceSpecSchema.parse(spec) };
}

function genDestination(r: Rand): MeshService {
  const spec: Record<string, unknown> = {
    serviceAccount: chance(r, 0.8) ? 'orders' : undefined,
  };
  if (chance(r, 0.93)) spec.selector = { app: 'orders' };
  const ports = r();
  if (ports < 0.75) spec.ports = [{ name: 'http', port: 8080 }];
  else if (ports < 0.92)
    spec.ports = [
      { name: 'http', port: 8080 },
      { name: pick(r, ['grpc', 'raw']), port: 9090, protocol: pick(r, ['grpc', 'tcp']) },
    ];
  return { namespace: 'shop', name: 'orders', spec: serviceSpecSchema.parse(spec) };
}

function genCase(seed: number): GoldenCase {
  const r = prng(seed);
  const dest = genDestination(r);
  const services = [dest];
  const taken = new Set(['shop/orders']);
  for (let i = 0, n = 2 + Math.floor(r() * 4); i < n; i++) {
    const ns = pick(r, NAMESPACES);
    const name = pick(r, NAMES);
    if (taken.has(`${ns}/${name}`)) continue;
    taken.add(`${ns}/${name}`);
    services.push(genService(r, ns, name));
  }
  const intentions: IntentionEntry[] = [];
  for (let i = 0, n = 1 + Math.floor(r() * 3); i < n; i++) {
    const entry = genIntention(r, dest, i);
    if (entry !== undefined) intentions.push(entry);
  }
  return {
    name: `generated-${seed}`,
    input: {
      service: dest,
      services,
      intentions,
      external: [],
      options: { ...DEFAULT_MESH_OPTIONS, intentionDefault: chance(r, 0.5) ? 'allow' : 'deny' },
    },
  };
}

const GENERATED = Array.from({ length: 150 }, (_, i) => genCase(1000 + i));

/** Small hand-written cases, each the minimal form of a counterexample the generator found. */
function regression(name: string, permissions: unknown[]): GoldenCase {
  const orders = GOLDEN_CASES[0]!.input.service;
  const web = GOLDEN_CASES[0]!.input.services.find((s) => s.name === 'web')!;
  const spec = intentionSpecSchema.parse({
    destination: { name: 'orders' },
    sources: [{ name: 'web', permissions }],
  });
  return {
    name,
    input: {
      service: orders,
      services: [orders, web],
      intentions: [{ namespace: 'shop', name: 'orders-web', spec }],
      external: [],
      options: { ...DEFAULT_MESH_OPTIONS, intentionDefault: 'allow' },
    },
  };
}

const REGRESSIONS = [
  // A deny permission Linkerd cannot route (negated header) while the default allows: web
  // must not get GET /admin without x-debug: 1.
  regression('linkerd-unroutable-deny-default-allow', [
    {
      action: 'deny',
      http: { pathPrefix: '/admin', headers: [{ name: 'x-debug', exact: '1', invert: true }] },
    },
  ]),
  // A deny route as specific as the catch-all route on "/" (Exact "/" and PathPrefix "/" both
  // rank 1): the proxy may pick either, so web may get GET /.
  regression('linkerd-deny-root-ties-catch-all', [{ action: 'deny', http: { pathExact: '/' } }]),
];

// ---------------------------------------------------------------- tests

function ratio(t: Tally): string {
  const exact = t.maxineAllows === 0 ? 1 : 1 - t.stricter / t.maxineAllows;
  return `${t.checks} checks, Maxine allows ${t.maxineAllows}, mesh stricter on ${t.stricter} (${(100 * (1 - exact)).toFixed(1)}% of Maxine's allows denied; exact on ${(100 * (1 - t.stricter / Math.max(1, t.checks))).toFixed(1)}% of checks)`;
}

const violationCounts = () => [TALLIES.istio.violations.length, TALLIES.linkerd.violations.length];
const newViolations = ([istio, linkerd]: number[]) => [
  ...TALLIES.istio.violations.slice(istio),
  ...TALLIES.linkerd.violations.slice(linkerd),
];

describe('mesh renderers are never more permissive than evaluateIntentions', () => {
  afterAll(() => {
    console.log(
      [
        `mesh safety: ${COUNTS.cases} cases (${COUNTS.skipped} declined), ${COUNTS.callers} callers, ${COUNTS.requests} distinct requests (callers and requests summed over the cases)`,
        `  istio: ${ratio(TALLIES.istio)}`,
        `  linkerd (NetworkAuthentication = plaintext only): ${ratio(TALLIES.linkerd)}`,
        `  linkerd (NetworkAuthentication admits mTLS clients too): ${ratio(TALLIES.linkerdRealNetworkAuth)}`,
        `    unsafe: istio ${TALLIES.istio.unsafe} in [${[...TALLIES.istio.cases].join(', ')}]`,
        `    unsafe: linkerd ${TALLIES.linkerd.unsafe} in [${[...TALLIES.linkerd.cases].join(', ')}]`,
        `    unsafe: linkerd (real NetworkAuthentication) ${TALLIES.linkerdRealNetworkAuth.unsafe} in [${[...TALLIES.linkerdRealNetworkAuth.cases].join(', ')}]`,
        ...TALLIES.linkerdRealNetworkAuth.violations.slice(0, 6).map((v) => `    ${v}`),
      ].join('\n'),
    );
  });

  it.each(GOLDEN_CASES.map((c) => [c.name, c] as const))('golden case %s', (_name, c) => {
    const before = violationCounts();
    const { istioExact } = checkCase(c);
    expect(newViolations(before)).toEqual([]);
    if (c.name === 'allow-default-deny' || c.name === 'allow-default-allow')
      expect(istioExact).toBe(true);
  });

  it.each(REGRESSIONS.map((c) => [c.name, c] as const))('regression case %s', (_name, c) => {
    const before = violationCounts();
    checkCase(c);
    expect(newViolations(before)).toEqual([]);
  });

  it(`${GENERATED.length} generated cases`, () => {
    const before = violationCounts();
    for (const c of GENERATED) checkCase(c);
    expect(newViolations(before)).toEqual([]);
  });
});
