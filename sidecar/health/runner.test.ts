import { describe, expect, it } from '@jest/globals';
import type { Logger } from '../../common/logger.js';
import type { HealthCheck } from './checks.js';
import { CheckRunner, checkEnv } from './runner.js';
import type { CheckMonitor } from './runner.js';

const silent = { info: () => undefined, warn: () => undefined } as unknown as Logger;
const exec: HealthCheck = { exec: { command: ['true'] } } as HealthCheck;
const http: HealthCheck = { http: { path: '/healthz' } } as HealthCheck;

function harness() {
  const log: string[] = [];
  let changes = 0;
  const monitors: FakeMonitor[] = [];
  class FakeMonitor implements CheckMonitor {
    result: { status: 'passing' | 'warning' | 'critical'; output: string } | undefined;
    constructor(public spec: HealthCheck) {}
    start() {
      log.push(`start ${JSON.stringify(this.spec)}`);
    }
    update(spec: HealthCheck) {
      log.push(`update ${JSON.stringify(spec)}`);
      this.spec = spec;
    }
    stop() {
      log.push('stop');
      return Promise.resolve();
    }
    current() {
      return this.result;
    }
  }
  const runner = new CheckRunner({
    appPort: 8080,
    logger: silent,
    exec: {},
    onChange: () => (changes += 1),
    monitor: (spec) => {
      const m = new FakeMonitor(spec);
      monitors.push(m);
      return m;
    },
  });
  return { runner, log, monitors, changes: () => changes };
}

describe('CheckRunner', () => {
  it('reports nothing before anything is applied, and passing once told there is no check', () => {
    const { runner, changes } = harness();
    expect(runner.current()).toBeUndefined();
    runner.apply(undefined);
    expect(runner.current()).toEqual({ status: 'passing' });
    expect(changes()).toBe(1);
  });

  it('starts one monitor, updates it in place, ignores a repeated spec, stops it on removal', () => {
    const { runner, log, changes } = harness();
    runner.apply(exec);
    runner.apply(exec);
    runner.apply(http);
    runner.apply(undefined);
    runner.apply(undefined);
    expect(log).toEqual([
      `start ${JSON.stringify(exec)}`,
      `update ${JSON.stringify(http)}`,
      'stop',
    ]);
    expect(changes()).toBe(1);
    expect(runner.current()).toEqual({ status: 'passing' });
  });

  it('reports nothing until the first result, then the result with its output capped', () => {
    const { runner, monitors } = harness();
    runner.apply(exec);
    expect(runner.current()).toBeUndefined();
    monitors[0]!.result = { status: 'warning', output: 'x'.repeat(5000) };
    expect(runner.current()).toEqual({ status: 'warning', output: 'x'.repeat(4000) });
  });

  it('starts a new monitor after a removal', () => {
    const { runner, monitors } = harness();
    runner.apply(exec);
    runner.apply(undefined);
    runner.apply(exec);
    expect(monitors).toHaveLength(2);
  });
});

describe('checkEnv', () => {
  it('gives scripts the pod identity and a plain PATH, nothing of the sidecar’s own environment', () => {
    const env = checkEnv(
      {
        service: 'orders',
        namespace: 'shop',
        host: '10.0.0.5',
        appPort: 8080,
        podName: 'orders-1',
      },
      {
        PATH: '/bin',
        HOME: '/home/x',
        MAXINE_TOKEN_FILE: '/var/run/token',
        MAXINE_OPERATOR_URL: 'http://op',
      },
    );
    expect(env).toEqual({
      PATH: '/bin',
      HOME: '/home/x',
      MAXINE_SERVICE: 'orders',
      MAXINE_POD_NAMESPACE: 'shop',
      MAXINE_POD_IP: '10.0.0.5',
      MAXINE_APP_PORT: '8080',
      MAXINE_POD_NAME: 'orders-1',
    });
  });

  it('falls back to a default PATH and HOME and omits an unknown pod name', () => {
    expect(checkEnv({ service: 's', namespace: 'n', host: 'h', appPort: 1 }, {})).toEqual({
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: '/tmp',
      MAXINE_SERVICE: 's',
      MAXINE_POD_NAMESPACE: 'n',
      MAXINE_POD_IP: 'h',
      MAXINE_APP_PORT: '1',
    });
  });
});
