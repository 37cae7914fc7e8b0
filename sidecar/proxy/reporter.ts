/**
 * The proxy's observer for the dependency graph: counts every ended call per destination
 * (calls, errors, a latency histogram over the buckets the operator reads) and collects the
 * breakers' transitions, then posts them to the operator (`POST /api/v1/reports`) every
 * interval, and soon after a transition so subscribers hear of an open circuit at once.
 *
 * Memory is bounded: at most `MAX_REPORT_EDGES` destinations and `MAX_REPORT_CIRCUITS`
 * transitions are held (what does not fit is dropped and counted). While the operator cannot
 * be reached the counts keep accumulating in the same bounded maps and are sent once it
 * answers; data older than `dropAfterMs` is dropped (counted, logged) rather than reported late
 * as if it were recent. Like the agent, it never throws into the proxy or the process.
 */
import type { Logger } from '../../common/logger.js';
import { DNS_LABEL_RE } from '../../common/names.js';
import {
  CALL_LATENCY_BUCKETS_MS,
  MAX_REPORT_CIRCUITS,
  MAX_REPORT_EDGES,
} from '../../common/wire.js';
import type {
  CallReportInput,
  ReportedCircuit,
  ReportedEdge,
  ServiceRef,
} from '../../common/wire.js';
import { backoffDelay } from '../backoff.js';
import { requestJson } from '../http-json.js';
import type { BreakerTransition, CallObserver, CallRecord } from './hooks.js';

export const REPORTS_PATH = '/api/v1/reports';

export interface ReporterOptions {
  operatorUrl: string;
  /** The pod's own service: the source of every edge. */
  source: ServiceRef;
  pod?: string | undefined;
  logger: Logger;
  /** The bearer token (the pod's projected ServiceAccount token), read fresh each call. */
  token?: (() => Promise<string | undefined>) | undefined;
  /** Between two reports (`MAXINE_REPORT_INTERVAL_SECONDS`). */
  intervalMs: number;
  /** How soon after a circuit transition the report goes out (default 200 ms). */
  transitionDelayMs?: number;
  /** Unsent data older than this is dropped (default 60 s). */
  dropAfterMs?: number;
  requestTimeoutMs?: number;
  /** Back-off ceiling while the operator is away (default 60 s). */
  retryMaxMs?: number;
  maxDestinations?: number;
  maxCircuits?: number;
  now?: () => number;
}

interface Pending {
  edges: Map<string, ReportedEdge>;
  circuits: ReportedCircuit[];
  /** When the oldest unsent observation was made. */
  since: number | undefined;
}

export interface ReporterStatus {
  reports: number;
  failures: number;
  pending: { destinations: number; circuits: number };
  /** What was thrown away, and why. */
  dropped: {
    /** Calls to a destination beyond the bound of destinations. */
    overflowCalls: number;
    /** Transitions beyond the bound of transitions. */
    overflowCircuits: number;
    /** Calls and transitions held past `dropAfterMs` while the operator was away. */
    staleCalls: number;
    staleCircuits: number;
    /** Calls and transitions the operator refused as invalid (400). */
    refusedCalls: number;
    refusedCircuits: number;
  };
  lastError?: string;
}

const empty = (): Pending => ({ edges: new Map(), circuits: [], since: undefined });

/** The histogram bucket of a duration: the first upper bound it does not exceed. */
export function bucketOf(durationMs: number): number {
  const i = CALL_LATENCY_BUCKETS_MS.findIndex((bound) => durationMs <= bound);
  return i === -1 ? CALL_LATENCY_BUCKETS_MS.length : i;
}

const isServiceRef = (s: ServiceRef): boolean =>
  DNS_LABEL_RE.test(s.namespace) && DNS_LABEL_RE.test(s.name);

export class CallReporter implements CallObserver {
  private pending: Pending = empty();
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private started = false;
  private failing = 0;
  private readonly now: () => number;
  private readonly stats: ReporterStatus = {
    reports: 0,
    failures: 0,
    pending: { destinations: 0, circuits: 0 },
    dropped: {
      overflowCalls: 0,
      overflowCircuits: 0,
      staleCalls: 0,
      staleCircuits: 0,
      refusedCalls: 0,
      refusedCircuits: 0,
    },
  };

  constructor(private readonly opts: ReporterOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** `CallObserver`: the engine calls this once per ended call. */
  callEnded(record: CallRecord): void {
    const d = record.destination;
    if (!isServiceRef(d)) return;
    const key = `${d.namespace}/${d.name}`;
    let edge = this.pending.edges.get(key);
    if (edge === undefined) {
      if (this.pending.edges.size >= (this.opts.maxDestinations ?? MAX_REPORT_EDGES)) {
        this.stats.dropped.overflowCalls += 1;
        return;
      }
      edge = {
        destination: { namespace: d.namespace, name: d.name },
        calls: 0,
        errors: 0,
        latencyMs: new Array<number>(CALL_LATENCY_BUCKETS_MS.length + 1).fill(0),
      };
      this.pending.edges.set(key, edge);
    }
    edge.calls += 1;
    if (record.status >= 500 || record.status === 0) edge.errors += 1;
    const bucket = bucketOf(record.durationMs);
    edge.latencyMs[bucket] = (edge.latencyMs[bucket] ?? 0) + 1;
    this.pending.since ??= this.now();
  }

  /** The breakers' `onTransition`: held for the next report, which goes out soon. */
  circuitChanged(t: BreakerTransition): void {
    if (!isServiceRef(t.destination) || t.from === t.to) return;
    const circuits = this.pending.circuits;
    if (circuits.length >= (this.opts.maxCircuits ?? MAX_REPORT_CIRCUITS)) {
      // The newest say where each circuit is now: the oldest go.
      circuits.shift();
      this.stats.dropped.overflowCircuits += 1;
    }
    circuits.push({
      destination: { namespace: t.destination.namespace, name: t.destination.name },
      ...(t.instanceId !== undefined && { instanceId: t.instanceId }),
      from: t.from,
      to: t.to,
      ...(t.openMs !== undefined && {
        openMs: Math.min(86_400_000, Math.max(0, Math.round(t.openMs))),
      }),
      at: Math.max(0, Math.round(t.at)),
    });
    this.pending.since ??= this.now();
    if (this.failing === 0) this.schedule(this.opts.transitionDelayMs ?? 200);
  }

  status(): ReporterStatus {
    return {
      ...this.stats,
      pending: { destinations: this.pending.edges.size, circuits: this.pending.circuits.length },
      dropped: { ...this.stats.dropped },
    };
  }

  /** Starts the report loop (an interval of 0 turns reporting off). */
  start(): void {
    if (this.started || this.stopped || this.opts.intervalMs <= 0) return;
    this.started = true;
    this.schedule(this.opts.intervalMs);
  }

  /** Stops the loop after one last report (bounded by the request timeout). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.started) await this.send();
  }

  /** Sends what is pending now (tests, shutdown). */
  flush(): Promise<void> {
    this.running = this.running.then(async () => {
      await this.send();
    });
    return this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped || !this.started) return;
    const due = this.now() + ms;
    if (this.timer !== undefined && due >= this.dueAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dueAt = Infinity;
      this.running = this.running.then(async () => {
        const ok = await this.send();
        this.schedule(ok ? this.opts.intervalMs : this.retryDelay());
      });
    }, ms);
    this.timer.unref();
  }

  private retryDelay(): number {
    const base = Math.min(this.opts.intervalMs, 5_000);
    return backoffDelay(this.failing - 1, {
      baseMs: base,
      maxMs: Math.max(this.opts.retryMaxMs ?? 60_000, base),
    });
  }

  /** Posts what is pending; true when it went (or there was nothing to send). Never throws. */
  private async send(): Promise<boolean> {
    const batch = this.pending;
    if (batch.edges.size === 0 && batch.circuits.length === 0) return true;
    this.pending = empty();
    const body: CallReportInput = {
      source: this.opts.source,
      ...(this.opts.pod !== undefined && { pod: this.opts.pod }),
      edges: [...batch.edges.values()],
      circuits: batch.circuits,
    };
    try {
      const token = await this.opts.token?.();
      const res = await requestJson(new URL(REPORTS_PATH, this.opts.operatorUrl), {
        method: 'POST',
        body,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        timeoutMs: this.opts.requestTimeoutMs ?? 5_000,
      });
      if (res.status === 202) {
        this.succeeded();
        return true;
      }
      const error = (res.body as { error?: { code?: string; message?: string } } | undefined)
        ?.error;
      if (res.status === 400) {
        this.invalid(batch, error);
        return true;
      }
      this.failed(batch, `HTTP ${res.status}${error?.code ? ` ${error.code}` : ''}`, res.status);
    } catch (err) {
      this.failed(batch, err instanceof Error ? err.message : String(err));
    }
    return false;
  }

  /** The operator refused the report as invalid: resending it cannot succeed, so it goes. */
  private invalid(batch: Pending, error: { code?: string; message?: string } | undefined): void {
    this.stats.dropped.refusedCalls += countCalls(batch);
    this.stats.dropped.refusedCircuits += batch.circuits.length;
    this.opts.logger.error(
      { status: 400, code: error?.code, message: error?.message },
      'the operator refused a call report as invalid; its data is dropped',
    );
    this.succeeded();
  }

  private succeeded(): void {
    if (this.failing > 0)
      this.opts.logger.info({ after: this.failing }, 'call reports reach the operator again');
    this.failing = 0;
    this.stats.reports += 1;
    this.stats.lastError = undefined;
  }

  /** Puts an unsent batch back (merged with what came since), or drops it when too old. */
  private failed(batch: Pending, error: string, status?: number): void {
    this.failing += 1;
    this.stats.failures += 1;
    this.stats.lastError = error;
    if (this.failing === 1 || this.failing % 10 === 0) {
      this.opts.logger.warn(
        { failures: this.failing, error, ...(status !== undefined && { status }) },
        status === undefined
          ? 'cannot reach the operator with a call report; keeping it for the next try'
          : 'the operator refused a call report; keeping it for the next try',
      );
    }
    const since = batch.since ?? this.now();
    if (this.now() - since > (this.opts.dropAfterMs ?? 60_000)) {
      const calls = countCalls(batch) + countCalls(this.pending);
      const circuits = batch.circuits.length + this.pending.circuits.length;
      this.stats.dropped.staleCalls += calls;
      this.stats.dropped.staleCircuits += circuits;
      this.pending = empty();
      this.opts.logger.warn(
        { calls, circuits, heldMs: this.now() - since },
        'dropped call reports the operator could not take in time',
      );
      return;
    }
    this.pending = merge(batch, this.pending, {
      maxDestinations: this.opts.maxDestinations ?? MAX_REPORT_EDGES,
      maxCircuits: this.opts.maxCircuits ?? MAX_REPORT_CIRCUITS,
      overflow: (calls, circuits) => {
        this.stats.dropped.overflowCalls += calls;
        this.stats.dropped.overflowCircuits += circuits;
      },
    });
  }
}

const countCalls = (p: Pending): number =>
  [...p.edges.values()].reduce((sum, e) => sum + e.calls, 0);

/**
 * `older` then `newer`: counts added, transitions in order. The bounds hold for the sum too
 * (calls made while a failed report was in flight may name other destinations): destinations
 * first seen in `newer` past the bound go, and the oldest transitions past theirs.
 */
function merge(
  older: Pending,
  newer: Pending,
  bounds: {
    maxDestinations: number;
    maxCircuits: number;
    overflow: (calls: number, circuits: number) => void;
  },
): Pending {
  const edges = new Map(older.edges);
  for (const [key, e] of newer.edges) {
    const held = edges.get(key);
    if (held !== undefined) {
      held.calls += e.calls;
      held.errors += e.errors;
      e.latencyMs.forEach((n, i) => {
        held.latencyMs[i] = (held.latencyMs[i] ?? 0) + n;
      });
    } else if (edges.size < bounds.maxDestinations) edges.set(key, e);
    else bounds.overflow(e.calls, 0);
  }
  const circuits = [...older.circuits, ...newer.circuits];
  const excess = Math.max(0, circuits.length - bounds.maxCircuits);
  if (excess > 0) {
    circuits.splice(0, excess);
    bounds.overflow(0, excess);
  }
  return { edges, circuits, since: older.since ?? newer.since };
}
