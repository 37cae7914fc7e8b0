/**
 * Which metrics a PromQL expression reads, and whether a Prometheus scrape has them: for the
 * tests that hold monitoring/rules.yaml and monitoring/grafana/maxine.json to what the
 * operator really exports (pure; no PromQL engine, a careful tokenizer).
 */

/** Words that look like identifiers in PromQL but name no metric. */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names an expression selects, sorted and unique. Function and aggregation names
 * (an identifier followed by `(`), keywords, label names and values, strings, durations,
 * numbers and Grafana variables (`$__rate_interval`, `${job}`) are not metric names.
 */
export function metricNamesOf(expr: string): string[] {
  const text = expr
    // strings first: they may hold anything, braces and parentheses included
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    // Grafana variables: $var, ${var}, ${var:format}, [[var]]
    .replace(/\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]/g, ' ')
    // label matchers and range/subquery selectors
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // label lists of grouping and matching modifiers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // offsets and @ modifiers: `offset 5m`, `@ 1609746000`, `@ start()`
    .replace(/\boffset\s+-?[0-9a-z]+/g, ' ')
    .replace(/@\s*[0-9.]+/g, ' ')
    // numbers, hex and exponents included, so `1e3` is not the identifier `e3`
    .replace(
      /(^|[^A-Za-z0-9_:])(0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?[a-z]*)/g,
      '$1 ',
    );
  const names = new Set<string>();
  for (const m of text.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = text.slice((m.index ?? 0) + word.length).trimStart();
    if (after.startsWith('(')) continue;
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}

/** Metric families of a scrape in Prometheus text format: name → type (from `# TYPE`). */
export function familiesOf(scrape: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const line of scrape.split('\n')) {
    const m = /^# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) ([a-z]+)$/.exec(line.trim());
    if (m !== null) families.set(m[1] as string, m[2] as string);
  }
  return families;
}

const SERIES_SUFFIXES: readonly (readonly [string, readonly string[]])[] = [
  ['_bucket', ['histogram']],
  ['_sum', ['histogram', 'summary']],
  ['_count', ['histogram', 'summary']],
];

/**
 * Whether `name` can be queried from a scrape with these families: a counter, gauge or
 * untyped family by its own name, a histogram by `_bucket`, `_sum`, `_count`, a summary by
 * `_sum`, `_count` or its own name (its quantiles). A histogram's bare name selects nothing.
 */
export function isExported(name: string, families: ReadonlyMap<string, string>): boolean {
  const type = families.get(name);
  if (type !== undefined) return type !== 'histogram';
  for (const [suffix, types] of SERIES_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const base = families.get(name.slice(0, -suffix.length));
    if (base !== undefined && types.includes(base)) return true;
  }
  return false;
}

/**
 * The names an expression reads that neither the scrape exports nor a recording rule records
 * (`recorded`), nor Prometheus itself makes (`up`, `ALERTS`).
 */
export function missingMetrics(
  expr: string,
  families: ReadonlyMap<string, string>,
  recorded: ReadonlySet<string>,
): string[] {
  return metricNamesOf(expr).filter(
    (name) => !PROMETHEUS_SERIES.has(name) && !recorded.has(name) && !isExported(name, families),
  );
}

const PROMETHEUS_SERIES = new Set(['up', 'ALERTS', 'ALERTS_FOR_STATE']);
