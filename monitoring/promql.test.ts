import { describe, expect, it } from '@jest/globals';
import { familiesOf, isExported, metricNamesOf, missingMetrics } from './promql.js';

describe('metricNamesOf', () => {
  it.each([
    ['up{job="maxine-operator"} == 0', ['up']],
    ['absent(up{job="maxine-operator"})', ['up']],
    [
      'sum by (job, le) (rate(maxine_http_request_duration_seconds_bucket{route="/api/v1/discover/:namespace/:name"}[5m]))',
      ['maxine_http_request_duration_seconds_bucket'],
    ],
    ['histogram_quantile(0.99, sum(rate(a_bucket[$__rate_interval])) by (le))', ['a_bucket']],
    [
      'sum(rate(x_total[5m] offset 1h)) without (instance) / on(job) group_left(zone) y',
      ['x_total', 'y'],
    ],
    ['a and b or c unless d > bool 1e3', ['a', 'b', 'c', 'd']],
    ['job:maxine_leaders:sum == 0', ['job:maxine_leaders:sum']],
    ['label_replace(m{a="(b)"}, "dst", "$1", "src", "(.*)")', ['m']],
    ['max by (job) (maxine_leader{instance=~"${instance:regex}"}) * 100', ['maxine_leader']],
    ['rate(m[5m:30s]) > 0.5 and n @ 1609746000', ['m', 'n']],
    ['sum(rate(x[5m])) by (route, status)', ['x']],
    ['count(m) - Inf + NaN', ['m']],
    ['0x1f + 12e-3 + m', ['m']],
  ])('%s', (expr, names) => {
    expect(metricNamesOf(expr)).toEqual(names);
  });
});

const SCRAPE = `# HELP c_total a counter
# TYPE c_total counter
c_total 1
# TYPE g gauge
# TYPE h histogram
h_bucket{le="+Inf"} 1
h_sum 1
h_count 1
# TYPE s summary
`;

describe('isExported', () => {
  const families = familiesOf(SCRAPE);
  it.each([
    ['c_total', true],
    ['g', true],
    ['h_bucket', true],
    ['h_sum', true],
    ['h_count', true],
    ['h', false],
    ['s', true],
    ['s_count', true],
    ['s_bucket', false],
    ['g_count', false],
    ['c', false],
    ['nope', false],
  ])('%s → %s', (name, exported) => {
    expect(isExported(name, families)).toBe(exported);
  });

  it('names what neither the scrape, the recording rules nor Prometheus provide', () => {
    expect(
      missingMetrics(
        'up == 0 or rate(c_total[5m]) + job:x:rate5m + h + typo_total',
        families,
        new Set(['job:x:rate5m']),
      ),
    ).toEqual(['h', 'typo_total']);
  });
});
