/** Composition root of the operator: configuration, logger, signals. */
import { MaxineError } from '../common/errors.js';
import { loadConfig, USAGE } from './config.js';
import { createOperator } from './operator.js';
import { loadKubeParts } from './kube/load-parts.js';
import { createLogger } from '../common/logger.js';
import { kubeErrorFields } from './kube/errors.js';
import { StoreCorruptError } from './store/codec.js';
import { StoreUnreachableError } from './store/store.js';
import { keepTickShape } from '../common/tick-shape.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    const details = err instanceof MaxineError ? JSON.stringify(err.details) : '';
    process.stderr.write(`${(err as Error).message}\n${details}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (config === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger(config.logLevel);
  keepTickShape(); // decision 0040: ticks stay cheap after an idle-time collection
  // The Kubernetes client is loaded only in Kubernetes mode (~67 MB a standalone operator saves).
  if (config.mode === 'kubernetes') await loadKubeParts();
  const operator = createOperator(config, logger);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    operator.stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    await operator.start();
  } catch (err) {
    if (err instanceof StoreCorruptError) {
      // A person's problem, not a bug: where, what, and what to do; no stack trace.
      logger.fatal(
        { file: err.file, offset: err.offset, reason: err.why, advice: err.advice },
        `operator failed to start: the store cannot be trusted: ${err.message}. ${err.advice}`,
      );
      process.exit(1);
    }
    if (err instanceof StoreUnreachableError) {
      logger.fatal(
        { store: err.store, reason: err.why },
        `operator failed to start: ${err.message}; nothing was restored, so it does not serve`,
      );
      process.exit(1);
    }
    // An API server's answer is logged as its Status; anything else keeps its stack.
    const error = kubeErrorFields(err);
    const kube = error.status !== undefined || error.reason !== undefined;
    logger.fatal(kube ? { error } : { err }, 'operator failed to start');
    process.exit(1);
  }
}

void main();
