import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../pipeline/gateway-error.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { isToolNotFound } from '../pipeline/steps/authorize.ts';
import { sendJson } from '../http/respond.ts';

/** A REST refusal: `{error: {code, message}}` with its HTTP status. */
export function sendRestError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): void {
  sendJson(res, status, JSON.stringify({ error: { code, message } }), headers);
}

/** SCREAMING_SNAKE names of the gateway's JSON-RPC codes (InvalidParams → INVALID_PARAMS). */
const CODE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(RpcErrorCode).map(([name, code]) => [code, name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()]),
);

/** HTTP statuses for codes whose JSON-RPC answer goes out with 200 (the error is in the body there). */
const REST_STATUS: ReadonlyMap<number, number> = new Map<number, number>([
  [RpcErrorCode.InvalidParams, 400],
  [RpcErrorCode.InvalidRequest, 400],
  [RpcErrorCode.MethodNotFound, 404],
  [RpcErrorCode.InternalError, 500],
  [RpcErrorCode.UpstreamUnavailable, 502],
  [RpcErrorCode.TooManyInFlight, 429],
]);

/**
 * A pipeline refusal as REST says it: a tool the key may not call is 404 TOOL_NOT_FOUND (the same
 * refusal as an unknown one); the gateway's own codes by name, with the status the error carries
 * or the one REST gives it; an upstream's own JSON-RPC error is 502 UPSTREAM_ERROR.
 */
export function sendGatewayError(res: ServerResponse, error: GatewayError): void {
  if (isToolNotFound(error)) return sendRestError(res, 404, 'TOOL_NOT_FOUND', error.message);
  const name = CODE_NAMES.get(error.code);
  const status = error.httpStatus !== 200 ? error.httpStatus : (REST_STATUS.get(error.code) ?? 502);
  sendRestError(res, status, name ?? 'UPSTREAM_ERROR', error.message);
}
