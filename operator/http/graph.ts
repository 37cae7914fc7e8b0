/**
 * The dependency graph's two endpoints: `POST /api/v1/reports`, where each caller's sidecar
 * posts what it observed of its outbound calls (edges, circuit transitions), and
 * `GET /api/v1/graph`, the merged graph as JSON or Graphviz DOT. The merging is pure
 * (operator/graph/); this file authenticates, parses, records, counts and logs.
 */
import type { Express, Request, Response } from 'express';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import { z } from 'zod';
import { validationError } from '../../common/errors.js';
import { dnsLabel } from '../../common/names.js';
import { callReportSchema, MAX_REPORT_BYTES } from '../../common/wire.js';
import type { RegistryEventDraft } from '../../common/wire.js';
import type { Logger } from '../../common/logger.js';
import type { InstanceWriteGuard } from '../auth/instance-guard.js';
import { buildGraph, renderDot } from '../graph/graph.js';
import type { ObservedEdges } from '../graph/observed.js';
import { planReport } from '../graph/reports.js';
import type { AccessControl } from '../policy/access.js';
import type { Reconciler } from '../reconciler.js';
import type { Registry } from '../registry/registry.js';
import { readJsonBody } from './body.js';
import { CircuitEventGate, MAX_HELD_CIRCUITS } from '../graph/circuit-gate.js';
import type { CircuitEvent, GateOutcome } from '../graph/circuit-gate.js';
import type { ReportPlan } from '../graph/reports.js';
import type { ServiceRef } from '../../common/policy/acl.js';

export interface GraphDeps {
  registry: Registry;
  reconciler: Pick<Reconciler, 'services'>;
  access: AccessControl;
  guard: InstanceWriteGuard;
  observed: ObservedEdges;
  /** Appends to the registry's event log (circuit transitions). */
  emit(draft: RegistryEventDraft): void;
  windowSeconds: number;
  bodyTimeoutMs?: number;
  prom: PromRegistry;
  logger: Logger;
  now(): number;
}

export const REPORTS_PATH = '/api/v1/reports';
export const GRAPH_PATH = '/api/v1/graph';

const graphQuery = z.strictObject({
  namespace: dnsLabel.optional(),
  format: z.enum(['json', 'dot']).optional(),
});

/**
 * Circuit transitions one caller service may turn into events at once: an outage of a
 * destination with many instances opens them all at once (the burst), breakers then flap at
 * most once per open time. Past it transitions are held and coalesced per circuit, and the
 * latest state of each is emitted as the rate allows (operator/graph/circuit-gate.ts), so a
 * misbehaving reporter cannot flood the event log, and no circuit's last state is lost.
 */
/** How often held circuit transitions are looked at again (10/s: one token a tick). */
export const CIRCUIT_RELEASE_MS = 100;

export const DOT_CONTENT_TYPE = 'text/vnd.graphviz; charset=utf-8';

function graphMetrics(deps: GraphDeps) {
  const reports = new Counter({
    name: 'maxine_graph_reports_total',
    help: 'Call reports from sidecars (POST /api/v1/reports), by outcome',
    labelNames: ['outcome'],
    registers: [deps.prom],
  });
  const ignored = new Counter({
    name: 'maxine_graph_ignored_total',
    help: 'Reported edges and circuit transitions naming a destination the registry does not know',
    registers: [deps.prom],
  });
  const throttled = new Counter({
    name: 'maxine_circuit_throttled_total',
    help: 'Reported circuit transitions held back (their caller passed 10/s, burst 200): coalesced per circuit, the latest state emitted later',
    registers: [deps.prom],
  });
  const refusedCircuits = new Counter({
    name: 'maxine_circuit_refused_total',
    help: 'Reported circuit transitions without an event: past the held bound (10000), or naming an instance their destination does not have',
    labelNames: ['reason'],
    registers: [deps.prom],
  });
  const transitions = new Counter({
    name: 'maxine_circuit_transitions_total',
    help: 'Circuit-breaker transitions reported by sidecars, by the state entered',
    labelNames: ['to'],
    registers: [deps.prom],
  });
  new Gauge({
    name: 'maxine_graph_observed_edges',
    help: 'Observed caller → destination edges held (at most --graph-max-edges)',
    registers: [deps.prom],
    collect() {
      this.set(deps.observed.sweep(deps.now()));
    },
  });
  new Counter({
    name: 'maxine_graph_edge_evictions_total',
    help: 'Observed edges dropped to stay within --graph-max-edges (least recently reported first)',
    registers: [deps.prom],
    collect() {
      this.reset();
      this.inc(deps.observed.evictions);
    },
  });
  new Counter({
    name: 'maxine_graph_edges_refused_total',
    help: 'New observed edges refused because their caller already had 256 destinations in the window',
    registers: [deps.prom],
    collect() {
      this.reset();
      this.inc(deps.observed.refused);
    },
  });
  return { reports, ignored, transitions, throttled, refusedCircuits };
}

export function mountGraphRoutes(
  app: Express,
  deps: GraphDeps,
  methodNotAllowed: (allowed: string) => (req: Request, res: Response) => void,
): void {
  const metrics = graphMetrics(deps);
  const gate = new CircuitEventGate();
  new Gauge({
    name: 'maxine_circuit_held',
    help: `Circuits whose latest reported transition waits for its caller's rate (at most ${MAX_HELD_CIRCUITS})`,
    registers: [deps.prom],
    collect() {
      this.set(gate.size);
    },
  });
  new Counter({
    name: 'maxine_circuit_coalesced_total',
    help: 'Held circuit transitions replaced by a later one of the same circuit (an intermediate state not emitted)',
    registers: [deps.prom],
    collect() {
      this.reset();
      this.inc(gate.coalesced);
    },
  });

  const emitCircuit = (event: CircuitEvent, reqId: unknown): void => {
    deps.emit(event);
    metrics.transitions.inc({ to: event.data.to });
    const reporter = event.data.reporter;
    deps.logger.info(
      {
        ...(reqId !== undefined && { reqId }),
        kind: 'MaxineService',
        namespace: event.service.namespace,
        name: event.service.name,
        instance: event.data.instanceId,
        from: event.data.from,
        to: event.data.to,
        openMs: event.data.openMs,
        reporter: `${reporter.service.namespace}/${reporter.service.name}`,
        pod: reporter.pod,
      },
      'circuit state changed',
    );
  };
  // One timer while anything is held; unref'd: held transitions never keep the process up.
  let releaseTimer: NodeJS.Timeout | undefined;
  const scheduleRelease = (): void => {
    if (releaseTimer !== undefined || gate.size === 0) return;
    releaseTimer = setTimeout(() => {
      releaseTimer = undefined;
      try {
        for (const event of gate.release(deps.now())) emitCircuit(event, undefined);
      } catch (err) {
        deps.logger.error({ err }, 'releasing held circuit transitions failed');
      }
      scheduleRelease();
    }, CIRCUIT_RELEASE_MS);
    releaseTimer.unref();
  };

  /** Passes a report's transitions through the gate; counts and logs what was held or refused. */
  const gateCircuits = (reqId: unknown, source: ServiceRef, plan: ReportPlan): GateOutcome => {
    const gated = gate.offer(`${source.namespace}/${source.name}`, plan.events, deps.now());
    const about = { reqId, kind: 'MaxineService', namespace: source.namespace, name: source.name };
    if (gated.held > 0 || gated.refused > 0) {
      metrics.throttled.inc(gated.held);
      if (gated.refused > 0) metrics.refusedCircuits.inc({ reason: 'held-bound' }, gated.refused);
      deps.logger.warn(
        { ...about, throttled: gated.held, refused: gated.refused, held: gate.size },
        gated.refused > 0
          ? `circuit transitions reported too fast; held circuits at their bound of ${MAX_HELD_CIRCUITS}, new ones dropped without events`
          : 'circuit transitions reported too fast; the latest state of each circuit is emitted later',
      );
      scheduleRelease();
    }
    if (plan.foreignInstances > 0) {
      metrics.refusedCircuits.inc({ reason: 'unknown-instance' }, plan.foreignInstances);
      deps.logger.warn(
        { ...about, refused: plan.foreignInstances },
        'circuit transitions name instances their destination does not have; ignored',
      );
    }
    return gated;
  };

  app.post(REPORTS_PATH, async (req, res) => {
    let body;
    try {
      const raw = await readJsonBody(req, MAX_REPORT_BYTES, deps.bodyTimeoutMs);
      const parsed = callReportSchema.safeParse(raw ?? {});
      if (!parsed.success) throw validationError('report', parsed.error);
      body = parsed.data;
    } catch (err) {
      metrics.reports.inc({ outcome: 'invalid' });
      throw err;
    }
    const source = body.source;
    const caller = req.caller;
    deps.access.audited(caller, { action: 'report', service: source }, () => {
      let ownPod: boolean;
      try {
        ownPod = deps.guard.reporter(caller.principal, source);
      } catch (err) {
        metrics.reports.inc({ outcome: 'refused' });
        throw err;
      }
      try {
        deps.access.authorizeRegistration(caller, source, ownPod);
      } catch (err) {
        metrics.reports.inc({ outcome: 'refused' });
        throw err;
      }
    });
    const pod = caller.principal.pod?.pod?.name ?? body.pod;
    // A destination the caller may not know is ignored whether it exists or not: the answer
    // must not tell which services exist elsewhere, and a report must not put events about
    // services it cannot see into their subscribers' streams.
    const plan = planReport(body, {
      knows: (s) =>
        deps.access.mayKnow(caller.principal, s) &&
        deps.registry.counts(s.namespace, s.name) !== undefined,
      instance: (id) => deps.registry.getInstance(id),
      pod,
    });
    const now = deps.now();
    const gated = gateCircuits(req.id, source, plan);
    const throttled = gated.held;
    let recorded = 0;
    for (const edge of plan.edges) if (deps.observed.record(source, edge, now)) recorded += 1;
    for (const event of gated.emit) emitCircuit(event, req.id);
    if (plan.ignored > 0) metrics.ignored.inc(plan.ignored);
    metrics.reports.inc({ outcome: 'accepted' });
    res.status(202).json({
      accepted: { edges: recorded, circuits: gated.emit.length },
      /** Naming a destination the registry does not know, or an instance it does not have. */
      ignored: plan.ignored + plan.foreignInstances,
      /** New edges past the caller's bound of destinations, new circuits past the held bound. */
      refused: plan.edges.length - recorded + gated.refused,
      /** Circuit transitions past the caller's rate: held, the latest state emitted later. */
      throttled,
    });
  });
  app.all(REPORTS_PATH, methodNotAllowed('POST'));

  app.get(GRAPH_PATH, (req, res) => {
    const q = graphQuery.safeParse(req.query);
    if (!q.success) throw validationError('query', q.error);
    const principal = req.caller.principal;
    const graph = buildGraph({
      services: deps.registry.listServices(),
      declared: [...deps.reconciler.services()].map((s) => ({
        namespace: s.namespace,
        name: s.name,
        dependencies: s.spec.dependencies,
      })),
      observed: deps.observed.read(deps.now()),
      allowed: (source, destination) => {
        const d = deps.access.intention(source, destination);
        return {
          allowed: d.allowed,
          decidedBy: d.decidedBy === 'default' ? 'default' : d.decidedBy.intention,
        };
      },
      visible: deps.access.canRead(principal),
      namespace: q.data.namespace,
      windowSeconds: deps.windowSeconds,
    });
    if (q.data.format === 'dot') res.type(DOT_CONTENT_TYPE).send(renderDot(graph));
    else res.json(graph);
  });
  app.all(GRAPH_PATH, methodNotAllowed('GET'));
}
