/**
 * Config delivery composed: the state `GET /v1/config` answers from, the files in
 * `MAXINE_CONFIG_DIR`, the reload action, and their metrics. `refresh` is called with the
 * copy's config of the pod's service after each resync and each change of its spec. The first
 * refresh is the initial load: files are written (and stale ones from a previous run removed)
 * but no reload runs — the application reads the config when it starts.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { ConfigMap } from '../../common/config-version.js';
import type { Logger } from '../../common/logger.js';
import { ConfigFiles } from './files.js';
import { Reloader } from './reload.js';
import type { ReloadAction } from '../../common/config-reload.js';
import { AppConfigState } from './state.js';
import type { ConfigSnapshot } from './state.js';

export interface ConfigDeliveryOptions {
  service: { namespace: string; name: string };
  logger: Logger;
  prom: PromRegistry;
  maxWaiters: number;
  dir?: string;
  reload?: ReloadAction;
  appPort: number;
  /** Tests: where processes are looked up. */
  procRoot?: string;
}

export class ConfigDelivery {
  readonly state: AppConfigState;
  private readonly files: ConfigFiles | undefined;
  private readonly reloader: Reloader | undefined;
  private loaded = false;

  constructor(opts: ConfigDeliveryOptions) {
    const { prom, logger } = opts;
    const waiters = new Gauge({
      name: 'maxine_sidecar_config_waiters',
      help: 'GET /v1/config?wait= requests waiting for a change (bounded by MAXINE_CONFIG_MAX_WAITERS)',
      registers: [prom],
    });
    const version = new Gauge({
      name: 'maxine_sidecar_config_version',
      help: "The version of the pod's service's config held",
      registers: [prom],
    });
    const writes = new Counter({
      name: 'maxine_sidecar_config_file_writes_total',
      help: 'Config file sets written to MAXINE_CONFIG_DIR, by outcome',
      labelNames: ['outcome'] as const,
      registers: [prom],
    });
    const reloads = new Counter({
      name: 'maxine_sidecar_config_reloads_total',
      help: 'Reload actions run after a config change, by outcome (ok, not_found, failed)',
      labelNames: ['outcome'] as const,
      registers: [prom],
    });
    this.state = new AppConfigState(opts.service, opts.maxWaiters, (n) => waiters.set(n));
    this.reloader =
      opts.reload &&
      new Reloader({
        action: opts.reload,
        appPort: opts.appPort,
        logger,
        ...(opts.procRoot !== undefined && { procRoot: opts.procRoot }),
        onOutcome: (outcome) => reloads.inc({ outcome }),
      });
    this.files =
      opts.dir === undefined
        ? undefined
        : new ConfigFiles({
            dir: opts.dir,
            logger,
            onWritten: (s) => {
              writes.inc({ outcome: 'ok' });
              this.afterWrite(s);
            },
            onFailed: () => writes.inc({ outcome: 'failed' }),
          });
    this.state.onChange(({ current, changes }) => {
      version.set(current.version);
      logger.info(
        { ...opts.service, version: current.version, hash: current.hash, changes },
        'service config changed',
      );
    });
  }

  /** The copy's config of the service now, and the operator's version of it. */
  refresh(config: ConfigMap | undefined, operatorVersion: number | undefined): void {
    const initial = !this.loaded;
    this.loaded = true;
    const update = this.state.update(config, operatorVersion);
    if (update === undefined && !initial) return;
    const snapshot = { ...this.state.current, initial };
    if (this.files !== undefined) this.files.write(snapshot);
    else this.afterWrite(snapshot);
  }

  private afterWrite(snapshot: ConfigSnapshot & { initial?: boolean }): void {
    if (snapshot.initial !== true) this.reloader?.trigger(snapshot.version);
  }

  /** Ends the long-polls and waits for the file write and reload in progress. */
  async stop(): Promise<void> {
    this.state.release();
    await this.files?.idle();
    await this.reloader?.idle();
  }
}
