import { describe, expect, test } from '@jest/globals';
import type { z } from 'zod';
import { maxineServiceSchema, resourceStatusSchema } from './resources.js';
import { expectAccepted, issuesOf } from '../test/helpers/schema.js';

// ---- helpers ----

const service = (spec: object, status?: object) => ({
  apiVersion: 'maxine.io/v1alpha1',
  kind: 'MaxineService',
  metadata: { name: 'web', namespace: 'shop' },
  spec,
  ...(status === undefined ? {} : { status }),
});

function expectRejected(schema: z.ZodType, object: unknown, path: string): void {
  expect(issuesOf(schema, object).map((i) => i.path)).toContain(path);
}

describe('spec.retries', () => {
  test('accepts attempts alone and defaults the conditions', () => {
    const parsed = maxineServiceSchema.parse(service({ retries: { attempts: 3 } }));
    expect(parsed.spec.retries).toEqual({
      attempts: 3,
      retryOn: ['5xx', 'connect-failure', 'reset'],
    });
  });

  test('accepts a per-try timeout and explicit conditions', () => {
    expectAccepted(
      maxineServiceSchema,
      service({
        retries: {
          attempts: 10,
          perTryTimeoutSeconds: 0.25,
          retryOn: ['gateway-error', 'retriable-4xx'],
        },
      }),
    );
  });

  test.each([
    [{ attempts: 0 }, 'spec.retries.attempts'],
    [{ attempts: 11 }, 'spec.retries.attempts'],
    [{ attempts: 1.5 }, 'spec.retries.attempts'],
    [{}, 'spec.retries.attempts'],
    [{ attempts: 2, perTryTimeoutSeconds: 0 }, 'spec.retries.perTryTimeoutSeconds'],
    [{ attempts: 2, perTryTimeoutSeconds: 3601 }, 'spec.retries.perTryTimeoutSeconds'],
    [{ attempts: 2, retryOn: [] }, 'spec.retries.retryOn'],
    [{ attempts: 2, retryOn: ['5xx', '5xx'] }, 'spec.retries.retryOn'],
    [{ attempts: 2, retryOn: ['timeout'] }, 'spec.retries.retryOn.0'],
    [{ attempts: 2, budget: 1 }, 'spec.retries'],
  ])('rejects %j', (retries, path) => {
    expectRejected(maxineServiceSchema, service({ retries }), path);
  });
});

describe('spec.requestTimeoutSeconds', () => {
  test.each([0.001, 1.5, 3600])('accepts %p', (requestTimeoutSeconds) => {
    expectAccepted(maxineServiceSchema, service({ requestTimeoutSeconds }));
  });

  test.each([0, -1, 3600.5, '2s'])('rejects %p', (requestTimeoutSeconds) => {
    expectRejected(
      maxineServiceSchema,
      service({ requestTimeoutSeconds }),
      'spec.requestTimeoutSeconds',
    );
  });
});

describe('spec.circuitBreaker connection-pool limits', () => {
  test('accepts the three limits', () => {
    const parsed = maxineServiceSchema.parse(
      service({
        circuitBreaker: { maxConnections: 100, maxPendingRequests: 1, maxRequests: 1_000_000 },
      }),
    );
    expect(parsed.spec.circuitBreaker).toMatchObject({
      failureThreshold: 5,
      maxConnections: 100,
      maxPendingRequests: 1,
      maxRequests: 1_000_000,
    });
  });

  test.each([
    ['maxConnections', 0],
    ['maxPendingRequests', 1_000_001],
    ['maxRequests', 2.5],
  ])('rejects %s: %p', (field, value) => {
    expectRejected(
      maxineServiceSchema,
      service({ circuitBreaker: { [field]: value } }),
      `spec.circuitBreaker.${field}`,
    );
  });
});

describe('status.mesh', () => {
  const istio = {
    objects: ['DestinationRule/web', 'VirtualService/web'],
    differences: [
      {
        object: 'DestinationRule/web',
        subject: 'spec.circuitBreaker.halfOpenProbes',
        message: 'x',
      },
      { subject: 'spec.rateLimit', message: 'not rendered' },
    ],
  };

  test('accepts either mesh, or both', () => {
    expectAccepted(resourceStatusSchema, { mesh: { istio } });
    expectAccepted(resourceStatusSchema, {
      mesh: { istio, linkerd: { objects: [], differences: [] } },
    });
    expectAccepted(maxineServiceSchema, service({}, { mesh: {} }));
  });

  test('rejects an unknown mesh, too many entries and long messages', () => {
    expectRejected(resourceStatusSchema, { mesh: { consul: istio } }, 'mesh');
    const many = Array.from({ length: 65 }, (_, i) => `DestinationRule/d${i}`);
    expectRejected(
      resourceStatusSchema,
      { mesh: { istio: { ...istio, objects: many } } },
      'mesh.istio.objects',
    );
    const long = { subject: 'spec.x', message: 'm'.repeat(2049) };
    expectRejected(
      resourceStatusSchema,
      { mesh: { linkerd: { objects: [], differences: [long] } } },
      'mesh.linkerd.differences.0.message',
    );
    expectRejected(
      resourceStatusSchema,
      { mesh: { linkerd: { objects: [], differences: [{ message: 'no subject' }] } } },
      'mesh.linkerd.differences.0.subject',
    );
    expectRejected(
      resourceStatusSchema,
      { mesh: { linkerd: { objects: [] } } },
      'mesh.linkerd.differences',
    );
  });
});
