/**
 * The dependency graph, pure: declared edges (MaxineService `dependencies`), observed edges
 * (sidecar reports over a sliding window, observed.ts) and intentions (is the call allowed,
 * decided as the sidecar and discovery decide it, with the caller as source) merged into one
 * answer, with cycles (Tarjan's strongly connected components over declared ∪ observed edges;
 * a self-loop is a cycle) and the edges worth a look called out. Rendered as JSON or Graphviz.
 */
import { CALL_LATENCY_BUCKETS_MS } from '../../common/wire.js';
import type { ServiceRef } from '../../common/policy/acl.js';
import type { ObservedEdge } from './observed.js';

export interface DeclaredService {
  namespace: string;
  name: string;
  /** `spec.dependencies`, namespace defaulting to the service's own. */
  dependencies?: readonly { namespace?: string | undefined; name: string }[] | undefined;
}

export interface GraphInput {
  /** Services the registry knows (declared by a MaxineService or not). */
  services: readonly { namespace: string; name: string; declared: boolean }[];
  /** MaxineServices with their dependencies. */
  declared: readonly DeclaredService[];
  observed: readonly ObservedEdge[];
  /** The intention decision for `source` calling `destination`. */
  allowed(source: ServiceRef, destination: ServiceRef): { allowed: boolean; decidedBy: string };
  /** Which services the caller may see (ACL `read`); edges need both ends visible. */
  visible(service: ServiceRef): boolean;
  /** Only nodes of this namespace and edges touching it. */
  namespace?: string | undefined;
  /** The observation window, for rates. */
  windowSeconds: number;
}

export interface GraphNode {
  id: string;
  namespace: string;
  name: string;
  /** Declared by a MaxineService. */
  declared: boolean;
}

export interface GraphEdge {
  source: string;
  destination: string;
  /** In the source's `spec.dependencies`. */
  declared: boolean;
  /** Calls were reported within the window. */
  observed: boolean;
  /** The intentions let the source call the destination. */
  allowed: boolean;
  /** The intention (`namespace/name`) or `default` that decided `allowed`. */
  decidedBy?: string;
  calls: number;
  errors: number;
  /** Calls per second over the window. */
  rps: number;
  /** errors / calls; 0 without calls. */
  errorRate: number;
  /** Latency percentiles from the reported histogram; null without calls. */
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface EdgeRef {
  source: string;
  destination: string;
}

export interface Graph {
  windowSeconds: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Each a strongly connected component (or a self-loop), members sorted. */
  cycles: string[][];
  /** Observed but not declared. */
  undeclared: EdgeRef[];
  /** Declared or observed, but refused by the intentions. */
  denied: EdgeRef[];
}

const idOf = (s: ServiceRef): string => `${s.namespace}/${s.name}`;

function refOf(id: string): ServiceRef {
  const slash = id.indexOf('/');
  return { namespace: id.slice(0, slash), name: id.slice(slash + 1) };
}

/**
 * The latency at quantile `q` of a histogram over `CALL_LATENCY_BUCKETS_MS` (plus overflow),
 * interpolated linearly inside its bucket as Prometheus' `histogram_quantile` does; the
 * overflow bucket answers its lower bound. Null for an empty histogram.
 */
export function quantileMs(latency: readonly number[], q: number): number | null {
  const total = latency.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < latency.length; i += 1) {
    const n = latency[i] ?? 0;
    if (n > 0 && seen + n >= rank) {
      const lower = i === 0 ? 0 : (CALL_LATENCY_BUCKETS_MS[i - 1] ?? 0);
      const upper = CALL_LATENCY_BUCKETS_MS[i];
      if (upper === undefined) return lower;
      return round(lower + (upper - lower) * ((rank - seen) / n));
    }
    seen += n;
  }
  return CALL_LATENCY_BUCKETS_MS.at(-1) ?? null;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

/** Iterative Tarjan: a deep chain of services must not overflow the stack. */
class Tarjan {
  private readonly index = new Map<string, number>();
  private readonly low = new Map<string, number>();
  private readonly onStack = new Set<string>();
  private readonly stack: string[] = [];
  private next = 0;
  readonly components: string[][] = [];

  constructor(private readonly out: ReadonlyMap<string, readonly string[]>) {}

  run(): string[][] {
    for (const root of [...this.out.keys()].sort()) if (!this.index.has(root)) this.from(root);
    return this.components;
  }

  private visit(node: string): void {
    this.index.set(node, this.next);
    this.low.set(node, this.next);
    this.next += 1;
    this.stack.push(node);
    this.onStack.add(node);
  }

  private lower(node: string, to: number | undefined): void {
    this.low.set(node, Math.min(this.low.get(node) ?? 0, to ?? 0));
  }

  private from(root: string): void {
    const work: { node: string; child: number }[] = [{ node: root, child: 0 }];
    this.visit(root);
    for (let frame = work.at(-1); frame !== undefined; frame = work.at(-1)) {
      const w = this.out.get(frame.node)?.[frame.child];
      if (w !== undefined) {
        frame.child += 1;
        if (!this.index.has(w)) {
          this.visit(w);
          work.push({ node: w, child: 0 });
        } else if (this.onStack.has(w)) this.lower(frame.node, this.index.get(w));
        continue;
      }
      work.pop();
      const parent = work.at(-1);
      if (parent !== undefined) this.lower(parent.node, this.low.get(frame.node));
      if (this.low.get(frame.node) === this.index.get(frame.node)) this.pop(frame.node);
    }
  }

  private pop(head: string): void {
    const component: string[] = [];
    for (let member = this.stack.pop(); member !== undefined; member = this.stack.pop()) {
      this.onStack.delete(member);
      component.push(member);
      if (member === head) break;
    }
    this.components.push(component);
  }
}

/**
 * Strongly connected components with more than one member, or one member with an edge to
 * itself: every set of services that can call back into itself. Members and the list sorted.
 */
export function findCycles(edges: readonly EdgeRef[]): string[][] {
  const out = new Map<string, string[]>();
  const selfLoops = new Set<string>();
  for (const e of edges) {
    if (e.source === e.destination) selfLoops.add(e.source);
    out.set(e.source, [...(out.get(e.source) ?? []), e.destination]);
    if (!out.has(e.destination)) out.set(e.destination, []);
  }
  return new Tarjan(out)
    .run()
    .filter((c) => c.length > 1 || selfLoops.has(c[0] ?? ''))
    .map((c) => c.sort())
    .sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
}

/** The visible services in the namespace asked for, and every end of a kept edge. */
function nodesOf(
  input: GraphInput,
  kept: readonly GraphEdge[],
  touches: (id: string) => boolean,
): GraphNode[] {
  const nodes = new Map<string, GraphNode>();
  const declaredIds = new Set(input.declared.map(idOf));
  const addNode = (id: string, declared: boolean): void => {
    if (!nodes.has(id)) nodes.set(id, { id, ...refOf(id), declared });
  };
  const shown = (s: ServiceRef): boolean => input.visible(s) && touches(idOf(s));
  for (const s of input.services) if (shown(s)) addNode(idOf(s), s.declared);
  for (const s of input.declared) if (shown(s)) addNode(idOf(s), true);
  for (const e of kept) {
    addNode(e.source, declaredIds.has(e.source));
    addNode(e.destination, declaredIds.has(e.destination));
  }
  return [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** Merges declared, observed and allowed into the graph the caller may see. */
export function buildGraph(input: GraphInput): Graph {
  const edges = new Map<string, GraphEdge>();
  const edgeOf = (source: ServiceRef, destination: ServiceRef): GraphEdge | undefined => {
    if (!input.visible(source) || !input.visible(destination)) return undefined;
    const key = `${idOf(source)}>${idOf(destination)}`;
    let edge = edges.get(key);
    if (edge === undefined) {
      const decision = input.allowed(source, destination);
      edge = {
        source: idOf(source),
        destination: idOf(destination),
        declared: false,
        observed: false,
        allowed: decision.allowed,
        decidedBy: decision.decidedBy,
        calls: 0,
        errors: 0,
        rps: 0,
        errorRate: 0,
        p50Ms: null,
        p99Ms: null,
      };
      edges.set(key, edge);
    }
    return edge;
  };
  for (const s of input.declared) {
    for (const d of s.dependencies ?? []) {
      const edge = edgeOf(s, { namespace: d.namespace ?? s.namespace, name: d.name });
      if (edge !== undefined) edge.declared = true;
    }
  }
  for (const o of input.observed) {
    if (o.calls === 0) continue;
    const edge = edgeOf(o.source, o.destination);
    if (edge === undefined) continue;
    edge.observed = true;
    edge.calls = o.calls;
    edge.errors = o.errors;
    edge.rps = round(o.calls / input.windowSeconds);
    edge.errorRate = round(o.errors / o.calls);
    edge.p50Ms = quantileMs(o.latency, 0.5);
    edge.p99Ms = quantileMs(o.latency, 0.99);
  }
  const all = [...edges.values()];
  const ns = input.namespace;
  const touches = (id: string): boolean => ns === undefined || refOf(id).namespace === ns;
  const kept = all
    .filter((e) => touches(e.source) || touches(e.destination))
    .sort((a, b) =>
      a.source === b.source
        ? a.destination.localeCompare(b.destination)
        : a.source.localeCompare(b.source),
    );

  const nodes = nodesOf(input, kept, touches);

  // Cycles over every visible edge, so a cycle leaving the namespace is still found; kept
  // when one of its members is in the namespace asked for.
  const cycles = findCycles(all).filter((c) => c.some(touches));
  const ref = (e: GraphEdge): EdgeRef => ({ source: e.source, destination: e.destination });
  return {
    windowSeconds: input.windowSeconds,
    nodes,
    edges: kept,
    cycles,
    undeclared: kept.filter((e) => e.observed && !e.declared).map(ref),
    denied: kept.filter((e) => !e.allowed).map(ref),
  };
}

/** A Graphviz ID: always quoted, with `"` and `\` escaped and line breaks as `\n`. */
export function dotId(text: string): string {
  const escaped = text
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\r\n|\r|\n/g, '\\n');
  return `"${escaped}"`;
}

function edgeStyle(e: GraphEdge): string {
  const attrs: string[] = [];
  if (!e.allowed) attrs.push('color="red"', 'fontcolor="red"', 'penwidth=2');
  else if (e.observed && !e.declared) attrs.push('color="orange"', 'fontcolor="orange"');
  else if (e.declared && !e.observed) attrs.push('color="gray50"');
  attrs.push(`style=${e.observed ? (e.declared ? 'solid' : 'bold') : 'dashed'}`);
  const label = [
    e.observed ? `${e.rps} rps` : 'declared',
    e.errors > 0 ? `${Math.round(e.errorRate * 1000) / 10}% err` : '',
    e.p99Ms !== null ? `p99 ${e.p99Ms} ms` : '',
    e.allowed ? '' : 'denied',
    e.observed && !e.declared ? 'undeclared' : '',
  ]
    .filter((x) => x !== '')
    .join(', ');
  attrs.push(`label=${dotId(label)}`);
  return attrs.join(', ');
}

/**
 * The graph in Graphviz DOT: solid edges declared and observed, bold orange observed but not
 * declared, dashed declared but not observed, red denied by an intention; nodes in a cycle red.
 */
export function renderDot(graph: Graph): string {
  const inCycle = new Set(graph.cycles.flat());
  const lines = ['digraph maxine {', '  rankdir=LR;', '  node [shape=box, fontname="Helvetica"];'];
  for (const n of graph.nodes) {
    const attrs = [`label=${dotId(n.id)}`];
    if (!n.declared) attrs.push('style=dashed');
    if (inCycle.has(n.id)) attrs.push('color="red"');
    lines.push(`  ${dotId(n.id)} [${attrs.join(', ')}];`);
  }
  for (const e of graph.edges)
    lines.push(`  ${dotId(e.source)} -> ${dotId(e.destination)} [${edgeStyle(e)}];`);
  lines.push('}');
  return lines.join('\n') + '\n';
}
