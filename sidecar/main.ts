/** Composition root of the sidecar: configuration from the environment, logger, signals. */
import { loadSidecarConfig, SidecarConfigError } from './config.js';
import { loadTracingSettings } from './proxy/tracing.js';
import { createSidecar } from './sidecar.js';
import { createLogger } from '../common/logger.js';
import { keepTickShape } from '../common/tick-shape.js';

async function main(): Promise<void> {
  let config;
  let tracing;
  try {
    config = loadSidecarConfig(process.env);
    tracing = loadTracingSettings(process.env, config.service);
  } catch (err) {
    if (!(err instanceof SidecarConfigError)) throw err;
    process.stderr.write(`maxine-sidecar: bad configuration: ${err.message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel, undefined, 'sidecar');
  keepTickShape(); // decision 0040: ticks stay cheap after the memory trim's collection
  const sidecar = createSidecar(config, logger, { tracing });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: deregistering');
    sidecar.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // The pod must not crash because of us: log what escapes and keep serving the last copy.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  try {
    await sidecar.start();
  } catch (err) {
    logger.fatal({ err }, 'sidecar failed to start');
    process.exit(1);
  }
}

void main();
