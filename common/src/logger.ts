import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths that may hold secrets anywhere in a log record. Redaction is configuration, not care:
 * every logger of the project is made here.
 */
const REDACT_PATHS = [
  'secret',
  '*.secret',
  'token',
  '*.token',
  'adminToken',
  'nodeToken',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'env',
  '*.env',
  'headers',
  '*.headers',
  'password',
  '*.password',
];

export interface LoggerOptions {
  /** pino level; `silent` turns logging off (tests). */
  level?: string;
  /** Bound to every line, e.g. `{ plane: 'data', node: 'node-1' }`. */
  bindings?: Record<string, unknown>;
}

/** A structured JSON logger (one line per event) with secrets redacted. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const logger = pino({
    level: options.level ?? process.env['PORTCULLIS_LOG_LEVEL'] ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  return options.bindings ? logger.child(options.bindings) : logger;
}
