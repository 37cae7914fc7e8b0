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
    ['/metrics open in standalone mode', [], {}, { metricsAuth: false }],
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
