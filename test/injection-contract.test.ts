/**
 * The injection contract (common/injection.ts) between the two programs: what the webhook
 * writes into the sidecar's environment is exactly the contract's list, and the sidecar's
 * config parses it. test/ may import both programs; they may not import each other.
 */
import { describe, expect, it } from '@jest/globals';
import { SIDECAR_ENV } from '../common/injection.js';
import { injectionConfigSchema, sidecarEnv } from '../common/injection-patch.js';
import { loadSidecarConfig, sidecarEnvSchema } from '../sidecar/config.js';

/** Downward-API fields as the kubelet would fill them for one pod. */
const FIELDS: Record<string, string> = {
  'metadata.name': 'orders-0',
  'metadata.namespace': 'shop',
  'metadata.uid': '5f0c1b9e-0000-4000-8000-000000000001',
  'status.podIP': '10.1.2.3',
  'spec.nodeName': 'node-a',
  'spec.serviceAccountName': 'orders',
};

describe('the injection contract', () => {
  const env = sidecarEnv({
    service: 'orders',
    healthCheck: '{"http":{"path":"/ready"}}',
    scripts: 'orders-health',
    appPort: 8080,
    scope: 'namespace',
    configMount: '/etc/app/config',
    configReload: 'signal:HUP:nginx',
    config: injectionConfigSchema.parse({ operatorUrl: 'http://maxine.maxine-system:7710' }),
  });

  it('the webhook sets exactly the contract’s variables, each one the sidecar reads', () => {
    expect(env.map((e) => e.name).sort()).toEqual([...SIDECAR_ENV].sort());
    expect(Object.keys(sidecarEnvSchema.shape)).toEqual(expect.arrayContaining([...SIDECAR_ENV]));
  });

  it('the sidecar’s config parses what the webhook wrote', () => {
    const values = Object.fromEntries(
      env.map((e) => [e.name, e.value ?? FIELDS[e.valueFrom?.fieldRef?.fieldPath ?? '']]),
    );
    const config = loadSidecarConfig(values);
    expect(config).toMatchObject({
      service: 'orders',
      namespace: 'shop',
      host: '10.1.2.3',
      appPort: 8080,
      operatorUrl: 'http://maxine.maxine-system:7710',
    });
  });
});
