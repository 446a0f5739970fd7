import { ProtocolError, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { PortcullisError, errorMessage } from '../../../common/src/index.ts';
import { UpstreamRpcError } from './upstream-rpc-error.ts';

/** The codes of the PortcullisErrors the upstream side rejects with (the downstream relays them as JSON-RPC errors). */
export const UpstreamErrorCode = {
  /** The upstream is not connected, or its connection died while the request was in flight. */
  UNAVAILABLE: 'UPSTREAM_UNAVAILABLE',
  /** The upstream did not answer within the call timeout. */
  TIMEOUT: 'UPSTREAM_TIMEOUT',
  /** The caller aborted the request (the upstream was sent notifications/cancelled). */
  CANCELLED: 'UPSTREAM_REQUEST_CANCELLED',
  /** Anything else that went wrong talking to the upstream. */
  ERROR: 'UPSTREAM_ERROR',
} as const;

/** JSON-RPC codes the relay itself answers with (named, never bare numbers). */
export const RpcCode = {
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
} as const;

/**
 * How a connection failure is handled:
 * - `fatal`: auth or configuration (HTTP 401/403, spawn ENOENT/EACCES, a bad URL): retrying soon cannot help,
 *   so the upstream shows DOWN with the reason and is retried slowly.
 * - `transient`: anything else (refused, reset, crashed, timed out): retried with fast exponential backoff.
 */
export type FailureKind = 'fatal' | 'transient';

/** The HTTP status an SDK transport error carries, if any. */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof SdkError && typeof error.data === 'object' && error.data !== null) {
    const status = (error.data as { status?: unknown }).status;
    if (typeof status === 'number') return status;
  }
  return undefined;
}

function errnoOf(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export function classifyFailure(error: unknown): FailureKind {
  const status = httpStatusOf(error);
  if (status === 401 || status === 403) return 'fatal';
  if (
    error instanceof SdkError &&
    (error.code === SdkErrorCode.ClientHttpAuthentication || error.code === SdkErrorCode.ClientHttpForbidden)
  )
    return 'fatal';
  if (error instanceof Error && error.name === 'UnauthorizedError') return 'fatal';
  const errno = errnoOf(error);
  if (errno === 'ENOENT' || errno === 'EACCES' || errno === 'ENOTDIR' || errno === 'ERR_INVALID_URL') return 'fatal';
  if (error instanceof PortcullisError && error.code === 'BAD_CONFIG') return 'fatal';
  return 'transient';
}

/** A human reason for an operator, e.g. `HTTP 401 Unauthorized (check the upstream's credentials)`. */
export function describeFailure(error: unknown): string {
  const status = httpStatusOf(error);
  if (status === 401 || status === 403)
    return (
      `HTTP ${status}: the upstream refused the gateway's credentials (check its headers or token): ` +
      `${errorMessage(error)}`
    );
  const errno = errnoOf(error);
  if (errno === 'ENOENT') return `cannot start the server: command not found (${errorMessage(error)})`;
  if (errno === 'EACCES') return `cannot start the server: permission denied (${errorMessage(error)})`;
  if (errno === 'ENOTDIR') return `cannot start the server: bad working directory (${errorMessage(error)})`;
  return errorMessage(error);
}

/** Whether the upstream said its session is gone (HTTP 404 on a request carrying a session id). */
export function isSessionExpired(error: unknown, hadSession: boolean): boolean {
  return hadSession && httpStatusOf(error) === 404;
}

/**
 * The error a relayed request rejects with: the upstream's own JSON-RPC error as an UpstreamRpcError
 * (relayed to the agent as it is), everything else as a PortcullisError naming the upstream.
 */
export function relayError(
  upstream: string,
  method: string,
  error: unknown,
  context: { aborted: boolean; timeoutMs: number },
): Error {
  if (error instanceof UpstreamRpcError || error instanceof PortcullisError) return error;
  if (error instanceof ProtocolError) return new UpstreamRpcError(error.code, error.message, error.data);
  if (context.aborted)
    return new PortcullisError(
      UpstreamErrorCode.CANCELLED,
      `${method} to upstream "${upstream}" was cancelled`,
      { upstream },
      { cause: error },
    );
  if (error instanceof SdkError) {
    switch (error.code) {
      case SdkErrorCode.RequestTimeout:
        return new PortcullisError(
          UpstreamErrorCode.TIMEOUT,
          `upstream "${upstream}" did not answer ${method} within ${context.timeoutMs} ms`,
          { upstream },
          { cause: error },
        );
      case SdkErrorCode.ConnectionClosed:
      case SdkErrorCode.NotConnected:
        return new PortcullisError(
          UpstreamErrorCode.UNAVAILABLE,
          `upstream "${upstream}" closed the connection before answering ${method}`,
          { upstream },
          { cause: error },
        );
      case SdkErrorCode.MethodNotSupportedByProtocolVersion:
        return new UpstreamRpcError(
          RpcCode.METHOD_NOT_FOUND,
          `Method not found: upstream "${upstream}" speaks ` +
            `${String((error.data as { era?: unknown } | undefined)?.era ?? 'another')} protocol era, ` +
            `which has no ${method}`,
        );
      default:
        break;
    }
  }
  if (
    httpStatusOf(error) !== undefined ||
    errnoOf(error) !== undefined ||
    (error instanceof TypeError && /fetch failed/.test(error.message))
  ) {
    return new PortcullisError(
      UpstreamErrorCode.UNAVAILABLE,
      `upstream "${upstream}" is unreachable: ${describeFailure(error)}`,
      { upstream },
      { cause: error },
    );
  }
  return new PortcullisError(
    UpstreamErrorCode.ERROR,
    `upstream "${upstream}" failed ${method}: ${errorMessage(error)}`,
    { upstream },
    { cause: error },
  );
}
