import { describe, expect, it } from '@jest/globals';
import { loadConfig } from './config.js';

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
      snapshotChunkBytes: 1024 * 1024,
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
