import { PortcullisError } from '../../../common/src/index.ts';
import { QUERY_READ_TIMEOUT } from './timeouts.ts';

/** `extensions.code` of requests that failed because of the database, not of what they asked. */
export const DatabaseErrorCode = {
  /** The database could not be reached (refused, dropped, or no connection within the connect timeout). */
  UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  /** The database did not answer within the statement timeout. */
  TIMEOUT: 'DATABASE_TIMEOUT',
} as const;

/** SQLSTATEs: statement_timeout or a cancel, the config change deadline, idle_in_transaction_session_timeout. */
const TIMEOUT_STATES = new Set(['57014', '25P03']);
/** SQLSTATEs: server shutting down or starting, too many connections. */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** What pg and pg-pool say when a connection could not be had or was lost. */
const UNAVAILABLE_MESSAGES = [
  'timeout exceeded when trying to connect',
  'Connection terminated',
  'Client was closed and is not queryable',
  'Client has encountered a connection error and is not queryable',
  'Cannot use a pool after calling end on the pool',
];

type Failure = 'timeout' | 'unavailable';

/** Whether `error` (a driver error, or TypeORM's wrapper of one) says the database was away or too slow. */
export function databaseFailureKind(error: unknown): Failure | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 4; depth++) {
    const { code } = current as { code?: unknown };
    if (typeof code === 'string') {
      if (TIMEOUT_STATES.has(code)) return 'timeout';
      if (UNAVAILABLE_STATES.has(code) || code.startsWith('08') || UNAVAILABLE_ERRNOS.has(code)) return 'unavailable';
    }
    if (current.message === QUERY_READ_TIMEOUT) return 'timeout';
    if (UNAVAILABLE_MESSAGES.some((message) => current instanceof Error && current.message.startsWith(message)))
      return 'unavailable';
    current = (current as { driverError?: unknown }).driverError ?? current.cause;
  }
  return undefined;
}

/**
 * The error a caller sees when the database failed it, or undefined when `error` is something else
 * (a constraint, a bug). `outcome` says what became of what the caller asked.
 */
export function databaseFailure(error: unknown, outcome: string): PortcullisError | undefined {
  const kind = databaseFailureKind(error);
  if (kind === undefined) return undefined;
  return kind === 'timeout'
    ? new PortcullisError(DatabaseErrorCode.TIMEOUT, `the database did not answer in time; ${outcome}`, undefined, {
        cause: error,
      })
    : new PortcullisError(DatabaseErrorCode.UNAVAILABLE, `the database is unavailable; ${outcome}`, undefined, {
        cause: error,
      });
}
