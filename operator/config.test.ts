import { describe, expect, it } from '@jest/globals';
import { loadConfig, registryLimitsOf } from './config.js';
import type { OperatorConfig } from './config.js';
import { DEFAULT_LIMITS } from './registry/limits.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    expect(loadConfig([], {})).toMatchObject({
      port: 7710,
      host: '127.0.0.1',
      resources: 'examples',
      allowUndeclared: true,
    });
  });
  it.each([
    [
      'flags',
      ['--port', '9000', '--host', '0.0.0.0', '--resources', '/etc/maxine'],
      {},
      { port: 9000, host: '0.0.0.0', resources: '/etc/maxine' },
    ],
    [
      'environment',
      [],
      { MAXINE_PORT: '9001', MAXINE_RESOURCES: 'r', MAXINE_ALLOW_UNDECLARED: 'false' },
      { port: 9001, resources: 'r', allowUndeclared: false },
    ],
    ['flags over environment', ['--port', '9002'], { MAXINE_PORT: '9001' }, { port: 9002 }],
    ['--disallow-undeclared', ['--disallow-undeclared'], {}, { allowUndeclared: false }],
    ['/metrics open in standalone mode', [], {}, { metricsAuth: false }],
    ['the pod name from the downward API', [], { MAXINE_POD_NAME: 'op-0' }, { podName: 'op-0' }],
    ['the pod name as a flag', ['--pod-name', 'op-1'], {}, { podName: 'op-1' }],
    [
      'the advertised address from the environment (manifests/)',
      [],
      { MAXINE_ADVERTISE_URL: 'http://10.1.2.3:7710', MAXINE_FORWARD_TIMEOUT_MS: '3000' },
      { advertiseUrl: 'http://10.1.2.3:7710', forwardTimeoutMs: 3000 },
    ],
    ['the forwarding timeout by default', [], {}, { forwardTimeoutMs: 10_000 }],
    ['/metrics protected in kubernetes mode', ['--mode', 'kubernetes'], {}, { metricsAuth: true }],
    [
      '--metrics-auth',
      ['--mode', 'kubernetes', '--metrics-auth', 'false'],
      {},
      { metricsAuth: false },
    ],
    [
      'the per-address limit',
      ['--address-rate-limit', '50', '--address-rate-burst', '80'],
      { MAXINE_BODY_TIMEOUT_MS: '2000' },
      { addressRateLimit: 50, addressRateBurst: 80, bodyTimeoutMs: 2000, headersTimeoutMs: 10_000 },
    ],
    ['allowed reads left out of the audit log by default', [], {}, { auditAllowedReads: 'none' }],
    [
      'allowed reads sampled',
      ['--audit-allowed-reads', 'sample:100'],
      {},
      { auditAllowedReads: 'sample:100' },
    ],
    [
      'allowed reads from the environment',
      [],
      { MAXINE_AUDIT_ALLOWED_READS: 'all' },
      { auditAllowedReads: 'all' },
    ],
    [
      'allowed reads aggregated, with their interval and bound',
      ['--audit-allowed-reads', 'aggregate', '--audit-reads-interval-ms', '5000'],
      { MAXINE_AUDIT_READS_MAX_KEYS: '200' },
      {
        auditAllowedReads: 'aggregate',
        auditReadsIntervalMs: 5000,
        auditReadsMaxKeys: 200,
      },
    ],
    [
      'the aggregation defaults',
      [],
      {},
      { auditReadsIntervalMs: 60_000, auditReadsMaxKeys: 10_000 },
    ],
  ])('reads %s', (_name, argv, env, expected) => {
    expect(loadConfig(argv, env)).toMatchObject(expected);
  });
  it.each([
    ['a port out of range', ['--port', '70000'], /--port \(MAXINE_PORT\)/],
    [
      'a non-boolean',
      ['--allow-undeclared', 'maybe'],
      /--allow-undeclared \(MAXINE_ALLOW_UNDECLARED\): must be true or false/,
    ],
    ['an unknown flag', ['--colour', 'blue'], /colour/],
    [
      'an aggregation interval under 100 ms',
      ['--audit-reads-interval-ms', '10'],
      /--audit-reads-interval-ms \(MAXINE_AUDIT_READS_INTERVAL_MS\)/,
    ],
    ...['some', 'sample:0', 'sample:', 'sample:x', 'aggregated'].map(
      (v) =>
        [
          `--audit-allowed-reads ${v}`,
          ['--audit-allowed-reads', v],
          /--audit-allowed-reads \(MAXINE_AUDIT_ALLOWED_READS\): must be none, all or sample:N/,
        ] as [string, string[], RegExp],
    ),
    [
      'an advertised address that is not an http(s) URL',
      ['--advertise-url', 'tcp://10.0.0.1:7710'],
      /--advertise-url \(MAXINE_ADVERTISE_URL\)/,
    ],
    [
      'an unresolved downward-API variable in the advertised address',
      ['--advertise-url', 'http://$(MAXINE_POD_IP):7710'],
      /--advertise-url \(MAXINE_ADVERTISE_URL\): holds an unresolved \$\(VAR\) reference/,
    ],
  ])('refuses %s', (_name, argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(message);
  });
  it('treats an empty or blank environment variable as unset', () => {
    expect(loadConfig([], { MAXINE_PORT: '' })).toMatchObject({ port: 7710 });
    expect(loadConfig([], { MAXINE_PORT: '  ' })).toMatchObject({ port: 7710 });
  });
  it('refuses an empty flag value instead of reading it as 0', () => {
    expect(() => loadConfig(['--port', ''], {})).toThrow(
      /--port \(MAXINE_PORT\): must be a whole number/,
    );
  });
  it('reads the registry limits and the event log bound from flags and the environment', () => {
    const defaults = loadConfig([], {}) as OperatorConfig;
    expect(registryLimitsOf(defaults)).toEqual(DEFAULT_LIMITS);
    expect(defaults.eventLogBytes).toBe(64 * 1024 * 1024);
    const set = loadConfig(
      [
        ...['--max-instances', '300000', '--max-instances-per-service', '100000'],
        ...['--max-instances-per-principal', '100000', '--max-undeclared-services', '50'],
        ...['--max-undeclared-services-per-principal', '5', '--max-metadata-bytes', '2048'],
        ...['--max-metadata-keys', '8', '--event-log-bytes', '1048576'],
      ],
      { MAXINE_MAX_PORTS: '4' },
    ) as OperatorConfig;
    expect(registryLimitsOf(set)).toEqual({
      instances: 300_000,
      instancesPerService: 100_000,
      instancesPerPrincipal: 100_000,
      undeclaredServices: 50,
      undeclaredServicesPerPrincipal: 5,
      metadataBytes: 2048,
      metadataKeys: 8,
      ports: 4,
    });
    expect(set.eventLogBytes).toBe(1_048_576);
    expect(() => loadConfig(['--max-instances', '0'], {})).toThrow(
      /--max-instances \(MAXINE_MAX_INSTANCES\)/,
    );
    expect(() => loadConfig(['--event-log-bytes', '1000'], {})).toThrow(
      /--event-log-bytes \(MAXINE_EVENT_LOG_BYTES\)/,
    );
  });
  it('answers --help', () => {
    expect(loadConfig(['--help'], {})).toBe('help');
  });
});

describe('event-stream limits', () => {
  it('default to bounded values', () => {
    expect(loadConfig([], {})).toMatchObject({
      eventStreamMaxConnections: 10_000,
      eventStreamMaxPerPrincipal: 256,
      snapshotConcurrency: 4,
      snapshotQueue: 64,
      snapshotChunkBytes: 64 * 1024,
      snapshotStallMs: 30_000,
    });
  });
  it('are read from flags and the environment', () => {
    expect(
      loadConfig(['--event-stream-max-per-principal', '8', '--snapshot-chunk-bytes', '65536'], {
        MAXINE_EVENT_STREAM_MAX_CONNECTIONS: '100',
        MAXINE_SNAPSHOT_CONCURRENCY: '2',
      }),
    ).toMatchObject({
      eventStreamMaxPerPrincipal: 8,
      snapshotChunkBytes: 65536,
      eventStreamMaxConnections: 100,
      snapshotConcurrency: 2,
    });
  });
  it.each([
    ['--snapshot-chunk-bytes', '100'],
    ['--snapshot-concurrency', '0'],
    ['--event-stream-max-connections', '0'],
  ])('refuse %s %s', (flag, value) => {
    expect(() => loadConfig([flag, value], {})).toThrow(new RegExp(flag));
  });
});

describe('loadConfig: the standalone store', () => {
  it.each([
    ['memory by default', [], {}, { storeDir: '.maxine/store', storeFsync: 'always' }],
    [
      'file from flags',
      ['--store', 'file', '--store-dir', '/var/lib/maxine'],
      {},
      { store: 'file', storeDir: '/var/lib/maxine' },
    ],
    [
      'file from the environment',
      [],
      { MAXINE_STORE: 'file', MAXINE_STORE_DIR: 'd', MAXINE_STORE_FSYNC: 'interval' },
      { store: 'file', storeDir: 'd', storeFsync: 'interval' },
    ],
    [
      'redis',
      ['--store', 'redis', '--store-redis-url', 'redis://10.0.0.5:6380'],
      { MAXINE_STORE_REDIS_PREFIX: 'team-a' },
      { store: 'redis', storeRedisUrl: 'redis://10.0.0.5:6380', storeRedisPrefix: 'team-a' },
    ],
    [
      'redis, not shared by default',
      ['--store', 'redis'],
      {},
      { storeRedisShared: false, storeRedisLockMs: 10_000 },
    ],
    [
      'redis shared by several operators',
      ['--store', 'redis', '--store-redis-shared', 'true', '--store-redis-lock-ms', '3000'],
      {},
      { store: 'redis', storeRedisShared: true, storeRedisLockMs: 3000 },
    ],
  ])('reads %s', (_name, argv, env, expected) => {
    expect(loadConfig(argv, env)).toMatchObject(expected);
  });
  it.each([
    [
      'a store in kubernetes mode',
      ['--mode', 'kubernetes', '--store', 'file'],
      /--store \(MAXINE_STORE\): is for standalone mode only: in kubernetes mode the API server is the store of record/,
    ],
    ['an unknown store', ['--store', 'disk'], /--store \(MAXINE_STORE\)/],
    ['an unknown fsync policy', ['--store-fsync', 'never'], /--store-fsync \(MAXINE_STORE_FSYNC\)/],
    [
      'a shared Redis without the redis store',
      ['--store', 'file', '--store-redis-shared', 'true'],
      /--store-redis-shared \(MAXINE_STORE_REDIS_SHARED\): is for --store redis only/,
    ],
    [
      'an expiry lock shorter than a second',
      ['--store-redis-lock-ms', '10'],
      /--store-redis-lock-ms \(MAXINE_STORE_REDIS_LOCK_MS\)/,
    ],
    [
      'a Redis URL of another scheme',
      ['--store-redis-url', 'http://localhost:6379'],
      /--store-redis-url \(MAXINE_STORE_REDIS_URL\): must be redis:\/\/host:port/,
    ],
  ])('refuses %s', (_name, argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(message);
  });
});

describe('MQTT bridge flags', () => {
  it('is off by default', () => {
    const c = loadConfig([], {}) as OperatorConfig;
    expect(c.mqttUrl).toBeUndefined();
    expect(c).toMatchObject({
      mqttTopicPrefix: 'maxine',
      mqttInbound: false,
      mqttQueueMessages: 10_000,
    });
  });

  it('reads the password from the environment only, never from a flag', () => {
    const c = loadConfig(['--mqtt-url', 'mqtts://b:8883'], { MAXINE_MQTT_PASSWORD: 's3cret' });
    expect(c).toMatchObject({ mqttUrl: 'mqtts://b:8883', mqttPassword: 's3cret' });
    expect(() => loadConfig(['--mqtt-password', 'x'], {})).toThrow();
  });

  it.each([
    [['--mqtt-url', 'http://b:1883'], {}, /--mqtt-url .*mqtt:\/\/host:port/],
    [['--mqtt-topic-prefix', 'a/#'], {}, /--mqtt-topic-prefix .*wildcards/],
    [['--mqtt-password-file', '/p'], { MAXINE_MQTT_PASSWORD: 'x' }, /not both/],
    [['--mqtt-cert-file', '/c'], {}, /needs its key/],
    [['--mqtt-inbound', 'true', '--mqtt-url', 'mqtt://b:1883'], {}, /--mqtt-users-file/],
    [['--mqtt-queue-messages', '0'], {}, /--mqtt-queue-messages/],
  ])('refuses %j', (argv, env, message) => {
    let error: unknown;
    try {
      loadConfig(argv, env);
    } catch (err) {
      error = err;
    }
    expect(JSON.stringify((error as { details?: unknown }).details ?? String(error))).toMatch(
      message,
    );
  });
});
