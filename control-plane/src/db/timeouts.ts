import pg from 'pg';

/**
 * How long the control plane waits on its database. A database that hangs (rather than refusing
 * connections) would otherwise hold every caller forever, and what they sent would run when it
 * came back, long after they gave up.
 */
export interface DatabaseTimeouts {
  /** Connecting, or waiting for a free pooled connection. */
  connectMs: number;
  /**
   * One statement (enforced by the server, and by the client when the server does not answer), and
   * one whole configuration change: a change that cannot commit by then fails and is never applied later.
   */
  statementMs: number;
  /** A transaction left idle this long is ended by the server (its locks released). */
  idleInTransactionMs: number;
}

export const DEFAULT_DATABASE_TIMEOUTS: DatabaseTimeouts = {
  connectMs: 5_000,
  statementMs: 10_000,
  idleInTransactionMs: 10_000,
};

/** What pg reports when a query outlived `query_timeout` (pg 8). */
export const QUERY_READ_TIMEOUT = 'Query read timeout';

/**
 * A pg client that gives up its connection when a query outlives `query_timeout`. pg itself only
 * fails the query and keeps the connection, still waiting on the server: the pool would hand it
 * out again, and a transaction left open on it would take the next caller's statements and commit
 * them together when the database came back. Closed, the server sees the connection end and rolls
 * back whatever was open.
 */
export class AbandoningClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    const query = this.query.bind(this) as (...args: unknown[]) => unknown;
    const abandonOnTimeout = (error: unknown) => {
      if (error instanceof Error && error.message === QUERY_READ_TIMEOUT) void this.end().catch(() => undefined);
    };
    this.query = ((...args: unknown[]) => {
      const last = args.at(-1);
      if (typeof last === 'function') {
        args[args.length - 1] = (error: unknown, ...rest: unknown[]) => {
          abandonOnTimeout(error);
          (last as (...values: unknown[]) => unknown)(error, ...rest);
        };
      }
      const result = query(...args);
      if (result instanceof Promise) result.catch(abandonOnTimeout);
      return result;
    }) as typeof this.query;
  }
}

/** The pool options (TypeORM's `extra`) that apply `timeouts`; the server-side ones only on a real server. */
export function poolTimeoutOptions(timeouts: DatabaseTimeouts, serverSide: boolean): Record<string, unknown> {
  return {
    Client: AbandoningClient,
    connectionTimeoutMillis: timeouts.connectMs,
    query_timeout: timeouts.statementMs,
    ...(serverSide
      ? { statement_timeout: timeouts.statementMs, idle_in_transaction_session_timeout: timeouts.idleInTransactionMs }
      : {}),
  };
}
