/**
 * Config delivery composed: the state `GET /v1/config` answers from, the files in
 * `MAXINE_CONFIG_DIR`, the reload action, and their metrics. `refresh` is called with the
 * copy's config of the pod's service after each resync and each change of its spec. The first
 * refresh is the initial load: files are written (and stale ones from a previous run removed)
 * but no reload runs — the application reads the config when it starts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Gauge } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { ConfigMap } from '../../common/config-version.js';
import type { Logger } from '../../common/logger.js';
import { ConfigFiles } from './files.js';
import { Reloader } from './reload.js';
import type { ReloadAction } from '../../common/config-reload.js';
import { AppConfigState } from './state.js';
import type { ConfigSnapshot } from './state.js';
import type { ConfigSecrets } from '../../common/config-sources.js';
import { SecretNotReady, withSecretValues } from './secrets.js';
import type { SecretRead } from './secrets.js';

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
  /** Reads a Secret of the pod's namespace (config keys from Secrets); undefined: cannot. */
  readSecret?: SecretRead;
  /** Back-off between Secret reads that did not match the announced digests (ms, first). */
  secretRetryMs?: number;
}

export class ConfigDelivery {
  readonly state: AppConfigState;
  private readonly files: ConfigFiles | undefined;
  private readonly reloader: Reloader | undefined;
  private loaded = false;
  /** Bumped by each refresh: a Secret read for an older one is dropped. */
  private ticket = 0;
  private resolving: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly stopping = new AbortController();
  private readonly secretReads: Counter<'outcome'>;
  private readonly logger: Logger;
  private readonly readSecret: SecretRead | undefined;
  private readonly secretRetryMs: number;

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
    this.secretReads = new Counter({
      name: 'maxine_sidecar_config_secret_reads_total',
      help: 'Reads of the Secrets the config names (ok, not_ready: missing or not the announced version, failed)',
      labelNames: ['outcome'] as const,
      registers: [prom],
    });
    this.logger = logger;
    this.readSecret = opts.readSecret;
    this.secretRetryMs = opts.secretRetryMs ?? 250;
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

  /**
   * The copy's config of the service now, the operator's version of it, and its keys whose
   * values come from Secrets (read here, checked against their digests, then delivered).
   */
  refresh(
    config: ConfigMap | undefined,
    operatorVersion: number | undefined,
    secrets?: ConfigSecrets,
  ): void {
    const ticket = ++this.ticket;
    if (secrets === undefined || Object.keys(secrets).length === 0) {
      this.apply(config, operatorVersion);
      return;
    }
    this.resolving = this.resolving.then(() =>
      this.applyWithSecrets(ticket, config ?? {}, operatorVersion, secrets),
    );
  }

  /** Reads the Secrets until they hold the announced values (or a newer refresh came). */
  private async applyWithSecrets(
    ticket: number,
    config: ConfigMap,
    operatorVersion: number | undefined,
    secrets: ConfigSecrets,
  ): Promise<void> {
    const read = this.readSecret;
    const fields = { ...this.state.current.service, operatorVersion, keys: Object.keys(secrets) };
    if (read === undefined) {
      this.logger.error(
        fields,
        'config has keys from Secrets but this sidecar cannot read Secrets (no API server: MAXINE_KUBE_API_URL); the config is not updated',
      );
      return;
    }
    for (let attempt = 0; ticket === this.ticket && !this.stopped; attempt += 1) {
      try {
        const full = await withSecretValues(config, secrets, read);
        this.secretReads.inc({ outcome: 'ok' });
        if (ticket === this.ticket && !this.stopped) this.apply(full, operatorVersion);
        return;
      } catch (err) {
        const notReady = err instanceof SecretNotReady;
        this.secretReads.inc({ outcome: notReady ? 'not_ready' : 'failed' });
        // The message names Secrets and keys only; a value is never in it.
        this.logger.warn(
          { ...fields, attempt, reason: err instanceof Error ? err.message : String(err) },
          notReady
            ? 'Secret not (yet) as announced; reading it again'
            : 'reading a Secret failed; retrying (the pod needs a Role granting get on it)',
        );
        await sleep(Math.min(5_000, this.secretRetryMs * 2 ** attempt), undefined, {
          signal: this.stopping.signal,
          ref: false,
        }).catch(() => undefined);
      }
    }
  }

  private apply(config: ConfigMap | undefined, operatorVersion: number | undefined): void {
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
    this.stopped = true;
    this.stopping.abort();
    await this.resolving;
    this.state.release();
    await this.files?.idle();
    await this.reloader?.idle();
  }
}
