/**
 * A latency histogram cheap enough for the hot path. prom-client's Histogram hashes the label
 * set on every observation (~1 µs, the largest cost of a discovery request after Node's own
 * HTTP work in a profile); here each label set is resolved once to a series, and an
 * observation is a short bucket scan and two additions. It registers with prom-client as a
 * metric, so /metrics exposes it as a normal histogram.
 */
import type { MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client';

export type LatencyLabels = { route: string; method: string; status: string };

export class LatencySeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LatencyLabels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= (bounds[i] as number)) {
        (this.counts[i] as number)++;
        break;
      }
    }
    this.sum += seconds;
    this.count += 1;
  }
}

export class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, LatencySeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  /** The series of one label set; callers on hot paths keep it instead of asking again. */
  series$(labels: LatencyLabels): LatencySeries {
    const key = `${labels.route}\u0000${labels.method}\u0000${labels.status}`;
    let s = this.series.get(key);
    if (s === undefined) {
      s = new LatencySeries(labels, this.bounds);
      this.series.set(key, s);
    }
    return s;
  }

  observe(labels: LatencyLabels, seconds: number): void {
    this.series$(labels).observe(seconds);
  }

  /** prom-client's Metric interface: the exposition of every series. */
  get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...s.labels, le },
          value: cumulative,
        });
      });
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { ...s.labels, le: '+Inf' },
        value: s.count,
      });
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count });
    }
    const metric = {
      name: this.name,
      help: this.help,
      type: 'histogram',
      values,
      aggregator: 'sum',
    };
    return Promise.resolve(
      metric as unknown as MetricObjectWithValues<MetricValueWithName<string>>,
    );
  }

  reset(): void {
    this.series.clear();
  }

  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
    return this;
  }
}
