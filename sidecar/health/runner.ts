/**
 * The check the sidecar reports with its heartbeat: the pod's override or its service's
 * `healthCheck`, whichever applies, swapped in place when the spec changes. Owns the
 * HealthMonitor's life: none while no check is configured, one updated in place when the spec
 * changes, stopped when the check is removed. `current()` is what the next heartbeat carries.
 */
import type { Logger } from '../../common/logger.js';
import type { HealthStatus } from '../../common/wire.js';
import type { CheckOptions, HealthCheck } from './checks.js';
import { HealthMonitor } from './monitor.js';

/** Heartbeat outputs are capped by the wire schema. */
const MAX_OUTPUT = 4000;

export interface CheckRunnerOptions {
  /** The application's port: HTTP and TCP checks without a port of their own go there. */
  appPort: number;
  logger: Logger;
  /** Environment and working directory of exec checks (see `checkEnv`). */
  exec: Omit<CheckOptions, 'signal'>;
  /** Called when the reported status changes, and when a check is removed. */
  onChange: () => void;
  /** Builds the monitor; tests inject one that needs no process or socket. */
  monitor?: (spec: HealthCheck, onChange: () => void) => CheckMonitor;
}

/** What the runner needs of a HealthMonitor. */
export interface CheckMonitor {
  start(): void;
  update(spec: HealthCheck): void;
  stop(): Promise<void>;
  current(): { status: HealthStatus; output: string } | undefined;
}

export interface ReportedHealth {
  status: HealthStatus;
  output?: string;
}

export class CheckRunner {
  private monitor: CheckMonitor | undefined;
  /** The applied spec as JSON, `''` before the first `apply`, `'null'` when there is none. */
  private applied = '';

  constructor(private readonly opts: CheckRunnerOptions) {}

  /** Runs `spec` (a new check, an update of the running one), or stops the check when undefined. */
  apply(spec: HealthCheck | undefined): void {
    const key = JSON.stringify(spec ?? null);
    if (key === this.applied) return;
    this.applied = key;
    if (spec === undefined) {
      const old = this.monitor;
      this.monitor = undefined;
      old
        ?.stop()
        .catch((err: unknown) => this.opts.logger.warn({ err }, 'stopping the check failed'));
      this.opts.onChange();
      return;
    }
    if (this.monitor !== undefined) {
      this.monitor.update(spec);
      return;
    }
    this.monitor = (this.opts.monitor ?? this.defaultMonitor)(spec, this.opts.onChange);
    this.monitor.start();
  }

  /**
   * The result to report: undefined before the first result of a check (or before anything
   * was applied); `passing` once a check was removed, so a status it left behind is cleared.
   */
  current(): ReportedHealth | undefined {
    if (this.monitor === undefined)
      return this.applied === 'null' ? { status: 'passing' } : undefined;
    const current = this.monitor.current();
    if (current === undefined) return undefined;
    return { status: current.status, output: current.output.slice(0, MAX_OUTPUT) };
  }

  async stop(): Promise<void> {
    await this.monitor?.stop();
  }

  private readonly defaultMonitor = (spec: HealthCheck, onChange: () => void): CheckMonitor => {
    const { logger } = this.opts;
    return new HealthMonitor({
      spec,
      target: { host: '127.0.0.1', defaultPort: this.opts.appPort },
      logger,
      exec: this.opts.exec,
      onChange: (s) => {
        logger.info({ status: s.status, output: s.output.slice(0, 512) }, 'health check status');
        onChange();
      },
    });
  };
}

/** Who a check script checks: a plain PATH and the pod's identity, not the sidecar's settings. */
export function checkEnv(
  pod: {
    service: string;
    namespace: string;
    host: string;
    appPort: number;
    podName?: string;
  },
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  return {
    PATH: env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: env.HOME ?? '/tmp',
    MAXINE_SERVICE: pod.service,
    MAXINE_POD_NAMESPACE: pod.namespace,
    MAXINE_POD_IP: pod.host,
    MAXINE_APP_PORT: String(pod.appPort),
    ...(pod.podName !== undefined && { MAXINE_POD_NAME: pod.podName }),
  };
}
