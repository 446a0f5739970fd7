import { isTooDeep } from '../../../common/src/index.ts';
import { GatewayError, RESULT_TOO_DEEP } from '../pipeline/gateway-error.ts';
import type { Operation, Outcome } from '../pipeline/operation.ts';
import type { RunOperation } from '../pipeline/pipeline.ts';
import { PIPELINE_METHODS } from '../pipeline/steps/authorize.ts';
import type { DispatchContext, RpcRequest } from './dispatcher.ts';
import { errorBody, isPlainObject, resultBody, type RpcId, type RpcReply } from './json-rpc.ts';
import { RpcErrorCode, SERVER_INFO_META_KEY } from './protocol.ts';

const OK = 200;

/**
 * The 2025 revisions at the edge: a request of an initialized session (Streamable HTTP, legacy
 * HTTP+SSE) becomes one operation with the session's id and declared capabilities; its outcome
 * becomes a JSON-RPC response. Every method the pipeline serves exists in this era.
 */
export class LegacyEra {
  constructor(private readonly run: RunOperation) {}

  async handle(request: RpcRequest, context: DispatchContext): Promise<RpcReply> {
    if (!PIPELINE_METHODS.has(request.method)) return legacyError(request.id, GatewayError.methodNotFound());
    return encodeLegacy(request.id, await this.run(decodeLegacy(request, context)));
  }
}

function decodeLegacy(request: RpcRequest, context: DispatchContext): Operation {
  return {
    id: request.id,
    method: request.method,
    params: request.params ?? {},
    principal: context.principal,
    sessionKeys: context.sessionKeys,
    cancellation: context.cancellation,
    channel: context.channel,
    sessionId: context.sessionId,
    agentCapabilities: context.agentCapabilities,
    receivedAt: context.receivedAt ?? performance.now(),
    origin: context.origin,
  };
}

function encodeLegacy(id: RpcId, outcome: Outcome): RpcReply {
  switch (outcome.kind) {
    case 'result': {
      let json: string;
      try {
        json = legacyResultJson(outcome.result, outcome.json);
      } catch (error) {
        if (!isTooDeep(error)) throw error;
        return legacyError(id, RESULT_TOO_DEEP);
      }
      return { status: OK, body: resultBody(id, json) };
    }
    case 'json':
      return { status: OK, body: resultBody(id, outcome.json) };
    case 'error':
      return legacyError(id, outcome.error);
    case 'input':
      // Only a 2026-07-28 caller parks calls; a 2025-era request is asked on its own stream.
      return legacyError(
        id,
        new GatewayError(
          RpcErrorCode.InternalError,
          'Internal error: an input_required outcome for a 2025-era request',
        ),
      );
  }
}

function legacyError(id: RpcId, error: GatewayError): RpcReply {
  const body = errorBody(id, error.code, error.message, error.data);
  return error.retryAfterSeconds === undefined
    ? { status: error.httpStatus, body }
    : { status: error.httpStatus, body, retryAfterSeconds: error.retryAfterSeconds };
}

/**
 * A 2025-era result without the `_meta` key in which a 2026-07-28 upstream names itself: to the agent
 * the server is the gateway (it said so at initialize), and which upstream serves a tool is not the
 * agent's to learn. `_meta` goes when nothing else is left in it.
 */
function legacyResultJson(result: Record<string, unknown>, json: string | undefined): string {
  const meta = result['_meta'];
  if (!isPlainObject(meta) || !(SERVER_INFO_META_KEY in meta)) return json ?? JSON.stringify(result);
  const { [SERVER_INFO_META_KEY]: _upstream, ...rest } = meta;
  const { _meta: _dropped, ...bare } = result;
  return JSON.stringify(Object.keys(rest).length === 0 ? bare : { ...bare, _meta: rest });
}
