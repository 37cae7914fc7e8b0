/**
 * monitoring/rules.yaml and monitoring/grafana/maxine.json read only metrics a real operator
 * exports: a standalone operator is exercised a little and scraped, and every metric name of
 * every rule and dashboard query must be in that scrape (histograms by their _bucket, _sum and
 * _count series). The webhook's and mesh controller's families exist in Kubernetes mode only:
 * e2e/kubectl-maxine.e2e.test.ts checks them on a Kubernetes-mode operator.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { api, EventClient, startOperator } from '../test/helpers/operator.js';
import type { TestOperator } from '../test/helpers/operator.js';
import { familiesOf, metricNamesOf } from './promql.js';
import { KUBERNETES_ONLY, missingFromScrape } from './scrape-check.js';
import { dashboardQueries, ruleQueries } from './sources.js';

let op: TestOperator;
let scrape: string;

beforeAll(async () => {
  op = await startOperator({
    files: {
      'shop.yaml': `apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: web, namespace: shop }
spec: { selector: { app: web } }
---
apiVersion: maxine.io/v1alpha1
kind: MaxineService
metadata: { name: cart, namespace: shop }
spec: { selector: { app: cart } }
`,
    },
  });
  const events = await EventClient.connect(`${op.wsUrl}/api/v1/events`);
  const reg = await api(op.url, 'POST', '/api/v1/instances', {
    service: 'web',
    namespace: 'shop',
    host: '10.0.0.7',
    port: 8080,
  });
  expect(reg.status).toBe(201);
  const id = (reg.body as { instance: { id: string } }).instance.id;
  expect((await api(op.url, 'PUT', `/api/v1/instances/${id}/heartbeat`)).status).toBe(200);
  expect((await api(op.url, 'GET', '/api/v1/discover/shop/web')).status).toBe(200);
  expect((await api(op.url, 'GET', '/api/v1/discover/shop/cart')).status).toBe(404);
  await events.until((e) => e.some((x) => x.type === 'service_registered'));
  scrape = await (await fetch(`${op.url}/metrics`)).text();
  await events.close();
});

afterAll(async () => {
  await op?.stop();
});

describe('monitoring queries against a real scrape', () => {
  it('reads the rules and the dashboard (a parse that finds nothing would prove nothing)', async () => {
    const rules = await ruleQueries();
    const panels = await dashboardQueries();
    expect(rules.length).toBeGreaterThanOrEqual(17);
    expect(panels.length).toBeGreaterThanOrEqual(25);
    const names = new Set([...rules, ...panels].flatMap((q) => metricNamesOf(q.expr)));
    expect([...names]).toEqual(
      expect.arrayContaining([
        'maxine_http_request_duration_seconds_bucket',
        'maxine_instances',
        'maxine_leader',
        'up',
      ]),
    );
  });

  it('every metric a query reads is exported, the Kubernetes-only ones aside', async () => {
    const missing = await missingFromScrape(scrape);
    expect(Object.fromEntries([...missing].filter(([n]) => !KUBERNETES_ONLY.includes(n)))).toEqual(
      {},
    );
    // The exemption is no hiding place: each name in it is used, and really is absent here.
    expect([...missing.keys()].sort()).toEqual(KUBERNETES_ONLY);
  });

  it('a service with no healthy instance is named, one with an instance is not', () => {
    expect(familiesOf(scrape).get('maxine_service_unavailable')).toBe('gauge');
    expect(scrape).toContain('maxine_service_unavailable{namespace="shop",service="cart"} 1');
    expect(scrape).not.toContain('service="web"');
    expect(scrape).toMatch(/^maxine_services_unavailable 1$/m);
  });
});
