/**
 * What a sidecar's call report (POST /api/v1/reports) becomes, pure: its edges go to the
 * observed edges, its circuit transitions become `circuit_state_changed` events. Only
 * destinations the registry knows are taken (a report cannot plant services in the graph or
 * events about services that do not exist); the rest is counted as ignored.
 */
import type { Instance, CallReport, RegistryEventDraft, ReportedEdge } from '../../common/wire.js';
import type { ServiceRef } from '../../common/policy/acl.js';

export interface ReportContext {
  /** Whether the registry knows the service. */
  knows(service: ServiceRef): boolean;
  /** An instance by id, to attach to a per-instance transition. */
  instance(id: string): Instance | undefined;
  /** The reporting pod: the token's in Kubernetes mode, else the report's own `pod`. */
  pod?: string | undefined;
}

export interface ReportPlan {
  edges: ReportedEdge[];
  events: Extract<RegistryEventDraft, { type: 'circuit_state_changed' }>[];
  /** Edges and transitions whose destination the registry does not know. */
  ignored: number;
  /** Transitions naming an `instanceId` that is not an instance of their destination. */
  foreignInstances: number;
}

export function planReport(report: CallReport, ctx: ReportContext): ReportPlan {
  const edges = report.edges.filter((e) => ctx.knows(e.destination) && e.calls > 0);
  const ignoredEdges = report.edges.filter((e) => !ctx.knows(e.destination)).length;
  const events: ReportPlan['events'] = [];
  let ignored = ignoredEdges;
  let foreignInstances = 0;
  const reporter = {
    service: { namespace: report.source.namespace, name: report.source.name },
    ...(ctx.pod !== undefined && { pod: ctx.pod }),
  };
  for (const c of [...report.circuits].sort((a, b) => a.at - b.at)) {
    if (!ctx.knows(c.destination)) {
      ignored += 1;
      continue;
    }
    const service = { namespace: c.destination.namespace, name: c.destination.name };
    const known = c.instanceId === undefined ? undefined : ctx.instance(c.instanceId);
    const instance =
      known !== undefined &&
      known.service.namespace === service.namespace &&
      known.service.name === service.name
        ? known
        : undefined;
    // An event about an instance the destination does not have would tell subscribers of a
    // circuit that is not there (or put one into another service's stream).
    if (c.instanceId !== undefined && instance === undefined) {
      foreignInstances += 1;
      continue;
    }
    events.push({
      type: 'circuit_state_changed',
      service,
      ...(instance !== undefined && { instance }),
      data: {
        from: c.from,
        to: c.to,
        ...(c.openMs !== undefined && { openMs: c.openMs }),
        ...(c.instanceId !== undefined && { instanceId: c.instanceId }),
        reporter,
      },
    });
  }
  return { edges, events, ignored, foreignInstances };
}
