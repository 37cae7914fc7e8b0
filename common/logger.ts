import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. Secrets never reach a log: the fields that could carry them are redacted. */
export function createLogger(
  level: string,
  destination?: DestinationStream,
  component = 'operator',
): Logger {
  return pino(
    {
      level,
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          '*.authorization',
          '*["x-maxine-kubernetes-authorization"]',
          '*.cookie',
          '*.token',
          '*.password',
          '*.secret',
        ],
        censor: '[redacted]',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
