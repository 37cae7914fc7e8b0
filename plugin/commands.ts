/**
 * The operator-backed commands: status, discover, why, graph, events. Each asks the operator's
 * REST API (docs/api.md) and prints its answer; none decides anything itself (`why` prints
 * the operator's own decision from GET /api/v1/intentions/check).
 */
import { splitRef } from './args.js';
import { EXIT, PluginError } from './exit-codes.js';
import type { Command } from './args.js';
import { orNone, render } from './format.js';
import type { Column } from './format.js';
import { parseSse } from './sse.js';
import type { OperatorTransport } from './transport.js';

type Of<C extends Command['command']> = Extract<Command, { command: C }>;

export interface Context {
  transport: OperatorTransport;
  /** The namespace of names without one (-n, else the kubeconfig context's). */
  namespace: string;
  write: (text: string) => void;
}

interface Counts {
  total: number;
  passing: number;
  warning: number;
  critical: number;
}
interface ServiceSummary {
  namespace: string;
  name: string;
  declared: boolean;
  blocked?: { registration?: boolean; discovery?: boolean; reason?: string };
  instances: Counts;
}

const query = (params: Record<string, string | undefined>): string => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
};

async function json<T>(transport: OperatorTransport, path: string): Promise<T> {
  return JSON.parse((await transport.get(path)).body) as T;
}

/** READY as kubectl shows it: healthy (passing or warning) of all. */
const ready = (c: Counts): string => `${c.passing + c.warning}/${c.total}`;

function blockedOf(s: ServiceSummary): string {
  const b = s.blocked;
  if (b === undefined) return '';
  return [b.registration === true && 'registration', b.discovery === true && 'discovery']
    .filter(Boolean)
    .join(',');
}

export const STATUS_COLUMNS: Column<ServiceSummary>[] = [
  { header: 'NAMESPACE', value: (s) => s.namespace },
  { header: 'NAME', value: (s) => s.name },
  { header: 'READY', value: (s) => ready(s.instances) },
  { header: 'PASSING', value: (s) => String(s.instances.passing) },
  { header: 'WARNING', value: (s) => String(s.instances.warning) },
  { header: 'CRITICAL', value: (s) => String(s.instances.critical) },
  { header: 'DECLARED', value: (s) => String(s.declared), wide: true },
  { header: 'BLOCKED', value: (s) => orNone(blockedOf(s)), wide: true },
  { header: 'REASON', value: (s) => orNone(s.blocked?.reason), wide: true },
];

/** A `circuit_state_changed` event, the fields the breaker column reads. */
interface CircuitEvent {
  seq: number;
  service: { namespace: string; name: string };
  data: {
    to: 'closed' | 'open' | 'half-open';
    instanceId?: string;
    reporter: { service: { namespace: string; name: string }; pod?: string };
  };
}

export interface BreakerCounts {
  open: number;
  halfOpen: number;
  closed: number;
}

/**
 * The last reported state of each circuit to each destination service (pure): a circuit is one
 * caller's breaker (its service and pod) for the destination, or for one of its instances.
 * Events in the order the operator numbered them; later states replace earlier ones.
 */
export function breakerStates(events: readonly CircuitEvent[]): Map<string, BreakerCounts> {
  const last = new Map<string, { destination: string; to: CircuitEvent['data']['to'] }>();
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    const destination = refText(e.service);
    const circuit = [
      refText(e.data.reporter.service),
      e.data.reporter.pod ?? '',
      destination,
      e.data.instanceId ?? '',
    ].join(' ');
    last.set(circuit, { destination, to: e.data.to });
  }
  const out = new Map<string, BreakerCounts>();
  for (const { destination, to } of last.values()) {
    const counts = out.get(destination) ?? { open: 0, halfOpen: 0, closed: 0 };
    if (to === 'open') counts.open += 1;
    else if (to === 'half-open') counts.halfOpen += 1;
    else counts.closed += 1;
    out.set(destination, counts);
  }
  return out;
}

/** `2 open,1 half-open`, `closed` when every known circuit is, `<none>` when none was reported. */
export function breakerText(counts: BreakerCounts | undefined): string {
  if (counts === undefined) return '<none>';
  const parts = [
    counts.open > 0 && `${counts.open} open`,
    counts.halfOpen > 0 && `${counts.halfOpen} half-open`,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(',') : 'closed';
}

/**
 * The circuit transitions the operator's event log holds (sidecars report them; no other
 * answer of the operator keeps breaker states), undefined when it cannot say (an operator
 * without `follow=false`, or a stream cut short).
 */
async function heldCircuitEvents(
  ctx: Context,
  namespace: string | undefined,
): Promise<CircuitEvent[] | undefined> {
  const events: CircuitEvent[] = [];
  const path = `/api/v1/events${query({
    types: 'circuit_state_changed',
    services: namespace === undefined ? undefined : `${namespace}/*`,
    follow: 'false',
  })}`;
  let tail = '';
  const feed = parseSse((data) => events.push(JSON.parse(data) as CircuitEvent));
  try {
    await ctx.transport.stream(path, 'text/event-stream', (chunk) => {
      tail = (tail + chunk).slice(-64);
      feed(chunk);
    });
  } catch (err) {
    if (err instanceof PluginError) return undefined;
    throw err;
  }
  return tail.includes(': closed 1000 ') ? events : undefined;
}

export async function status(c: Of<'status'>, ctx: Context): Promise<void> {
  const namespace = c.allNamespaces ? undefined : ctx.namespace;
  const answer = await json<{ services: ServiceSummary[] }>(
    ctx.transport,
    `/api/v1/services${query({ namespace })}`,
  );
  if (answer.services.length === 0 && (c.output === 'table' || c.output === 'wide')) {
    ctx.write(
      `No Maxine services found${namespace === undefined ? '' : ` in ${namespace} namespace`}.\n`,
    );
    return;
  }
  let columns = STATUS_COLUMNS;
  if (c.output === 'wide') {
    const held = await heldCircuitEvents(ctx, namespace);
    const states = held === undefined ? undefined : breakerStates(held);
    columns = [
      ...STATUS_COLUMNS,
      {
        header: 'BREAKERS',
        value: (s) => (states === undefined ? '<unknown>' : breakerText(states.get(refText(s)))),
      },
    ];
  }
  ctx.write(render(c.output, answer, answer.services, columns));
}

interface Discovered {
  id: string;
  host: string;
  port: number;
  version?: string;
  zone?: string;
  datacenter?: string;
  weight: number;
  health: string;
  metadata: Record<string, string>;
}

export const DISCOVER_COLUMNS: Column<Discovered>[] = [
  { header: 'ID', value: (i) => i.id },
  { header: 'ADDRESS', value: (i) => `${i.host}:${i.port}` },
  { header: 'HEALTH', value: (i) => i.health },
  { header: 'VERSION', value: (i) => orNone(i.version) },
  { header: 'ZONE', value: (i) => orNone(i.zone), wide: true },
  { header: 'DATACENTER', value: (i) => orNone(i.datacenter), wide: true },
  { header: 'WEIGHT', value: (i) => String(i.weight), wide: true },
];

export async function discover(c: Of<'discover'>, ctx: Context): Promise<void> {
  const { namespace, name } = splitRef(c.service, ctx.namespace);
  const path = `/api/v1/discover/${namespace}/${name}${query({ all: c.all ? 'true' : undefined })}`;
  const answer = await json<{ instance?: Discovered; instances?: Discovered[] }>(
    ctx.transport,
    path,
  );
  const rows = answer.instances ?? (answer.instance === undefined ? [] : [answer.instance]);
  ctx.write(render(c.output, answer, rows, DISCOVER_COLUMNS));
}

interface Decision {
  source: { namespace: string; name: string };
  destination: { namespace: string; name: string };
  request?: { method: string; path: string };
  allowed: boolean;
  decidedBy?: { intention?: string; source?: string; permission?: number } | string;
  reason?: string;
}

const refText = (r: { namespace: string; name: string }): string => `${r.namespace}/${r.name}`;

function decidedByText(d: Decision['decidedBy']): string {
  if (d === undefined) return '<none>';
  if (typeof d === 'string') return d;
  const parts = [d.intention && `intention ${d.intention}`, d.source && `source ${d.source}`];
  if (d.permission !== undefined) parts.push(`permission ${d.permission}`);
  return parts.filter(Boolean).join(', ') || 'default';
}

/** The decision as lines of `FIELD: value`, like kubectl describe. */
export function describeDecision(d: Decision): string {
  const lines: [string, string][] = [
    ['Source', refText(d.source)],
    ['Destination', refText(d.destination)],
    ...(d.request
      ? ([['Request', `${d.request.method} ${d.request.path}`]] as [string, string][])
      : []),
    ['Allowed', d.allowed ? 'yes' : 'no'],
    ['Decided by', decidedByText(d.decidedBy)],
    ['Reason', orNone(d.reason)],
  ];
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  return lines.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join('\n') + '\n';
}

export async function why(c: Of<'why'>, ctx: Context): Promise<void> {
  const source = splitRef(c.source, ctx.namespace);
  const destination = splitRef(c.destination, ctx.namespace);
  const path = `/api/v1/intentions/check${query({
    source: refText(source),
    destination: refText(destination),
    method: c.method,
    path: c.path,
  })}`;
  const decision = await json<Decision>(ctx.transport, path);
  if (c.output === 'json' || c.output === 'yaml') ctx.write(render(c.output, decision, [], []));
  else ctx.write(describeDecision(decision));
}

interface Edge {
  source: string;
  destination: string;
  declared: boolean;
  observed: boolean;
  allowed: boolean;
  decidedBy?: string;
  calls?: number;
  rps?: number;
  errorRate?: number | null;
  p99Ms?: number | null;
}
interface Graph {
  edges: Edge[];
  cycles: string[][];
}

const num = (v: number | null | undefined, digits = 2): string =>
  v === undefined || v === null ? '<none>' : String(Number(v.toFixed(digits)));

export const GRAPH_COLUMNS: Column<Edge>[] = [
  { header: 'SOURCE', value: (e) => e.source },
  { header: 'DESTINATION', value: (e) => e.destination },
  { header: 'DECLARED', value: (e) => String(e.declared) },
  { header: 'OBSERVED', value: (e) => String(e.observed) },
  { header: 'ALLOWED', value: (e) => String(e.allowed) },
  { header: 'DECIDED-BY', value: (e) => orNone(e.decidedBy), wide: true },
  { header: 'RPS', value: (e) => num(e.rps), wide: true },
  { header: 'ERROR-RATE', value: (e) => num(e.errorRate, 3), wide: true },
  { header: 'P99-MS', value: (e) => num(e.p99Ms), wide: true },
];

export async function graph(c: Of<'graph'>, ctx: Context): Promise<void> {
  const namespace = c.allNamespaces ? undefined : ctx.namespace;
  if (c.output === 'dot') {
    const answer = await ctx.transport.get(
      `/api/v1/graph${query({ namespace, format: 'dot' })}`,
      'text/vnd.graphviz',
    );
    ctx.write(answer.body.endsWith('\n') ? answer.body : `${answer.body}\n`);
    return;
  }
  const answer = await json<Graph>(ctx.transport, `/api/v1/graph${query({ namespace })}`);
  let text = render(c.output, answer, answer.edges, GRAPH_COLUMNS);
  if ((c.output === 'table' || c.output === 'wide') && answer.cycles.length > 0)
    text += answer.cycles.map((cycle) => `cycle: ${cycle.join(' -> ')}\n`).join('');
  ctx.write(text);
}

interface EventEnvelope {
  seq: number;
  type: string;
  time: string;
  service?: { namespace: string; name: string };
  instance?: { id?: string; host?: string; port?: number; health?: { status?: string } };
  data?: unknown;
}

/** One event as a line: TIME TYPE SERVICE INSTANCE (wide: SEQ first, and the data). */
export function eventLine(e: EventEnvelope, wide: boolean): string {
  const cells = [
    e.time,
    e.type,
    e.service === undefined ? '-' : refText(e.service),
    e.instance?.id ?? '-',
  ];
  if (wide) cells.unshift(String(e.seq));
  if (wide && e.data !== undefined) cells.push(JSON.stringify(e.data));
  return `${cells.join('  ')}\n`;
}

/**
 * The event stream: with `-f` the live events as they come, until interrupted (resolves when
 * the operator ends the stream); without, the events the operator holds now (its replay,
 * `follow=false`), and resolves when they are printed.
 */
export async function events(c: Of<'events'>, ctx: Context): Promise<void> {
  const services = c.services.map((s) => refText(splitRef(s, ctx.namespace)));
  const path = `/api/v1/events${query({
    services: services.length === 0 ? undefined : services.join(','),
    types: c.types.length === 0 ? undefined : c.types.join(','),
    follow: c.follow ? undefined : 'false',
  })}`;
  const feed = parseSse((data) => {
    const event = JSON.parse(data) as EventEnvelope;
    ctx.write(
      c.output === 'json' ? `${JSON.stringify(event)}\n` : eventLine(event, c.output === 'wide'),
    );
  });
  // Without -f the operator ends the stream with `: closed 1000 replay done`: any other end
  // (a restart, a proxy timing out) cut the replay short.
  let tail = '';
  await ctx.transport.stream(path, 'text/event-stream', (chunk) => {
    tail = (tail + chunk).slice(-64);
    feed(chunk);
  });
  if (!c.follow && !tail.includes(': closed 1000 '))
    throw new PluginError(
      EXIT.operatorMissing,
      'the event stream ended before the operator sent all its events: try again',
    );
}
