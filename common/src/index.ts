export { PortcullisError, ErrorCode, errorMessage, isTooDeep } from './errors.ts';
export { createLogger, type Logger, type LoggerOptions } from './logger.ts';
export { Backoff, backoffDelay, type BackoffPolicy } from './backoff.ts';
export {
  resolveAccessLists,
  resourcesOfToolPatterns,
  UPSTREAM_WILDCARD,
  type ResolvedAccessLists,
} from './access-lists.ts';
export { ACCEPTED_JWT_ALGORITHMS, JWT_CLOCK_TOLERANCE_S, looksLikeJwt } from './jwt.ts';
export {
  startMetricsServer,
  type MetricsServer,
  type MetricsServerOptions,
  type MetricsSource,
} from './metrics-server.ts';
