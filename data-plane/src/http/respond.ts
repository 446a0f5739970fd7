import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { errorBody, type RpcId } from '../mcp/json-rpc.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import { markRefusal } from './edge-audit.ts';

const JSON_TYPE = 'application/json';

/** Sends a serialized JSON body with its length (no chunked encoding, one write). */
export function sendJson(res: ServerResponse, status: number, body: string, headers?: OutgoingHttpHeaders): void {
  res.writeHead(status, { ...headers, 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A JSON-RPC error response at the HTTP level (ladder and transport refusals). */
export function sendRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  options?: { data?: unknown; id?: RpcId; headers?: OutgoingHttpHeaders },
): void {
  if (status >= 400) markRefusal(res, status, code, message);
  sendJson(res, status, errorBody(options?.id ?? null, code, message, options?.data), options?.headers);
}

export function sendEmpty(res: ServerResponse, status: number, headers?: OutgoingHttpHeaders): void {
  res.writeHead(status, { ...headers, 'content-length': 0 });
  res.end();
}

/** A request whose handler threw: 500 when nothing was sent yet, else the connection is cut; logged as `what`. */
export function answerFailure(res: ServerResponse, logger: Logger, error: unknown, what: string): void {
  logger.error({ err: error }, what);
  if (!res.headersSent) sendRpcError(res, 500, RpcErrorCode.InternalError, 'Internal error');
  else res.destroy();
}
