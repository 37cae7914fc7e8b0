import { describe, expect, it } from '@jest/globals';
import { serviceSpecSchema } from '../../common/resources.js';
import { EventLog } from '../events/log.js';
import { testRegistry } from '../../test/helpers/registry.js';
import { createMetrics, UNAVAILABLE_SERIES, unavailableServices } from './metrics.js';

const counts = (passing: number, warning: number, critical: number) => ({
  total: passing + warning + critical,
  passing,
  warning,
  critical,
});

describe('unavailableServices', () => {
  it.each([
    ['no instance at all', counts(0, 0, 0), true],
    ['only critical instances', counts(0, 0, 3), true],
    ['a warning instance', counts(0, 1, 3), false],
    ['a passing instance', counts(1, 0, 0), false],
  ])('%s → %s', (_what, instances, unavailable) => {
    expect(unavailableServices([{ name: 'x', instances }]).length === 1).toBe(unavailable);
  });
});

describe('maxine_service_unavailable', () => {
  it(`names at most ${UNAVAILABLE_SERIES} services; maxine_services_unavailable counts them all`, async () => {
    const { registry, clock } = testRegistry();
    for (let i = 0; i < UNAVAILABLE_SERIES + 5; i++)
      registry.upsertService(
        'shop',
        `svc-${String(i).padStart(3, '0')}`,
        serviceSpecSchema.parse({}),
      );
    registry.upsertService('shop', 'web', serviceSpecSchema.parse({}));
    registry.register({ service: 'web', namespace: 'shop', host: '10.0.0.1', port: 80, weight: 1 });
    const metrics = createMetrics({
      registry,
      events: new EventLog(100, clock),
      resourceProblems: () => 0,
      isLeader: () => true,
    });
    const text = await metrics.prom.metrics();
    const named = text.split('\n').filter((l) => l.startsWith('maxine_service_unavailable{'));
    expect(named).toHaveLength(UNAVAILABLE_SERIES);
    expect(named[0]).toBe('maxine_service_unavailable{namespace="shop",service="svc-000"} 1');
    expect(text).not.toContain('service="web"');
    expect(text).toMatch(
      new RegExp(`^maxine_services_unavailable ${UNAVAILABLE_SERIES + 5}$`, 'm'),
    );
  });
});
