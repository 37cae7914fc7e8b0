/**
 * The sidecar injector as the operator runs it: a serving certificate from our own CA (its CA
 * kept in the MutatingWebhookConfiguration's caBundle and renewed before expiry), the HTTPS
 * admission server, and the MaxineServices of each namespace read from the reconciler (the
 * informer-fed state), so injection needs no API call of its own.
 */
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry as PromRegistry } from 'prom-client';
import { listen } from '../../common/listen.js';
import type { OperatorConfig } from '../config.js';
import type { Reconciler } from '../reconciler.js';
import type { Logger } from '../../common/logger.js';
import { WebhookCertManager } from './ca-bundle.js';
import { injectionConfigSchema } from '../../common/injection-patch.js';
import type { SelectingService } from '../../common/injection-patch.js';
import { createWebhookServer, setWebhookTls } from './server.js';

export interface Injector {
  start(): Promise<AddressInfo>;
  /** Where the webhook's metrics register when it starts (the operator's /metrics). */
  registerMetrics(registry: PromRegistry): void;
  /** Resolves once the CA is in the webhook configuration's caBundle. */
  whenBundlePatched(): Promise<void>;
  stop(): Promise<void>;
}

export function createInjector(deps: {
  config: OperatorConfig;
  kubeConfig: KubeConfig;
  reconciler: Reconciler;
  logger: Logger;
}): Injector {
  const { config, logger } = deps;
  const log = logger.child({ part: 'webhook' });
  let server: Server | undefined;
  let prom: PromRegistry | undefined;
  const certs = new WebhookCertManager({
    kubeConfig: deps.kubeConfig,
    webhookConfigurationName: config.webhookConfigName,
    dnsNames: config.webhookDnsNames,
    ips: config.webhookIps,
    logger: log,
    onTls: (tls) => {
      if (server !== undefined) setWebhookTls(server, tls);
    },
  });
  const injection = injectionConfigSchema.parse({
    image: config.sidecarImage,
    operatorUrl: config.sidecarOperatorUrl,
    tokenAudience: config.tokenAudience,
    operatorNamespace: config.leaseNamespace,
  });
  const servicesIn = (namespace: string): SelectingService[] =>
    deps.reconciler
      .list('MaxineService')
      .filter((r) => r.namespace === namespace)
      .map((r) => ({
        name: r.name,
        selector: (r.spec as { selector?: Record<string, string> }).selector ?? {},
      }));

  return {
    async start() {
      const tls = await certs.start();
      const https = createWebhookServer({
        tls,
        logger: log,
        servicesIn,
        config: injection,
        ...(prom && { prom }),
      });
      server = https;
      const address = await listen(https, config.webhookPort, config.webhookHost);
      log.info(
        { port: address.port, configuration: config.webhookConfigName },
        'sidecar injection webhook listening',
      );
      return address;
    },
    registerMetrics(registry) {
      prom = registry;
    },
    whenBundlePatched: () => certs.whenBundlePatched(),
    async stop() {
      await certs.stop();
      const https = server;
      if (https === undefined) return;
      await new Promise<void>((resolve) => {
        https.close(() => resolve());
        https.closeAllConnections();
      });
    },
  };
}
