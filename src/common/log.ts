import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * One structured logger per process. Level from CIRRUS_LOG_LEVEL (default `info`; tests set
 * `silent`). Output is JSON lines on stdout, as pino writes them, so it pipes into any collector.
 */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.CIRRUS_LOG_LEVEL ?? 'info';
  return pino({ name, ...options, level });
}
