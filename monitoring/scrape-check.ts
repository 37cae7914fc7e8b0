/** What the metric-name tests share: every query checked against one scrape. */
import { familiesOf, missingMetrics } from './promql.js';
import { dashboardQueries, recordedNames, ruleQueries } from './sources.js';

/** Every metric name a rule or dashboard query reads that `scrape` does not export. */
export async function missingFromScrape(scrape: string): Promise<Map<string, string[]>> {
  const families = familiesOf(scrape);
  const recorded = await recordedNames();
  const missing = new Map<string, string[]>();
  for (const { where, expr } of [...(await ruleQueries()), ...(await dashboardQueries())]) {
    for (const name of missingMetrics(expr, families, recorded))
      missing.set(name, [...(missing.get(name) ?? []), where]);
  }
  return missing;
}

/** Families only a Kubernetes-mode operator has: its webhook and its mesh controller. */
export const KUBERNETES_ONLY = [
  'maxine_mesh_object_writes_total',
  'maxine_mesh_syncs_total',
  'maxine_webhook_reviews_total',
  'maxine_webhook_tls_errors_total',
];
