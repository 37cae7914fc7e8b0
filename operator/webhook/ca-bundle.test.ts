import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from '@jest/globals';
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { createLogger } from '../../common/logger.js';
import { MAX_BUNDLE_CAS, mergeCaBundle, WebhookCertManager } from './ca-bundle.js';
import type { WebhookConfigurationApi } from './ca-bundle.js';
import { generateCa } from './certs.js';
import type { CertificateAuthority } from './certs.js';
import type { WebhookTls } from './server.js';

const DAY = 86_400_000;
const now = new Date('2030-06-01T00:00:00Z');
const b64 = (...pems: string[]): string => Buffer.from(pems.join('')).toString('base64');
const fingerprints = (bundle: string): string[] =>
  (
    Buffer.from(bundle, 'base64')
      .toString()
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  ).map((pem) => new X509Certificate(pem).fingerprint256);
const fp = (ca: CertificateAuthority): string => new X509Certificate(ca.certPem).fingerprint256;

let ours: CertificateAuthority;
let other: CertificateAuthority;
let expired: CertificateAuthority;

beforeAll(async () => {
  ours = await generateCa({ now });
  other = await generateCa({ now: new Date(now.getTime() - DAY) });
  expired = await generateCa({ now: new Date(now.getTime() - 10 * DAY), validityMs: DAY });
});

describe('mergeCaBundle', () => {
  it('writes our CA into an empty bundle', () => {
    const merged = mergeCaBundle({ existing: undefined, required: [ours.certPem], now });
    expect(merged.changed).toBe(true);
    expect(fingerprints(merged.bundle)).toEqual([fp(ours)]);
  });

  it('leaves a bundle that already trusts us exactly as it is', () => {
    const existing = b64(other.certPem, ours.certPem);
    expect(mergeCaBundle({ existing, required: [ours.certPem], now })).toEqual({
      bundle: existing,
      changed: false,
    });
  });

  it('keeps other valid CAs in their order and appends ours', () => {
    const merged = mergeCaBundle({ existing: b64(other.certPem), required: [ours.certPem], now });
    expect(merged.changed).toBe(true);
    expect(fingerprints(merged.bundle)).toEqual([fp(other), fp(ours)]);
  });

  it('drops expired, unreadable and duplicate certificates', () => {
    const garbage = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n';
    const existing = b64(expired.certPem, garbage, ours.certPem, ours.certPem, 'trailing text');
    const merged = mergeCaBundle({ existing, required: [ours.certPem], now });
    expect(merged.changed).toBe(true);
    expect(fingerprints(merged.bundle)).toEqual([fp(ours)]);
  });

  it('keeps at most max certificates, dropping the oldest others but never a required one', async () => {
    const many: CertificateAuthority[] = [];
    for (let i = 0; i < 4; i++)
      many.push(await generateCa({ now: new Date(now.getTime() - (i + 2) * DAY) }));
    const existing = b64(...many.map((c) => c.certPem));
    const merged = mergeCaBundle({
      existing,
      required: [ours.certPem, other.certPem],
      now,
      max: 3,
    });
    // many[0] is the newest of the others; ours and other are required.
    expect(fingerprints(merged.bundle)).toEqual([fp(many[0]!), fp(ours), fp(other)]);
    expect(MAX_BUNDLE_CAS).toBeGreaterThanOrEqual(3);
  });
});

// ---- The manager, against a fake API server ----

/** As client-node's ApiException: an Error with the HTTP status as `code`. */
class ApiError extends Error {
  constructor(readonly code: number) {
    super(`HTTP-Code: ${code}`);
  }
}

class FakeApi implements WebhookConfigurationApi {
  config: V1MutatingWebhookConfiguration | undefined;
  readFailures: Error[] = [];
  replaceFailures: Error[] = [];
  reads = 0;
  replaces = 0;

  read(name: string): Promise<V1MutatingWebhookConfiguration> {
    this.reads++;
    const failure = this.readFailures.shift();
    if (failure) return Promise.reject(failure);
    if (this.config?.metadata?.name !== name) return Promise.reject(new ApiError(404));
    return Promise.resolve(structuredClone(this.config));
  }

  replace(name: string, body: V1MutatingWebhookConfiguration): Promise<unknown> {
    this.replaces++;
    const failure = this.replaceFailures.shift();
    if (failure) {
      // A conflict means someone else wrote meanwhile.
      if (failure instanceof ApiError && failure.code === 409) this.bump();
      return Promise.reject(failure);
    }
    if (this.config === undefined) return Promise.reject(new ApiError(404));
    if (body.metadata?.resourceVersion !== this.config.metadata?.resourceVersion)
      return Promise.reject(new ApiError(409));
    this.config = structuredClone(body);
    this.bump();
    return Promise.resolve(this.config);
  }

  bump(): void {
    const meta = this.config!.metadata!;
    meta.resourceVersion = String(Number(meta.resourceVersion) + 1);
  }

  install(): void {
    const webhook = (name: string) => ({
      name,
      clientConfig: { service: { name: 'maxine-operator', namespace: 'maxine-system' } },
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
    });
    this.config = {
      metadata: { name: 'maxine-sidecar-injector', resourceVersion: '1' },
      webhooks: [webhook('namespace.inject.maxine.io'), webhook('pod.inject.maxine.io')],
    };
  }

  bundles(): string[] {
    return (this.config?.webhooks ?? []).map((w) => w.clientConfig.caBundle ?? '');
  }
}

function setup(options: { clock?: { now: Date } } = {}) {
  const api = new FakeApi();
  const logs: any[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line));
      done();
    },
  });
  const rotations: WebhookTls[] = [];
  const clock = options.clock ?? { now: new Date() };
  const manager = new WebhookCertManager({
    api,
    webhookConfigurationName: 'maxine-sidecar-injector',
    dnsNames: ['maxine-operator.maxine-system.svc'],
    ips: ['127.0.0.1'],
    logger: createLogger('debug', destination),
    onTls: (tls) => rotations.push(tls),
    retryBaseMs: 5,
    retryMaxMs: 20,
    checkIntervalMs: 3_600_000,
    now: () => clock.now,
  });
  return { api, logs, rotations, manager, clock };
}

/** Retries an assertion until it passes or a second has gone by (background writes). */
async function eventually(assertion: () => void): Promise<void> {
  const deadline = Date.now() + 1000;
  for (;;) {
    try {
      assertion();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

const issuerOf = (tls: WebhookTls): X509Certificate => new X509Certificate(tls.cert);
const verifies = (tls: WebhookTls, caPem: string): boolean =>
  issuerOf(tls).verify(new X509Certificate(caPem).publicKey);

describe('WebhookCertManager', () => {
  it('writes the CA into every webhook, waiting with back-off for the configuration to exist', async () => {
    const { api, logs, manager } = setup();
    api.readFailures.push(new Error('connection refused'));
    const tls = await manager.start();
    expect(verifies(tls, manager.caPem!)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 30));
    api.install();
    await manager.whenBundlePatched();
    expect(api.bundles()).toHaveLength(2);
    for (const bundle of api.bundles())
      expect(fingerprints(bundle)).toEqual([new X509Certificate(manager.caPem!).fingerprint256]);
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'MutatingWebhookConfiguration maxine-sidecar-injector not found yet; retrying',
      }),
    );
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: expect.stringMatching(/could not write the CA bundle/),
      }),
    );
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'webhook CA bundle written',
        webhooks: ['namespace.inject.maxine.io', 'pod.inject.maxine.io'],
      }),
    );
    await manager.stop();
  });

  it('re-reads and retries at once on a 409 conflict', async () => {
    const { api, manager } = setup();
    api.install();
    api.replaceFailures.push(new ApiError(409), new ApiError(409));
    await manager.start();
    await manager.whenBundlePatched();
    expect(api.replaces).toBe(3);
    expect(api.reads).toBe(3);
    expect(fingerprints(api.bundles()[0]!)).toHaveLength(1);
    await manager.stop();
  });

  it('keeps what other replicas put in the bundle and writes nothing when it is right', async () => {
    const { api, manager } = setup();
    api.install();
    api.config!.webhooks![1]!.clientConfig.caBundle = b64(other.certPem);
    await manager.start();
    await manager.whenBundlePatched();
    expect(fingerprints(api.bundles()[1]!)).toEqual([
      fp(other),
      new X509Certificate(manager.caPem!).fingerprint256,
    ]);
    const writes = api.replaces;
    await manager.check();
    await manager.stop();
    expect(api.replaces).toBe(writes);
  });

  it('renews the serving certificate before it expires, with the same CA', async () => {
    const clock = { now: new Date('2031-01-01T00:00:00Z') };
    const { api, manager, rotations } = setup({ clock });
    api.install();
    const first = await manager.start();
    await manager.whenBundlePatched();
    const ca = manager.caPem!;
    const writes = api.replaces;

    clock.now = new Date(clock.now.getTime() + 59 * DAY);
    await manager.check();
    expect(rotations).toHaveLength(0);

    clock.now = new Date(clock.now.getTime() + 2 * DAY); // 61 days: inside the last third of 90
    await manager.check();
    expect(rotations).toHaveLength(1);
    const renewed = rotations[0]!;
    expect(renewed.cert).not.toBe(first.cert);
    expect(manager.caPem).toBe(ca);
    expect(verifies(renewed, ca)).toBe(true);
    expect(new Date(issuerOf(renewed).validTo).getTime()).toBe(clock.now.getTime() + 90 * DAY);
    await manager.stop();
    expect(api.replaces).toBe(writes);
  });

  it('rotates the CA near its end: the new one is trusted first, then signs', async () => {
    const clock = { now: new Date('2031-01-01T00:00:00Z') };
    const { api, manager, rotations } = setup({ clock });
    api.install();
    await manager.start();
    await manager.whenBundlePatched();
    const oldCa = manager.caPem!;

    // 100 days before the CA's end: less than a serving certificate's life plus the margin.
    clock.now = new Date(clock.now.getTime() + 3650 * DAY - 100 * DAY);
    await manager.check();
    // The serving certificate was due too; the old CA still signs until the new one is trusted.
    const duringRotation = rotations.at(-1)!;
    expect(verifies(duringRotation, oldCa)).toBe(true);
    await eventually(() => expect(fingerprints(api.bundles()[0]!)).toHaveLength(2));
    expect(fingerprints(api.bundles()[0]!)).toContain(new X509Certificate(oldCa).fingerprint256);

    await manager.check();
    expect(manager.caPem).not.toBe(oldCa);
    const after = rotations.at(-1)!;
    expect(verifies(after, manager.caPem!)).toBe(true);
    expect(fingerprints(api.bundles()[0]!)).toContain(
      new X509Certificate(manager.caPem!).fingerprint256,
    );
    await manager.stop();
  });

  it('needs a kubeConfig or an api', () => {
    expect(
      () =>
        new WebhookCertManager({
          webhookConfigurationName: 'x',
          dnsNames: ['x'],
          logger: createLogger('silent'),
          onTls: () => undefined,
        }),
    ).toThrow(/kubeConfig or an api/);
  });
});
