/**
 * The webhook's certificates over their life: a CA and a serving certificate made at start, the
 * CA written into `clientConfig.caBundle` of every webhook of the MutatingWebhookConfiguration,
 * the serving certificate renewed before it expires (same CA, so the bundle stays right), and
 * the bundle re-asserted on every check (the configuration may be re-created by a deploy).
 *
 * The bundle is merged, not overwritten: certificates of other CAs that are still valid stay (up
 * to a cap), so several operator replicas, each with its own in-memory CA, are all trusted, and a
 * CA rotation never leaves a moment where the serving certificate is not. `webhooks` is a list,
 * so the object is read, modified and replaced; a 409 conflict is retried at once. A missing
 * configuration (installed after the operator) or any other failure is logged and retried with
 * back-off; it never stops the operator.
 */
import { X509Certificate } from 'node:crypto';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import type { KubeConfig, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { isKubeConflict, isKubeNotFound, kubeErrorFields } from '../kube/errors.js';
import {
  CA_VALIDITY_MS,
  generateCa,
  generateServingCert,
  LEAF_VALIDITY_MS,
  needsRenewal,
} from './certs.js';
import type { CertificateAuthority, ServingCertificate } from './certs.js';
import type { WebhookTls } from './server.js';

/** Certificates kept in a bundle at most (ours included); the oldest others go first. */
export const MAX_BUNDLE_CAS = 10;

// ---- The bundle (pure) ----

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

interface BundleEntry {
  pem: string;
  fingerprint: string;
  validFrom: number;
}

function entryOf(pem: string): BundleEntry & { validTo: number } {
  const cert = new X509Certificate(pem);
  return {
    pem: cert.toString(),
    fingerprint: cert.fingerprint256,
    validFrom: Date.parse(cert.validFrom),
    validTo: Date.parse(cert.validTo),
  };
}

/** Valid, distinct certificates of a base64 `caBundle`, and whether any had to be dropped. */
function readBundle(
  base64: string | undefined,
  now: number,
): { entries: BundleEntry[]; dropped: boolean } {
  const pems =
    Buffer.from(base64 ?? '', 'base64')
      .toString('utf8')
      .match(PEM_CERT_RE) ?? [];
  const entries: BundleEntry[] = [];
  let dropped = false;
  for (const pem of pems) {
    try {
      const entry = entryOf(pem);
      const duplicate = entries.some((e) => e.fingerprint === entry.fingerprint);
      if (entry.validTo <= now || duplicate) dropped = true;
      else entries.push(entry);
    } catch {
      dropped = true;
    }
  }
  return { entries, dropped };
}

/**
 * The bundle that trusts every `required` CA: the valid certificates already there keep their
 * order, missing required ones are appended, expired or unreadable ones are dropped, and past
 * `max` the oldest others go. `changed` is false when the existing bundle already is that.
 */
export function mergeCaBundle(input: {
  existing: string | undefined;
  required: readonly string[];
  now: Date;
  max?: number;
}): { bundle: string; changed: boolean } {
  const now = input.now.getTime();
  const { entries, dropped } = readBundle(input.existing, now);
  let changed = dropped || entries.length === 0;
  const required = input.required.map(entryOf);
  for (const entry of required) {
    if (!entries.some((e) => e.fingerprint === entry.fingerprint)) {
      entries.push(entry);
      changed = true;
    }
  }
  const isRequired = (e: BundleEntry): boolean =>
    required.some((r) => r.fingerprint === e.fingerprint);
  const others = entries.filter((e) => !isRequired(e)).sort((a, b) => a.validFrom - b.validFrom);
  const excess = new Set(
    others.slice(0, Math.max(0, entries.length - (input.max ?? MAX_BUNDLE_CAS))),
  );
  if (excess.size > 0) changed = true;
  const kept = entries.filter((e) => !excess.has(e));
  return {
    bundle: changed
      ? Buffer.from(kept.map((e) => e.pem).join('')).toString('base64')
      : (input.existing ?? ''),
    changed,
  };
}

// ---- The manager (I/O) ----

/** The two calls the manager makes; a seam for tests. */
export interface WebhookConfigurationApi {
  read(name: string): Promise<V1MutatingWebhookConfiguration>;
  replace(name: string, body: V1MutatingWebhookConfiguration): Promise<unknown>;
}

export function webhookConfigurationApi(kubeConfig: KubeConfig): WebhookConfigurationApi {
  const api = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  return {
    read: (name) => api.readMutatingWebhookConfiguration({ name }),
    replace: (name, body) => api.replaceMutatingWebhookConfiguration({ name, body }),
  };
}

export interface WebhookCertManagerOptions {
  /** How to reach the API server; or `api` directly. */
  kubeConfig?: KubeConfig;
  api?: WebhookConfigurationApi;
  /** The MutatingWebhookConfiguration whose webhooks get the CA (`maxine-sidecar-injector`). */
  webhookConfigurationName: string;
  dnsNames: readonly string[];
  ips?: readonly string[];
  logger: Logger;
  /** Called with every serving certificate after the first (which `start` returns). */
  onTls: (tls: WebhookTls) => void;
  caValidityMs?: number;
  leafValidityMs?: number;
  /** Renew the serving certificate this long before it expires. Default: a third of its life. */
  renewBeforeMs?: number;
  /** How often certificates and the bundle are checked. Default 10 minutes. */
  checkIntervalMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Immediate re-reads after a 409 conflict before backing off. Default 5. */
  conflictRetries?: number;
  now?: () => Date;
}

const tlsOf = (cert: ServingCertificate): WebhookTls => ({
  cert: cert.certPem,
  key: cert.keyPem,
});

export class WebhookCertManager {
  private readonly api: WebhookConfigurationApi;
  private readonly now: () => Date;
  private ca: CertificateAuthority | undefined;
  /** A new CA waiting to be in the bundle before it signs anything. */
  private nextCa: CertificateAuthority | undefined;
  private serving: ServingCertificate | undefined;
  /** The CA the bundle was last confirmed to trust. */
  private confirmedCaPem: string | undefined;
  private syncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  private readonly patched: Promise<void>;
  private resolvePatched: () => void = () => undefined;

  constructor(private readonly opts: WebhookCertManagerOptions) {
    const api = opts.api ?? (opts.kubeConfig && webhookConfigurationApi(opts.kubeConfig));
    if (api === undefined) throw new Error('WebhookCertManager needs a kubeConfig or an api');
    this.api = api;
    this.now = opts.now ?? (() => new Date());
    this.patched = new Promise((resolve) => {
      this.resolvePatched = resolve;
    });
  }

  private get leafValidityMs(): number {
    return this.opts.leafValidityMs ?? LEAF_VALIDITY_MS;
  }

  private get renewBeforeMs(): number {
    return this.opts.renewBeforeMs ?? Math.floor(this.leafValidityMs / 3);
  }

  /** The PEM of the CA that signs serving certificates now. */
  get caPem(): string | undefined {
    return this.ca?.certPem;
  }

  /** Makes the CA and the first serving certificate; the bundle is written in the background. */
  async start(): Promise<WebhookTls> {
    this.ca = await this.newCa();
    this.serving = await this.issue(this.ca);
    this.syncInBackground();
    this.schedule();
    return tlsOf(this.serving);
  }

  /** Resolves once the bundle has trusted our CA (the first time). */
  whenBundlePatched(): Promise<void> {
    return this.patched;
  }

  /** Stops the timer and any retry; resolves when a write in flight has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.syncing;
  }

  /**
   * One check: rotate the CA when it nears its end (the new one signs only once the bundle
   * trusts it), renew the serving certificate when due, re-assert the bundle.
   */
  async check(): Promise<void> {
    if (this.ca === undefined || this.serving === undefined || this.stopped) return;
    const now = this.now();
    if (
      this.nextCa === undefined &&
      needsRenewal(this.ca.certPem, now, this.leafValidityMs + this.renewBeforeMs)
    ) {
      this.nextCa = await this.newCa();
      this.opts.logger.info('webhook CA nears its end; a new one waits to be trusted');
    }
    let reissue = needsRenewal(this.serving.certPem, now, this.renewBeforeMs);
    if (this.nextCa !== undefined && this.confirmedCaPem === this.nextCa.certPem) {
      this.ca = this.nextCa;
      this.nextCa = undefined;
      reissue = true;
    }
    if (reissue) {
      this.serving = await this.issue(this.ca);
      this.opts.onTls(tlsOf(this.serving));
      this.opts.logger.info(
        { notAfter: this.serving.notAfter.toISOString() },
        'webhook serving certificate renewed',
      );
    }
    this.syncInBackground();
  }

  private newCa(): Promise<CertificateAuthority> {
    return generateCa({
      validityMs: this.opts.caValidityMs ?? CA_VALIDITY_MS,
      now: this.now(),
    });
  }

  private issue(ca: CertificateAuthority): Promise<ServingCertificate> {
    return generateServingCert({
      ca,
      dnsNames: this.opts.dnsNames,
      ips: this.opts.ips ?? [],
      validityMs: this.leafValidityMs,
      now: this.now(),
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.check()
        .catch((err: unknown) =>
          this.opts.logger.error(
            { error: kubeErrorFields(err) },
            'webhook certificate check failed',
          ),
        )
        .finally(() => this.schedule());
    }, this.opts.checkIntervalMs ?? 600_000);
    this.timer.unref();
  }

  /** Writes the bundle until it succeeds (one writer at a time), backing off between tries. */
  private syncInBackground(): void {
    if (this.syncing !== undefined || this.stopped) return;
    this.syncing = this.syncUntilDone().finally(() => {
      this.syncing = undefined;
    });
  }

  private async syncUntilDone(): Promise<void> {
    const name = this.opts.webhookConfigurationName;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.writeBundle();
        return;
      } catch (err) {
        const delay = Math.min(
          this.opts.retryMaxMs ?? 60_000,
          (this.opts.retryBaseMs ?? 1000) * 2 ** (attempt - 1),
        );
        const missing = isKubeNotFound(err);
        this.opts.logger.warn(
          { name, attempt, retryInMs: delay, ...(missing ? {} : { error: kubeErrorFields(err) }) },
          missing
            ? `MutatingWebhookConfiguration ${name} not found yet; retrying`
            : `could not write the CA bundle of MutatingWebhookConfiguration ${name}; retrying`,
        );
        await this.sleep(delay);
      }
    }
  }

  /** A back-off pause that `stop` cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      timer.unref();
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Read, merge, replace; a conflict (someone else wrote meanwhile) is retried at once. */
  private async writeBundle(): Promise<void> {
    const name = this.opts.webhookConfigurationName;
    const signer = this.nextCa ?? this.ca;
    if (signer === undefined) return;
    const required = [signer.certPem, ...(this.nextCa && this.ca ? [this.ca.certPem] : [])];
    const tries = this.opts.conflictRetries ?? 5;
    for (let i = 0; i < tries; i++) {
      const config = await this.api.read(name);
      const webhooks = config.webhooks ?? [];
      if (webhooks.length === 0) throw new Error(`${name} has no webhooks`);
      let changed = false;
      const updated = webhooks.map((webhook) => {
        const merged = mergeCaBundle({
          existing: webhook.clientConfig.caBundle,
          required,
          now: this.now(),
        });
        changed ||= merged.changed;
        return { ...webhook, clientConfig: { ...webhook.clientConfig, caBundle: merged.bundle } };
      });
      if (changed) {
        try {
          await this.api.replace(name, { ...config, webhooks: updated });
        } catch (err) {
          if (isKubeConflict(err)) continue;
          throw err;
        }
        this.opts.logger.info(
          { name, webhooks: updated.map((w) => w.name) },
          'webhook CA bundle written',
        );
      }
      this.confirm(signer.certPem);
      return;
    }
    throw new Error(`${name} kept changing (${tries} conflicts in a row)`);
  }

  private confirm(caPem: string): void {
    const first = this.confirmedCaPem === undefined;
    this.confirmedCaPem = caPem;
    if (first) this.resolvePatched();
  }
}
