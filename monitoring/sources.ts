/**
 * The PromQL of monitoring/rules.yaml and monitoring/grafana/maxine.json, read from the files
 * the user installs, for the tests that check them against a real scrape.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';

export const MONITORING_DIR = dirname(fileURLToPath(import.meta.url));

const ruleSchema = z.union([
  z.object({ record: z.string(), expr: z.string() }),
  z.object({
    alert: z.string(),
    expr: z.string(),
    for: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()),
  }),
]);
export const rulesFileSchema = z.object({
  groups: z.array(z.object({ name: z.string(), rules: z.array(ruleSchema) })),
});
export type Rule = z.infer<typeof ruleSchema>;

export async function readRules(): Promise<Rule[]> {
  const text = await readFile(join(MONITORING_DIR, 'rules.yaml'), 'utf8');
  return rulesFileSchema.parse(parse(text)).groups.flatMap((g) => g.rules);
}

/** One PromQL expression and where it is, for a failure message that says which. */
export interface Query {
  where: string;
  expr: string;
}

export async function ruleQueries(): Promise<Query[]> {
  return (await readRules()).map((r) => ({
    where: `rules.yaml ${'record' in r ? r.record : r.alert}`,
    expr: r.expr,
  }));
}

/** The names the recording rules define (dashboard queries may read them). */
export async function recordedNames(): Promise<Set<string>> {
  return new Set((await readRules()).flatMap((r) => ('record' in r ? [r.record] : [])));
}

const targetSchema = z.looseObject({ expr: z.string().optional() });
interface Panel {
  title?: string;
  targets?: z.infer<typeof targetSchema>[];
  panels?: Panel[];
}
const panelSchema: z.ZodType<Panel> = z.lazy(() =>
  z.looseObject({
    title: z.string().optional(),
    targets: z.array(targetSchema).optional(),
    panels: z.array(panelSchema).optional(),
  }),
);
const dashboardSchema = z.looseObject({
  panels: z.array(panelSchema),
  templating: z.looseObject({
    list: z.array(
      z.looseObject({
        name: z.string(),
        query: z.union([z.string(), z.looseObject({ query: z.string() })]).optional(),
      }),
    ),
  }),
});

/**
 * Every query of the dashboard: each panel target's `expr` (rows' nested panels included) and
 * each query variable's `label_values(metric, label)` as the metric it reads.
 */
export async function dashboardQueries(): Promise<Query[]> {
  const text = await readFile(join(MONITORING_DIR, 'grafana', 'maxine.json'), 'utf8');
  const dashboard = dashboardSchema.parse(JSON.parse(text));
  const out: Query[] = [];
  const walk = (panels: readonly Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? [])
        if (t.expr !== undefined) out.push({ where: `panel "${p.title ?? '?'}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = query === undefined ? null : /^label_values\((.+),\s*[A-Za-z_]\w*\)$/.exec(query);
    if (m !== null) out.push({ where: `variable $${v.name}`, expr: m[1] as string });
  }
  return out;
}
