import { z } from 'zod';
import type { Logger } from '../../../common/src/index.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { McpDispatcher, RequestChannel, RetryForwarder, RpcRequest } from '../mcp/dispatcher.ts';
import { otherNodeRefusal } from '../mcp/input-required.ts';
import { echoableId, errorBody, isPlainObject } from '../mcp/json-rpc.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import { UpstreamRpcError } from '../upstream/upstream-rpc-error.ts';
import { MAX_RELAY_ANSWER_CHARS, MAX_RELAY_JSON_CHARS, type NodeRelay } from './node-relay.ts';
import type { IncomingCall, ServedAnswer } from './relayed-calls.ts';
import { signalCancellation } from '../upstream/cancellation.ts';

/**
 * A relayed retry as the serving node accepts it: a 2026-07-28 request of a kind that parks calls, with a request
 * state.
 */
const retrySchema = z.object({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.string().max(512), z.number().finite()]),
  method: z.enum(['tools/call', 'prompts/get'], {
    error: 'must be tools/call or prompts/get (the requests whose calls are parked)',
  }),
  params: z.looseObject({ requestState: z.string({ error: 'must be the requestState of the retry' }) }),
});

/** A notification the serving node sends for the waiting request. */
const notificationSchema = z.object({
  jsonrpc: z.literal('2.0'),
  method: z.string().min(1).max(256),
  params: z.record(z.string(), z.unknown()).optional(),
});

/** The serving node's answer: a JSON-RPC response to the relayed request. */
const answerSchema = z
  .looseObject({ jsonrpc: z.literal('2.0'), id: z.union([z.string(), z.number()]) })
  .refine((r) => isPlainObject(r['result']) || isPlainObject(r['error']), 'must carry a result or an error object');

export interface InputRetryRelayOptions {
  readonly relay: NodeRelay;
  readonly dispatcher: McpDispatcher;
  readonly getConfig: () => AppliedConfig | undefined;
  readonly logger: Logger;
  /** This node's id, named in refusals. */
  readonly nodeId: string;
}

/**
 * 2026-07-28 retries of calls parked on another node (DN-INPUT-OTHER-NODE), both ends. The node the
 * retry landed on relays the agent's request as it came; the node holding the call serves it with
 * the dispatcher exactly as a local retry (the key's current principal, this node's session keys:
 * key binding, signature, expiry and one-shot are checked there), forwards progress and log
 * notifications to the waiting request, and answers with the final result, the next
 * `input_required` round or the error. The agent going away on the first node cancels the call.
 */
export function relayInputRetries(options: InputRetryRelayOptions): RetryForwarder {
  const { relay, logger } = options;
  relay.calls.handle('inputRetryJson', (call) => serveRetry(call, options));

  return async (request, context, other) => {
    const refuse = (why: string, reason: string) => {
      const refusal = otherNodeRefusal(other, options.nodeId, why);
      return { status: 200, body: errorBody(request.id, refusal.code, refusal.message, { ...refusal.data, reason }) };
    };
    const json = JSON.stringify({ jsonrpc: '2.0', id: request.id, method: request.method, params: request.params });
    if (json.length > MAX_RELAY_JSON_CHARS)
      return refuse(
        `the retry (${json.length} characters) is larger than the ${MAX_RELAY_JSON_CHARS} relayed between nodes`,
        'too-large',
      );
    const channel = context.channel;
    const outcome = await relay.calls.call(
      { toNodeTag: other.nodeTag!, keyId: context.principal.keyId, sessionId: '' },
      { $case: 'inputRetryJson', value: json },
      context.cancellation.signal(),
      (notification) => {
        const parsed = notificationSchema.safeParse(safeJson(notification));
        if (parsed.success) channel?.notify(parsed.data.method, parsed.data.params);
        else logger.debug({ node: other.node }, 'ignored a relayed notification that is not JSON-RPC');
      },
    );
    if (outcome.kind === 'failed') return refuse(outcome.message, outcome.reason);
    const answer = answerSchema.safeParse(safeJson(outcome.body));
    if (!answer.success || answer.data.id !== request.id)
      return refuse('its answer was not a JSON-RPC response to the retry', 'bad-answer');
    return { status: outcome.status, body: outcome.body };
  };
}

async function serveRetry(call: IncomingCall, options: InputRetryRelayOptions): Promise<ServedAnswer> {
  const raw = safeJson(call.json);
  const parsed = retrySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return answer(
      400,
      errorBody(
        echoableId(raw),
        RpcErrorCode.InvalidRequest,
        `Invalid relayed retry: ${(issue?.path ?? []).join('.')}: ${issue?.message ?? 'invalid'}`,
      ),
    );
  }
  const request: RpcRequest = parsed.data;
  const config = options.getConfig();
  if (config === undefined)
    return answer(
      503,
      errorBody(request.id, RpcErrorCode.NotReady, `Node "${options.nodeId}" has no configuration yet; retry shortly`),
    );
  const principal = config.principalByKeyId(call.keyId);
  if (principal === undefined)
    return answer(
      401,
      errorBody(request.id, RpcErrorCode.Unauthenticated, 'Unauthorized: the key is unknown or revoked'),
    );
  const channel: RequestChannel = {
    canRequest: false,
    notify: (method, params) =>
      call.notify(
        JSON.stringify(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params }),
      ),
    request: (_message: RpcMessage) =>
      Promise.reject(
        new UpstreamRpcError(RpcErrorCode.InternalError, 'a 2026-07-28 agent cannot be asked on its call'),
      ),
  };
  const reply = await options.dispatcher.dispatch(request, {
    principal,
    era: 'modern',
    cancellation: signalCancellation(call.signal),
    sessionKeys: config.sessionKeys,
    channel,
    relayed: true,
  });
  const lost = errorBody(
    request.id,
    RpcErrorCode.InternalError,
    `The answer from gateway node "${options.nodeId}", which held the call, could not be relayed back (too large to ` +
      `pass between control-plane replicas); the call has completed there`,
  );
  if (reply.body.length > MAX_RELAY_ANSWER_CHARS) {
    return answer(
      200,
      errorBody(
        request.id,
        RpcErrorCode.InternalError,
        `The answer from gateway node "${options.nodeId}", which held the call, is ${reply.body.length} characters, ` +
          `more than the ${MAX_RELAY_ANSWER_CHARS} relayed between nodes; the call has completed there`,
      ),
    );
  }
  return { answer: { status: reply.status, bodyJson: reply.body }, fallback: { status: 200, bodyJson: lost } };
}

function answer(status: number, bodyJson: string): ServedAnswer {
  return { answer: { status, bodyJson } };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
