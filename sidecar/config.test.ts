import { describe, expect, it } from '@jest/globals';
import { loadSidecarConfig, SidecarConfigError } from './config.js';

const pod = {
  MAXINE_SERVICE: 'web',
  MAXINE_POD_NAMESPACE: 'shop',
  MAXINE_POD_NAME: 'web-0',
  MAXINE_POD_IP: '10.244.0.7',
};

describe('sidecar configuration from the environment the webhook sets', () => {
  it('reads identity, operator, token, scripts dir and a health-check override', () => {
    const config = loadSidecarConfig({
      ...pod,
      MAXINE_POD_UID: 'u1',
      MAXINE_OPERATOR_URL: 'http://maxine-operator.maxine-system.svc:7710',
      MAXINE_TOKEN_FILE: '/var/run/secrets/maxine.io/token',
      MAXINE_HEALTH_SCRIPTS_DIR: '/etc/maxine/health',
      MAXINE_HEALTH_CHECK: '{"exec":{"command":["./check.sh"]},"intervalSeconds":5}',
      MAXINE_APP_PORT: '9090',
      MAXINE_LISTEN_HOST: '0.0.0.0',
    });
    expect(config).toMatchObject({
      service: 'web',
      namespace: 'shop',
      host: '10.244.0.7',
      pod: { name: 'web-0', uid: 'u1', ip: '10.244.0.7' },
      tokenFile: '/var/run/secrets/maxine.io/token',
      healthScriptsDir: '/etc/maxine/health',
      healthCheck: { exec: { command: ['./check.sh'] }, intervalSeconds: 5, failureThreshold: 3 },
      appPort: 9090,
      listenHost: '0.0.0.0',
      listenPort: 7711,
    });
  });

  it('has defaults for a first try outside a cluster', () => {
    expect(loadSidecarConfig({ MAXINE_SERVICE: 'web' })).toMatchObject({
      namespace: 'default',
      host: '127.0.0.1',
      operatorUrl: 'http://127.0.0.1:7710',
      listenHost: '127.0.0.1',
      appPort: 8080,
    });
  });

  it('reads the mesh folder and refresh period (default: no folder, 30 s)', () => {
    expect(loadSidecarConfig(pod)).toMatchObject({ meshRefreshSeconds: 30 });
    expect(loadSidecarConfig(pod).meshDir).toBeUndefined();
    expect(
      loadSidecarConfig({
        ...pod,
        MAXINE_MESH_DIR: '/etc/maxine/mesh',
        MAXINE_MESH_REFRESH_SECONDS: '0',
      }),
    ).toMatchObject({ meshDir: '/etc/maxine/mesh', meshRefreshSeconds: 0 });
    expect(loadSidecarConfig({ ...pod, MAXINE_MESH_REFRESH_SECONDS: '' }).meshRefreshSeconds).toBe(
      30,
    );
  });

  it('reads the call-report interval (default 10 s, 0 turns reporting off)', () => {
    expect(loadSidecarConfig(pod).reportIntervalSeconds).toBe(10);
    expect(loadSidecarConfig({ ...pod, MAXINE_REPORT_INTERVAL_SECONDS: '0' })).toMatchObject({
      reportIntervalSeconds: 0,
    });
    expect(loadSidecarConfig({ ...pod, MAXINE_REPORT_INTERVAL_SECONDS: '30' })).toMatchObject({
      reportIntervalSeconds: 30,
    });
  });

  it.each([
    [{}, { host: '127.0.0.1', port: 7712 }],
    [{ MAXINE_PROXY_LISTEN: '0.0.0.0:8001' }, { host: '0.0.0.0', port: 8001 }],
    [{ MAXINE_PROXY_LISTEN: '[::1]:0' }, { host: '::1', port: 0 }],
    [{ MAXINE_PROXY_LISTEN: 'off' }, undefined],
  ])('forward-proxy listener from MAXINE_PROXY_LISTEN %j', (env, expected) => {
    expect(loadSidecarConfig({ ...pod, ...env }).proxyListen).toEqual(expected);
  });

  it.each([
    ['unset', undefined, false],
    ['empty', '', false],
    ['false', 'false', false],
    ['true', 'true', true],
  ])('retries of non-idempotent methods: %s → %s', (_name, value, expected) => {
    const env = value === undefined ? pod : { ...pod, MAXINE_PROXY_RETRY_NON_IDEMPOTENT: value };
    expect(loadSidecarConfig(env).proxyRetryNonIdempotent).toBe(expected);
  });

  it.each([
    ['unset', undefined, 1000],
    ['empty', '', 1000],
    ['250', '250', 250],
  ])('the proxy connect timeout: %s → %s ms', (_name, value, expected) => {
    const env = value === undefined ? pod : { ...pod, MAXINE_PROXY_CONNECT_TIMEOUT_MS: value };
    expect(loadSidecarConfig(env).proxyConnectTimeoutMs).toBe(expected);
  });

  it.each([
    ['unset', undefined, 10],
    ['empty', '', 10],
    ['0 (off)', '0', 0],
    ['30', '30', 30],
  ])('the memory trim after a sync: %s → %s s', (_name, value, expected) => {
    const env = value === undefined ? pod : { ...pod, MAXINE_MEMORY_TRIM_SECONDS: value };
    expect(loadSidecarConfig(env).memoryTrimSeconds).toBe(expected);
  });

  it.each([
    [{}, 'MAXINE_SERVICE'],
    [
      { ...pod, MAXINE_MEMORY_TRIM_SECONDS: '-1' },
      'MAXINE_MEMORY_TRIM_SECONDS: must be 0 (off) or more',
    ],
    [
      { ...pod, MAXINE_REPORT_INTERVAL_SECONDS: 'soon' },
      'MAXINE_REPORT_INTERVAL_SECONDS: must be a whole number of seconds',
    ],
    [{ ...pod, MAXINE_PROXY_LISTEN: '7712' }, 'MAXINE_PROXY_LISTEN: must be HOST:PORT'],
    [{ ...pod, MAXINE_PROXY_LISTEN: 'localhost:99999' }, 'MAXINE_PROXY_LISTEN: must be HOST:PORT'],
    [{ ...pod, MAXINE_MESH_DIR: 'mesh' }, 'MAXINE_MESH_DIR: must be an absolute path'],
    [
      { ...pod, MAXINE_MESH_REFRESH_SECONDS: 'often' },
      'MAXINE_MESH_REFRESH_SECONDS: must be a whole number of seconds',
    ],
    [
      { ...pod, MAXINE_MESH_REFRESH_SECONDS: '-1' },
      'MAXINE_MESH_REFRESH_SECONDS: must be 0 (only on changes) or more',
    ],
    [
      { ...pod, MAXINE_PROXY_RETRY_NON_IDEMPOTENT: 'yes' },
      'MAXINE_PROXY_RETRY_NON_IDEMPOTENT: must be true or false',
    ],
    [
      { ...pod, MAXINE_PROXY_CONNECT_TIMEOUT_MS: '0' },
      'MAXINE_PROXY_CONNECT_TIMEOUT_MS: must be at least 1',
    ],
    [
      { ...pod, MAXINE_PROXY_CONNECT_TIMEOUT_MS: '1.5' },
      'MAXINE_PROXY_CONNECT_TIMEOUT_MS: must be a whole number of milliseconds',
    ],
    [{ MAXINE_SERVICE: 'Web_1' }, 'MAXINE_SERVICE: must be a DNS-1123 label'],
    [{ ...pod, MAXINE_OPERATOR_URL: 'ftp://x' }, 'MAXINE_OPERATOR_URL'],
    [{ ...pod, MAXINE_LISTEN_PORT: '70000' }, 'MAXINE_LISTEN_PORT'],
    [{ ...pod, MAXINE_HEALTH_CHECK: '{nope' }, 'MAXINE_HEALTH_CHECK: not valid JSON'],
    [
      { ...pod, MAXINE_HEALTH_CHECK: '{"tcp":{},"http":{"path":"/"}}' },
      'MAXINE_HEALTH_CHECK: exactly one of exec, http or tcp must be set (found 2)',
    ],
  ])('refuses %j naming the variable', (env, message) => {
    expect(() => loadSidecarConfig(env)).toThrow(SidecarConfigError);
    expect(() => loadSidecarConfig(env)).toThrow(message);
  });
});
