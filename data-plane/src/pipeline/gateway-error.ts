import { PortcullisError } from '../../../common/src/index.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { UpstreamRpcError } from '../upstream/upstream-rpc-error.ts';

/** HTTP status of the answer carrying each gateway code; a code not named here goes out with 200. */
const HTTP_STATUS: ReadonlyMap<number, number> = new Map<number, number>([
  [RpcErrorCode.Unauthenticated, 401],
  [RpcErrorCode.Forbidden, 403],
  [RpcErrorCode.SessionNotFound, 404],
  [RpcErrorCode.NotReady, 503],
  [RpcErrorCode.RateLimited, 429],
  [RpcErrorCode.BudgetExhausted, 429],
  [RpcErrorCode.AuditUnavailable, 503],
  [RpcErrorCode.HeaderMismatch, 400],
  [RpcErrorCode.UnsupportedProtocolVersion, 400],
  // The spec ties HTTP 400 to this code itself, wherever it comes from (an upstream's input_required included).
  [RpcErrorCode.MissingRequiredClientCapability, 400],
]);

/**
 * The one error of an operation: a refusal by a step, or a failure the gateway answers for. It knows
 * its JSON-RPC code (a name of RpcErrorCode, or an upstream's own code relayed as it came), its data
 * and the HTTP status it goes out with; the era adapters turn it into wire form, nothing else does.
 */
export class GatewayError extends Error {
  readonly httpStatus: number;
  /** Seconds after which a retry may succeed, sent as `Retry-After` where the answer is plain HTTP. */
  retryAfterSeconds?: number;

  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    httpStatus?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.httpStatus = httpStatus ?? HTTP_STATUS.get(code) ?? 200;
  }

  static invalidParams(message: string, data?: unknown): GatewayError {
    return new GatewayError(RpcErrorCode.InvalidParams, message, data);
  }

  static methodNotFound(): GatewayError {
    return new GatewayError(RpcErrorCode.MethodNotFound, 'Method not found');
  }

  /**
   * What an upstream's failure becomes: its own JSON-RPC error as it came, an unreachable upstream
   * as UpstreamUnavailable naming it, anything else an internal error (undefined: the caller logs it).
   */
  static fromUpstream(error: unknown, upstream: string, subject: string): GatewayError | undefined {
    if (error instanceof GatewayError) return error;
    // An upstream's own error keeps HTTP 200 (the 2026-07-28 adapter applies the spec's 400 for a missing capability).
    if (error instanceof UpstreamRpcError) return new GatewayError(error.code, error.message, error.data, 200);
    if (error instanceof PortcullisError) {
      return new GatewayError(
        RpcErrorCode.UpstreamUnavailable,
        `Upstream "${upstream}" could not answer for ${subject}: ${error.message}`,
        { upstream, reason: error.code },
      );
    }
    return undefined;
  }
}

/**
 * An upstream's result nested too deeply to serialize again: `JSON.parse` took it (it is iterative), `JSON.stringify`
 * runs out of stack (some thousands of levels). The agent gets this error, with its request's id, instead of the
 * result (the edge refuses requests nested more than 128 levels; an upstream's answer is not walked on the hot path).
 */
export const RESULT_TOO_DEEP = new GatewayError(
  RpcErrorCode.InternalError,
  "Internal error: the upstream's result is nested too deeply to forward; its server has to return a flatter result",
);
